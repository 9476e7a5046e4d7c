"""The core install is enough for production code: every module outside the sandbox, the lessons
and the scorecard's sandbox scenarios imports with the extras' packages refused."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import tomllib

from conftest import ROOT

#: Top-level packages that only the extras bring (sandbox, lessons, cluster, test).
EXTRAS_ONLY = ("moto", "werkzeug", "flask", "papermill", "matplotlib", "jupyter", "jupyterlab",
               "jupyter_client", "jupyter_core", "nbconvert", "nbformat", "ipykernel",
               "IPython", "tqdm", "dask", "distributed", "pytest", "hypothesis", "cfnlint",
               "yaml")
#: Not production code: they need the extras by design.
EXEMPT = ("securepipe.sandbox", "securepipe.lessons", "securepipe.checks.scenarios")
#: Production code never loads these, even indirectly: only the sandbox knows moto. (The
#: scorecard renders its table with ``securepipe.report``; the lessons import their
#: heavy packages lazily, which the blocker proves.)
STRAY = ("securepipe.sandbox",)

_SCRIPT = textwrap.dedent("""
    import importlib, importlib.abc, pathlib, sys
    BLOCKED, EXEMPT, STRAY = {blocked!r}, {exempt!r}, {stray!r}

    class Refuse(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"extra-only package {{name}} imported")
            return None

    sys.meta_path.insert(0, Refuse())
    root = pathlib.Path({root!r}) / "securepipe"
    names = sorted(
        ".".join(("securepipe", *p.relative_to(root).with_suffix("").parts)).removesuffix(
            ".__init__") for p in root.rglob("*.py"))
    names = [n for n in names if not n.startswith(EXEMPT) and n != "securepipe.__main__"]
    failed = []
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            failed.append(f"{{name}}: {{exc}}")
    stray = sorted(m for m in sys.modules if m.startswith(STRAY))
    print(len(names), "modules")
    for line in failed:
        print("FAILED", line)
    for name in stray:
        print("STRAY", name)
    sys.exit(1 if failed or stray else 0)
""")


def _run(blocked: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    script = _SCRIPT.format(blocked=blocked, exempt=EXEMPT, stray=STRAY, root=str(ROOT))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_production_modules_import_without_the_extras() -> None:
    out = _run(EXTRAS_ONLY)
    assert out.returncode == 0, out.stdout + out.stderr
    assert int(out.stdout.split()[0]) > 40  # it really walked the package


def test_the_blocker_catches_a_stray_import() -> None:
    """The same harness fails when a production dependency is refused (here boto3)."""
    out = _run(("boto3",))
    assert out.returncode == 1 and "FAILED securepipe." in out.stdout


def test_core_dependencies_hold_no_extra() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = " ".join(project["dependencies"]).lower()
    for name in ("moto", "jupyterlab", "papermill", "matplotlib", "nbconvert", "tqdm",
                 "ipykernel", "distributed"):
        assert name not in core
    assert {"sandbox", "lessons", "cluster", "test"} <= set(project["optional-dependencies"])
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install -q -e '.[sandbox,lessons,cluster,lake,test]'" in makefile
