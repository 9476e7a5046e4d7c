"""Every snippet in the README runs: Python blocks are executed, make targets exist."""

from __future__ import annotations

import re
import subprocess

import pytest
from conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```([\w-]+)\n(.*?)```", README, flags=re.S)
PYTHON = [code for lang, code in BLOCKS if lang == "python"]


def test_there_are_snippets_and_real_account_forms() -> None:
    assert len(PYTHON) >= 3
    real = [code for lang, code in BLOCKS if lang == "python-real"]
    assert len(real) >= 3  # the production snippets show their real-account form too
    for i, code in enumerate(real):  # not executed (they need an account), but they parse
        compile(code, f"README.md python-real block {i}", "exec")


@pytest.mark.parametrize("index", range(len(PYTHON)))
def test_each_python_snippet_runs_alone(index: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each block runs in a fresh namespace, as a reader who copies only that block runs it."""
    monkeypatch.chdir(ROOT)
    namespace: dict[str, object] = {"__name__": "readme"}
    exec(compile(PYTHON[index], f"README.md python block {index}", "exec"), namespace)


def test_console_snippets_name_real_make_targets() -> None:
    commands = [
        line.split("#")[0].strip()
        for lang, code in BLOCKS if lang == "console"
        for line in code.splitlines() if line.strip()
    ]
    targets = re.findall(r"`make (\w+)`", README) + [c.split()[1] for c in commands]
    assert {"run", "test", "lab"} <= set(targets)
    for target in set(targets):
        dry = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True)
        assert dry.returncode == 0, f"README names `make {target}`: {dry.stderr}"


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci and "make test" in README
