# securepipe: every target sets itself up from nothing (venv, packages, numba cache).
# Main job: `make run`. Tests: `make test`. JupyterLab: `make lab`.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# librosa compiles numba kernels on first use (~20 s); keep that cache inside the project
# so the cost is paid once, at set-up, and never by a lesson.
export NUMBA_CACHE_DIR := $(CURDIR)/.cache/numba
export MPLCONFIGDIR := $(CURDIR)/.cache/matplotlib
export PYTHONHASHSEED := 0

.PHONY: setup run test test-aws pytest lint lab bench data html check clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[sandbox,lessons,cluster,lake,test]'
	touch $@

.cache/numba/.warm: $(VENV)/.installed
	$(BIN)/python -m securepipe warmup
	touch $@

setup: $(VENV)/.installed .cache/numba/.warm

run: setup  ## execute every notebook into build/ (ipynb + HTML) and print the table
	$(BIN)/python -m securepipe notebooks --out build

html: run

test: lint pytest

# Two test processes on two cores: one BLAS thread each (OpenBLAS would start one per core in
# each, and its threads spin against the other process).
pytest: setup
	OPENBLAS_NUM_THREADS=1 $(BIN)/python -m pytest -n 2 -q

# Opt-in: the lesson flows end to end against a real account, in a prefix of their own, torn
# down afterwards (README: "Testing against a real account" for permissions and cost).
test-aws: setup
	@test -n "$(PROFILE)" || { echo "usage: make test-aws PROFILE=<aws profile>"; exit 2; }
	$(BIN)/python -m pytest -q -m aws --aws-profile "$(PROFILE)" tests/test_real_account.py

lint: $(VENV)/.installed
	$(BIN)/ruff check securepipe tests benchmarks notebooks/solutions
	$(BIN)/mypy

lab: setup  ## JupyterLab at the repository root (README in reach), opened on notebooks/
	$(BIN)/jupyter lab --ServerApp.root_dir=$(CURDIR) --LabApp.default_url=/lab/tree/notebooks

bench: setup
	$(BIN)/python -m benchmarks

check: setup  ## the posture scorecard against a hardened sandbox (SECUREPIPE_CHECK_ARGS for more)
	$(BIN)/securepipe check --sandbox $(SECUREPIPE_CHECK_ARGS)

data: setup  ## regenerate data-synthetic/ (byte for byte)
	$(BIN)/python -m securepipe voices --out data-synthetic
	$(BIN)/python -m securepipe.data.heldout --out data-synthetic/heldout

clean:
	rm -rf build .cache .pytest_cache
