"""Notebook suite, cold (empty numba cache) against warm (the project's prepared cache).

Each notebook is executed once cold and once warm in the same run; the ratio shows what the
set-up step's cache warm-up saves a lesson.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from securepipe.lessons.notebooks import NOTEBOOK_DIR, discover, run_notebook
from securepipe.report import format_table


def _run_all(cache_dir: str, out: Path) -> dict[str, float]:
    previous = os.environ.get("NUMBA_CACHE_DIR")
    os.environ["NUMBA_CACHE_DIR"] = cache_dir  # inherited by each notebook kernel
    try:
        seconds = {}
        for nb in discover(NOTEBOOK_DIR):
            run = run_notebook(nb, out, html=False)
            if run.error:
                raise SystemExit(run.error)
            seconds[nb.name] = run.seconds
        return seconds
    finally:
        if previous is None:
            os.environ.pop("NUMBA_CACHE_DIR", None)
        else:
            os.environ["NUMBA_CACHE_DIR"] = previous


def main() -> None:
    warm_cache = os.environ.get("NUMBA_CACHE_DIR") or str(
        Path(__file__).resolve().parents[1] / ".cache" / "numba"
    )
    with tempfile.TemporaryDirectory() as cold_cache, tempfile.TemporaryDirectory() as out:
        cold = _run_all(cold_cache, Path(out))
        warm = _run_all(warm_cache, Path(out))
    rows = [
        {"notebook": name, "cold s": cold[name], "warm s": warm[name],
         "cold/warm": cold[name] / warm[name]}
        for name in cold
    ]
    rows.append({"notebook": "suite", "cold s": sum(cold.values()), "warm s": sum(warm.values()),
                 "cold/warm": sum(cold.values()) / sum(warm.values())})
    print(format_table(rows))
