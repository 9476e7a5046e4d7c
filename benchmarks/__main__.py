"""Run the benchmarks: ``python -m benchmarks [--quick] [--list] [NAME ...]``.

Each ``benchmarks/bench_<name>.py`` module is one benchmark, selected by ``<name>`` (e.g.
``encryption``, ``detector``); with no name, all of them run (``--quick`` leaves out the ones
that have no quick form). A benchmark prints its measurements and a ``PASS``/``FAIL`` verdict per
target; the run exits 1 if any target failed (or a benchmark crashed), 0 otherwise, and 2 on a
usage error. ``--help`` and ``--list`` run nothing.

``--quick`` shrinks every benchmark to a smoke run (seconds to a few minutes, well under 1 GiB
of RAM). The verdicts are then judged on the smaller inputs: a target stated for 1 GiB (peak
RSS) is reported as not measured, and a throughput ratio that holds for large files can FAIL on
small ones (per-file KMS round trips dominate), which makes the quick run exit 1 too.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import os
import pkgutil
import re
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

#: ``--quick``: module attributes replaced before ``main()`` runs, and environment variables set.
#: A benchmark missing here has no quick form and is skipped unless named explicitly.
QUICK: Mapping[str, Mapping[str, Any]] = {
    "detector": {"N_COLUMNAR": 200_000, "N_DICTS": 20_000},
    "encryption": {"env:SECUREPIPE_BENCH_MAX_MB": "16"},
    "ingest": {"N_CLIPS": 8},
}
VERDICT = re.compile(r"\bFAIL\b")


def available() -> list[str]:
    """The benchmark names: ``bench_<name>.py`` modules beside this file."""
    return sorted(m.name.removeprefix("bench_")
                  for m in pkgutil.iter_modules([str(Path(__file__).parent)])
                  if m.name.startswith("bench_"))


class _Tee(io.TextIOBase):
    def __init__(self, out: TextIO) -> None:
        self.out, self.buffer_ = out, io.StringIO()

    def write(self, text: str) -> int:
        self.out.write(text)
        return self.buffer_.write(text)

    def flush(self) -> None:
        self.out.flush()


def failed_targets(printed: str, returned: object = None) -> list[str]:
    """The failed targets of one benchmark: from what its ``main()`` returned (a mapping of
    target -> passed), else every printed line carrying a ``FAIL`` verdict."""
    if isinstance(returned, Mapping):
        return [str(name) for name, ok in returned.items() if not ok]
    return [line.strip() for line in printed.splitlines() if VERDICT.search(line)]


def run_one(name: str, *, quick: bool, out: TextIO) -> list[str]:
    """Run one benchmark; returns its failed targets (a crash is one failure)."""
    module = importlib.import_module(f"benchmarks.bench_{name}")
    restore: dict[str, Any] = {}
    env_restore: dict[str, str | None] = {}
    for attr, value in (QUICK.get(name, {}) if quick else {}).items():
        if attr.startswith("env:"):
            var = attr.removeprefix("env:")
            env_restore[var] = os.environ.get(var)
            os.environ[var] = str(value)
        else:
            if not hasattr(module, attr):
                raise AttributeError(f"benchmarks.bench_{name} has no {attr} (QUICK is stale)")
            restore[attr] = getattr(module, attr)
            setattr(module, attr, value)
    tee = _Tee(out)
    try:
        with contextlib.redirect_stdout(tee):
            returned = module.main()
    except Exception as exc:  # a crashed benchmark is a failed one; the others still run
        print(f"{name}: crashed: {type(exc).__name__}: {exc}", file=out)
        return [f"{name} crashed"]
    finally:
        for attr, value in restore.items():
            setattr(module, attr, value)
        for var, old in env_restore.items():
            if old is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = old
    return failed_targets(tee.buffer_.getvalue(), returned)


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    names = available()
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"benchmarks to run (default: all): {', '.join(names)}")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run on small inputs (quick forms: "
                        f"{', '.join(sorted(QUICK))})")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n.removeprefix("bench_") not in names]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(names)}")
    if args.list:
        for name in names:
            print(f"{name}{'' if name in QUICK else '  (no quick form)'}", file=out)
        return 0
    chosen = ([n.removeprefix("bench_") for n in args.names] if args.names
              else [n for n in names if not args.quick or n in QUICK])
    failures: dict[str, list[str]] = {}
    for name in chosen:
        print(f"== {name}{' (quick)' if args.quick else ''}", file=out, flush=True)
        start = time.perf_counter()
        failed = run_one(name, quick=args.quick, out=out)
        print(f"-- {name}: {'FAILED ' + str(len(failed)) + ' target(s)' if failed else 'ok'} "
              f"in {time.perf_counter() - start:.1f} s\n", file=out, flush=True)
        if failed:
            failures[name] = failed
    for name, failed in failures.items():
        for line in failed:
            print(f"target failed: {name}: {line}", file=out)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
