"""One worker of the ingest benchmark, in a process of its own against the server-mode sandbox.

``python -m benchmarks.ingest_worker_process SPEC`` (SPEC: JSON written by
:func:`benchmarks.bench_ingest._worker_process`) runs
:func:`securepipe.features.worker.ingest_worker` through a profile session, either the kit's
per-sample ingest (``"kind": "kit"``) or the floor that makes the same AWS calls and only
extracts (``"kind": "floor"``), and prints one JSON line: the loop's wall time, the process's
CPU time, the report's summary and the reasons of any failed sample.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from benchmarks.bench_ingest import _clips, _warm, floor_step
from securepipe.features.ingest import IngestConfig, ProfileSessionFactory, prepare_clients
from securepipe.features.worker import WorkerSettings, ingest_worker


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    logging.getLogger("aws_encryption_sdk").setLevel(logging.CRITICAL)
    factory = ProfileSessionFactory(spec["profile"], spec["config_file"], spec["ca_bundle"])
    config = IngestConfig(**spec["config"])
    settings = WorkerSettings(**spec["settings"])
    _warm()
    if spec["kind"] == "floor":
        process = floor_step(factory(), config, _clips(spec["clips"]), settings.concurrency)
    else:   # the worker's own start-up step, before the clock as the floor's clients are
        process = None
        prepare_clients(config, factory, max_pool_connections=settings.concurrency)
    cpu, start = time.process_time(), time.perf_counter()
    report = ingest_worker(config, settings, factory, process=process)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "summary": report.summary(),
                      "failed": [o.reason for o in report.outcomes if o.status == "failed"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
