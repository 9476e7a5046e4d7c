"""Every snippet in the README runs: Python blocks are executed, make targets exist."""

from __future__ import annotations

import re
import subprocess

from conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", README, flags=re.S)


def test_python_snippets_execute(monkeypatch) -> None:
    monkeypatch.chdir(ROOT)
    python = [code for lang, code in BLOCKS if lang == "python"]
    assert len(python) >= 3
    namespace: dict[str, object] = {"__name__": "readme"}
    for i, code in enumerate(python):
        exec(compile(code, f"README.md python block {i}", "exec"), namespace)


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
