"""Detector throughput: 1 M GetObject events through the columnar path, and the dict paths.

Traffic comes from :mod:`securepipe.audit.traffic` (eight training roles, contractors, analysts,
plus
a burst), time-ordered as CloudTrail delivers it. The baseline is fitted once, outside the
timings. Measured in one run on one core (numpy here does not use threads for these kernels):

* ``columnar``: :meth:`securepipe.audit.detector.Detector.detect` on :class:`EventColumns` of
  1,000,000 events (best of 3 after a warm-up); the target is 500,000 events/s;
* ``dicts``: :meth:`Detector.detect_events` on 100,000 CloudTrail-shaped dicts (adapter + detect);
* ``stream``: :class:`securepipe.audit.detector.StreamDetector` fed the same dicts one at a time.

Peak memory is the peak of Python-traced allocations (``tracemalloc``, numpy arrays included)
during one run of each path, and the process's peak RSS at the end.
"""

from __future__ import annotations

import os
import platform
import resource
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np

from securepipe.audit.detector import Baseline, Detector, StreamDetector
from securepipe.audit.traffic import (
    TrafficConfig,
    baseline_traffic,
    scenario_traffic,
    to_cloudtrail_events,
)
from securepipe.report import format_table

TARGET_EVENTS_PER_S = 500_000
N_COLUMNAR = 1_000_000
N_DICTS = 100_000
CONFIG = TrafficConfig(trainers=8, epochs_per_day=12, baseline_days=1, eval_days=3)


def _best(fn: Callable[[], Any], runs: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(runs):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def _peak_mib(fn: Callable[[], Any]) -> float:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def main() -> None:
    baseline = Baseline.fit(baseline_traffic(CONFIG).columns)
    traffic = scenario_traffic("burst", CONFIG)
    if len(traffic) < N_COLUMNAR:
        raise SystemExit(f"traffic too small: {len(traffic)} events")
    cols = traffic.columns.take(np.arange(N_COLUMNAR))
    detector = Detector(baseline)
    detector.detect(cols)  # warm-up
    col_s, detection = _best(lambda: detector.detect(cols), 3)
    col_peak = _peak_mib(lambda: detector.detect(cols))

    small = traffic.columns.take(np.arange(N_DICTS))
    small_traffic = type(traffic)(small, traffic.label[:N_DICTS], "bench")
    events = list(to_cloudtrail_events(small_traffic, CONFIG))
    dict_s, _ = _best(lambda: detector.detect_events(events), 2)
    dict_peak = _peak_mib(lambda: detector.detect_events(events))

    def stream() -> StreamDetector:
        sd = StreamDetector(detector, batch=20_000)
        for event in events:
            sd.feed(event)
        sd.flush()
        return sd

    stream_s, sd = _best(stream, 1)
    retained = sd.retained
    stream_peak = _peak_mib(stream)

    rate = N_COLUMNAR / col_s
    rows = [
        {"path": "columnar (numpy)", "events": N_COLUMNAR, "seconds": col_s,
         "events/s": f"{rate:,.0f}", "peak traced MiB": col_peak,
         "target": f">= {TARGET_EVENTS_PER_S:,}",
         "result": "PASS" if rate >= TARGET_EVENTS_PER_S else "FAIL"},
        {"path": "dicts (adapter + detect)", "events": N_DICTS, "seconds": dict_s,
         "events/s": f"{N_DICTS / dict_s:,.0f}", "peak traced MiB": dict_peak,
         "target": "-", "result": "-"},
        {"path": "stream (dicts, one at a time)", "events": N_DICTS, "seconds": stream_s,
         "events/s": f"{N_DICTS / stream_s:,.0f}", "peak traced MiB": stream_peak,
         "target": "-", "result": "-"},
    ]
    print(format_table(rows))
    print()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"columnar run: {len(detection.alerts)} alerts over {len(cols.principals)} principals "
          f"x {len(baseline.config.rules)} rules; baseline table "
          f"{baseline.thresholds.nbytes / 1024:.1f} KiB; stream kept {retained:,} events of "
          f"history (the longest window)")
    print(f"process peak RSS {rss:.0f} MiB (interpreter, numpy, traffic and dict copies included)")
    print(f"env: {os.cpu_count()} cores, {platform.python_implementation()} "
          f"{platform.python_version()}, numpy {np.__version__}, {platform.machine()}; "
          "wall-clock, single process; input time-ordered as CloudTrail delivers it")
    print(f"columnar throughput {rate:,.0f} events/s: "
          f"{'PASS' if rate >= TARGET_EVENTS_PER_S else 'FAIL'} "
          f"(target {TARGET_EVENTS_PER_S:,} events/s, i.e. 1 M events in under 2 s)")
