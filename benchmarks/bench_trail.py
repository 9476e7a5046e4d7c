"""CloudTrail log files on disk -> fleet alerts, against the gunzip-plus-parse bound, one run.

Writes a few days of the scenario library's fleet (:mod:`securepipe.audit.library`, scaled up)
as gzipped CloudTrail log files (``{"Records": [...]}``, 5,000 records a file) to a temporary
directory, then, one core, one process, in this order:

* ``bound: gunzip + parse``: read each file, gunzip it, decode the JSON into Python objects
  (msgspec, generic: what any parser must at least do); and ``gunzip + typed decode``: the same
  into the detector's typed records (only the fields it uses);
* ``end to end``: :func:`securepipe.audit.logs.stream_log_files` -> normaliser ->
  :class:`securepipe.audit.fleet.FleetDetector` -> alerts (the baseline is fitted beforehand on
  the library's baseline week, outside the timing).

Targets: end to end >= 0.5 x the gunzip-plus-parse bound and >= 200,000 events/s. Memory: the
detector's state (open window aggregates and distinct items) and the peak traced allocation for
the first half of the files and for all of them: bounded by principals x windows, it should not
grow with the number of files.
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
import tracemalloc
from pathlib import Path

import msgspec
import numpy as np

from securepipe.audit.events import LogFile, Normaliser
from securepipe.audit.fleet import FleetDetector
from securepipe.audit.library import Emitter, World, library_baseline, normal_fleet
from securepipe.audit.logs import TrailStream, gunzip_log, stream_log_files, write_log_files
from securepipe.lessons.report import format_table

TARGET_RATIO = 0.5
TARGET_EVENTS_PER_S = 200_000
WORLD = World(contractors=40, samples=250, epochs_per_day=4)
DAYS = 6
PER_FILE = 5_000


def _records() -> list[dict]:
    em = Emitter(WORLD)
    normal_fleet(em, WORLD.eval_ms, DAYS, np.random.default_rng(1))
    em.out.sort(key=lambda r: r["eventTime"])
    return em.out


def _bound(paths: list[Path], typed: bool) -> tuple[float, int]:
    decoder = msgspec.json.Decoder(LogFile) if typed else msgspec.json.Decoder()
    n = 0
    start = time.perf_counter()
    for path in paths:
        doc = decoder.decode(gunzip_log(path.read_bytes()))
        n += len(doc.Records) if typed else len(doc["Records"])
    return time.perf_counter() - start, n


def _end_to_end(paths: list[Path], baseline, *, trace: bool = False
                ) -> tuple[float, int, int, int, float]:
    stream = TrailStream(Normaliser())
    det = FleetDetector(baseline, stream.normaliser.vocab, min_batch=100_000)
    if trace:
        tracemalloc.start()
    start = time.perf_counter()
    peak_state = 0
    for batch in stream_log_files(paths, stream):
        det.feed(batch)
        peak_state = max(peak_state, det.state_entries)
    det.flush()
    took = time.perf_counter() - start
    peak = 0.0
    if trace:
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return took, det.events, len(det.alerts), peak_state, peak


def main() -> None:
    lib = library_baseline(World(contractors=40, samples=250))
    records = _records()
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_log_files(tmp, records, account_id=WORLD.account, region=WORLD.region,
                                per_file=PER_FILE)
        del records
        size = sum(p.stat().st_size for p in paths)
        _bound(paths[:5], False)  # warm the page cache
        parse_s, n = _bound(paths, False)
        typed_s, _ = _bound(paths, True)
        e2e_s, events, alerts, _, _ = _end_to_end(paths, lib.baseline)
        half = paths[: len(paths) // 2]
        _, _, _, state_half, peak_half = _end_to_end(half, lib.baseline, trace=True)
        _, _, _, state_all, peak_all = _end_to_end(paths, lib.baseline, trace=True)
    bound = n / parse_s
    rate = events / e2e_s
    rows = [
        {"path": "bound: gunzip + parse (generic)", "events": n, "seconds": parse_s,
         "events/s": f"{bound:,.0f}"},
        {"path": "gunzip + typed decode", "events": n, "seconds": typed_s,
         "events/s": f"{n / typed_s:,.0f}"},
        {"path": "end to end: files -> alerts", "events": events, "seconds": e2e_s,
         "events/s": f"{rate:,.0f}"},
    ]
    print(format_table(rows))
    print()
    print(f"{len(paths)} files, {size / 2**20:.1f} MiB gzipped, {DAYS} days; {alerts} alerts "
          "(normal traffic: expected 0)")
    print(f"memory: detector state {state_half:,} entries after {len(half)} files, "
          f"{state_all:,} after {len(paths)}; peak traced {peak_half:.1f} MiB vs "
          f"{peak_all:.1f} MiB (largest single file plus min_batch buffer plus state)")
    ratio = rate / bound
    print(f"env: {os.cpu_count()} cores (load average {os.getloadavg()[0]:.1f}), "
          f"{platform.python_implementation()} {platform.python_version()}, msgspec "
          f"{msgspec.__version__}, numpy {np.__version__}; wall-clock, one process")
    print(f"end to end {rate:,.0f} events/s = {ratio:.2f} x the gunzip+parse bound: "
          f"{'PASS' if ratio >= TARGET_RATIO else 'FAIL'} (target {TARGET_RATIO} x); "
          f"{'PASS' if rate >= TARGET_EVENTS_PER_S else 'FAIL'} (target "
          f"{TARGET_EVENTS_PER_S:,} events/s)")
