"""The fleet rules as SQL on DuckDB against the Python detector, over the same log files, one run.

The files are bench_logs' (:mod:`benchmarks.bench_logs`: six days of the library's fleet,
scaled up, gzipped CloudTrail JSON, 5,000 records a file). In this order, one process:

* ``python``: :func:`securepipe.audit.logs.stream_log_files` -> normaliser ->
  :class:`securepipe.audit.fleet.FleetDetector` -> alerts (as in bench_logs' end to end);
* ``duckdb``: :func:`securepipe.audit.lake.duckdb_table` (read the gzipped files into the
  Athena-shaped table) then :func:`securepipe.audit.lake.run_duckdb` (the normalising view, the
  bucket sizes, every rule's query, the phase merge), with DuckDB's default threads and with one
  thread (per-core comparison); the load and the queries are also timed apart.

Rates are events per CPU second of this process (``time.process_time``, which counts every
DuckDB thread) and per wall-clock second. The alerts of both paths are compared (they must be
the same). The baseline is fitted beforehand, outside the timing.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import sqlglot

from benchmarks.bench_logs import DAYS, MIN_BATCH, PER_FILE, WORLD
from securepipe.audit.events import Normaliser
from securepipe.audit.fleet import FleetBaseline, FleetDetector
from securepipe.audit.lake import duckdb_table, run_duckdb
from securepipe.audit.library import Emitter, library_baseline, normal_fleet
from securepipe.audit.logs import TrailStream, stream_log_files, write_log_files
from securepipe.report import format_table


def _records() -> list[dict[str, Any]]:
    em = Emitter(WORLD)
    normal_fleet(em, WORLD.eval_ms, DAYS, np.random.default_rng(1))
    em.out.sort(key=lambda r: r["eventTime"])
    return em.out


def _python(paths: list[Path], baseline: FleetBaseline) -> tuple[float, float, int, set[Any]]:
    stream = TrailStream(Normaliser())
    det = FleetDetector(baseline, stream.normaliser.vocab, min_batch=MIN_BATCH)
    wall, cpu = time.perf_counter(), time.process_time()
    for batch in stream_log_files(paths, stream):
        det.feed(batch)
    det.flush()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    keys = {(a.rule, a.principal, a.scope, int(a.window_start.timestamp() * 1000),
             int(a.alert_time.timestamp() * 1000)) for a in det.alerts}
    return wall, cpu, det.events, keys


def _duckdb(paths: list[Path], baseline: FleetBaseline, threads: int | None
            ) -> dict[str, Any]:
    con = duckdb.connect()
    if threads:
        con.execute(f"SET threads = {threads}")
    used = int(con.execute("SELECT current_setting('threads')").fetchone()[0])
    wall, cpu = time.perf_counter(), time.process_time()
    records = duckdb_table(con, paths)
    load_wall, load_cpu = time.perf_counter() - wall, time.process_time() - cpu
    alerts, skipped = run_duckdb(con, baseline)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    con.close()
    return {"threads": used, "records": records, "wall": wall, "cpu": cpu,
            "load_wall": load_wall, "load_cpu": load_cpu, "keys": {a.key for a in alerts},
            "skipped": skipped}


def main() -> None:
    lib = library_baseline(WORLD)
    records = _records()
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_log_files(tmp, records, account_id=WORLD.account, region=WORLD.region,
                                per_file=PER_FILE)
        del records
        size = sum(p.stat().st_size for p in paths)
        _python(paths[:3], lib.baseline)  # warm the page cache
        py_wall, py_cpu, events, py_keys = _python(paths, lib.baseline)
        runs = [_duckdb(paths, lib.baseline, None), _duckdb(paths, lib.baseline, 1)]
    rows = [{"path": "python: files -> normaliser -> FleetDetector", "events": events,
             "CPU s": py_cpu, "events/CPU s": f"{events / py_cpu:,.0f}", "wall s": py_wall,
             "events/wall s": f"{events / py_wall:,.0f}", "same alerts": "-"}]
    for run in runs:
        rows.append({
            "path": f"duckdb ({run['threads']} threads): files -> table -> SQL rules",
            "events": run["records"], "CPU s": run["cpu"],
            "events/CPU s": f"{run['records'] / run['cpu']:,.0f}", "wall s": run["wall"],
            "events/wall s": f"{run['records'] / run['wall']:,.0f}",
            "same alerts": "yes" if run["keys"] == py_keys else "NO"})
        rows.append({
            "path": f"  of which loading the files ({run['threads']} threads)",
            "events": run["records"], "CPU s": run["load_cpu"],
            "events/CPU s": f"{run['records'] / run['load_cpu']:,.0f}",
            "wall s": run["load_wall"],
            "events/wall s": f"{run['records'] / run['load_wall']:,.0f}", "same alerts": "-"})
    print(format_table(rows))
    print()
    print(f"{len(paths)} files, {size / 2**20:.1f} MiB gzipped, {DAYS} days of the library's "
          f"fleet ({WORLD.contractors} contractors x {WORLD.samples} recordings); "
          f"{len(py_keys)} alerts (normal traffic); records skipped by the SQL: "
          f"{runs[0]['skipped'] or 'none'}")
    print(f"env: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}, duckdb "
          f"{duckdb.__version__}, sqlglot {sqlglot.__version__}")
    best = min(run["cpu"] for run in runs)
    print(f"DuckDB / Python, events per CPU second: {py_cpu / best:.2f} x")


if __name__ == "__main__":
    main()
