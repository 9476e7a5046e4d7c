"""Notebook suite: cold (empty numba cache) against warm (the project's prepared cache), and the
warm suite's wall clock with the lessons one after the other against ``make run``'s default
(one per core, at most four).

Everything is measured in one run, so the ratios hold even on a virtual machine whose speed
drifts from hour to hour. ``warm s`` per lesson is from the one-after-the-other run: the
figure the facilitator guide's agenda uses.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from securepipe.lessons.notebooks import NOTEBOOK_DIR, default_jobs, run_all
from securepipe.report import format_table


def _run_all(cache_dir: str, out: Path, jobs: int = 1) -> tuple[dict[str, float], float]:
    """Each notebook's own seconds, and the wall clock of the whole run."""
    previous = os.environ.get("NUMBA_CACHE_DIR")
    os.environ["NUMBA_CACHE_DIR"] = cache_dir  # inherited by each notebook kernel
    try:
        start = time.perf_counter()
        runs = run_all(out, NOTEBOOK_DIR, html=False, jobs=jobs)
        wall = time.perf_counter() - start
        for run in runs:
            if run.error:
                raise SystemExit(run.error)
        return {run.notebook: run.seconds for run in runs}, wall
    finally:
        if previous is None:
            os.environ.pop("NUMBA_CACHE_DIR", None)
        else:
            os.environ["NUMBA_CACHE_DIR"] = previous


def main() -> None:
    warm_cache = os.environ.get("NUMBA_CACHE_DIR") or str(
        Path(__file__).resolve().parents[1] / ".cache" / "numba"
    )
    jobs = default_jobs()
    with tempfile.TemporaryDirectory() as cold_cache, tempfile.TemporaryDirectory() as out:
        cold, cold_wall = _run_all(cold_cache, Path(out))
        warm, warm_wall = _run_all(warm_cache, Path(out))
        _, parallel_wall = _run_all(warm_cache, Path(out), jobs=jobs)
    rows = [
        {"notebook": name, "cold s": cold[name], "warm s": warm[name],
         "cold/warm": cold[name] / warm[name]}
        for name in cold
    ]
    rows.append({"notebook": "suite (lessons' own times)", "cold s": sum(cold.values()),
                 "warm s": sum(warm.values()),
                 "cold/warm": sum(cold.values()) / sum(warm.values())})
    print(format_table(rows))
    print(format_table([
        {"warm suite, wall clock": "one after the other", "s": warm_wall, "ratio": 1.0},
        {"warm suite, wall clock": f"{jobs} at a time (make run)", "s": parallel_wall,
         "ratio": parallel_wall / warm_wall},
    ]))
    print(f"(cold suite, one after the other: {cold_wall:.1f} s wall clock)")
