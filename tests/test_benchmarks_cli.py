"""The benchmark runner's command line: --help and --list run nothing, names select, and a
failed target (or a crash) makes the exit code non-zero."""

from __future__ import annotations

import io
import subprocess
import sys
import types

import pytest
from conftest import ROOT

import benchmarks.__main__ as runner


def test_help_runs_nothing_even_after_a_name() -> None:
    for argv in (["--help"], ["encryption", "--help"]):
        out = subprocess.run([sys.executable, "-m", "benchmarks", *argv], cwd=ROOT,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0 and "usage: python -m benchmarks" in out.stdout
        assert "==" not in out.stdout  # no benchmark started


def test_list_and_unknown_names() -> None:
    out = io.StringIO()
    assert runner.main(["--list"], out) == 0
    assert set(out.getvalue().split()) >= {"encryption", "detector", "ingest", "notebooks"}
    with pytest.raises(SystemExit) as exc:
        runner.main(["no-such-bench"], io.StringIO())
    assert exc.value.code == 2


def test_quick_overrides_name_real_attributes() -> None:
    import importlib

    for name, overrides in runner.QUICK.items():
        module = importlib.import_module(f"benchmarks.bench_{name}")
        for attr in overrides:
            assert attr.startswith("env:") or hasattr(module, attr), (name, attr)


def _fake(monkeypatch: pytest.MonkeyPatch, name: str, main: object) -> None:
    module = types.ModuleType(f"benchmarks.bench_{name}")
    module.main = main  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, f"benchmarks.bench_{name}", module)


def test_exit_code_follows_the_verdicts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runner, "available", lambda: ["good", "bad", "told", "boom"])
    _fake(monkeypatch, "good", lambda: print("throughput 9 MB/s (target >= 5): PASS"))
    _fake(monkeypatch, "bad", lambda: print("ratio  1.2  >= 1.6  FAIL"))
    _fake(monkeypatch, "told", lambda: {"rss < 128 MiB": False})

    def boom() -> None:
        raise MemoryError("too big")

    _fake(monkeypatch, "boom", boom)
    assert runner.main(["good"], io.StringIO()) == 0
    for name in ("bad", "told", "boom"):
        out = io.StringIO()
        assert runner.main([name], out) == 1, name
        assert f"target failed: {name}" in out.getvalue()
    assert runner.main([], io.StringIO()) == 1  # all of them: one failure is enough
