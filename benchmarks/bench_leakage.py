"""Lesson 04 warm (tables in the cache) against its 10 s target, part by part.

Runs the notebook twice (the first run fills ``.cache/leakage`` if it is empty) and reports the
second run's total and the seconds spent in the ingest part (cells before "Part 2") and in the
leakage lab (Part 2 on). Also times one uncached table on the smallest input, for scale.
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

from securepipe.lessons.notebooks import NOTEBOOK_DIR, run_notebook
from securepipe.report import format_table

TARGET_S = 10.0


def _parts(output: Path) -> dict[str, float]:
    cells = json.loads(output.read_text(encoding="utf-8"))["cells"]
    first_lab = next(
        i for i, c in enumerate(cells) if "".join(c["source"]).startswith("## Part 2")
    )
    seconds = [float(c.get("metadata", {}).get("papermill", {}).get("duration") or 0.0)
               for c in cells]
    return {"ingest s": sum(seconds[:first_lab]), "leakage lab s": sum(seconds[first_lab:])}


def main() -> None:
    notebook = NOTEBOOK_DIR / "04_features_not_raw.ipynb"
    rows = []
    with tempfile.TemporaryDirectory() as out:
        for label in ("first", "warm"):
            run = run_notebook(notebook, Path(out), html=False)
            if run.error:
                raise SystemExit(run.error)
            rows.append({"run": label, "total s": run.seconds, **_parts(run.output),
                         "target s": TARGET_S})
    from securepipe.data import load_manifest
    from securepipe.features.extract import MFCC13_SPEC
    from securepipe.features.leakage import leakage_table

    manifest = load_manifest()
    start = time.perf_counter()
    leakage_table(manifest, specs=(MFCC13_SPEC,), n_iter=2)
    rows.append({"run": "one uncached table (mfcc13 only)", "total s": time.perf_counter() - start})
    print(format_table(rows))
