"""Verifying a signed audit trail of 100,000 records: time on one core, and KMS calls.

A :class:`securepipe.audit.ledger.TrailLedger` in an in-process sandbox writes one trail of
``SECUREPIPE_BENCH_TRAIL_RECORDS`` records (default 100,000; a signed checkpoint every
:data:`~securepipe.audit.chain.DEFAULT_CHECKPOINT_EVERY` records, so about 1,000 KMS ``Sign``
calls by the writer), ships it and seals a digest. Then the verifier side:

* ``verify_bucket``: ListObjectVersions, GetObject per version, one KMS ``GetPublicKey``, and
  the offline check of every line and signature; KMS calls are counted with a botocore event
  hook on the verifier's session;
* ``verify_history`` alone (the CPU part, the history already read), median of 3 runs, wall and
  process CPU time.

The target: under :data:`TARGET_S` seconds of CPU for the offline check, and at most one KMS
call per trail. Run: ``python -m benchmarks trail``.
"""

from __future__ import annotations

import os
import platform
import statistics
import time

from securepipe.audit.chain import DEFAULT_CHECKPOINT_EVERY
from securepipe.audit.ledger import TrailLedger, read_history, verify_bucket, verify_history
from securepipe.encryption.signing import PublicKeyVerifier
from securepipe.report import format_table
from securepipe.sandbox.account import Sandbox

RECORDS = int(os.environ.get("SECUREPIPE_BENCH_TRAIL_RECORDS", "100000"))
TARGET_S = 3.0


def main() -> None:
    with Sandbox() as sb:
        bucket, key = sb.resources.bucket("audit"), sb.resources.signing_key_arn
        ledger = TrailLedger(sb.session, bucket, key)
        start = time.perf_counter()
        trail = ledger.open("bench", checkpoint_every=DEFAULT_CHECKPOINT_EVERY)
        for i in range(RECORDS):
            trail.append_fields({"principal": "arn:aws:iam::123456789012:role/trainer",
                                 "action": "s3:GetObject", "bucket": bucket,
                                 "key": f"features/c{i % 24:02d}/spk{i % 40:02d}_u{i}.npz",
                                 "bytes": 48_000 + i % 997, "outcome": "allowed"})
        shipped = ledger.ship(trail)
        ledger.seal()
        written = time.perf_counter() - start

        kms_calls: list[str] = []
        sb.session.events.register("before-call.kms",
                                   lambda model, **_: kms_calls.append(model.name))
        start = time.perf_counter()
        result = verify_bucket(sb.session, bucket, key)
        end_to_end = time.perf_counter() - start
        verify_calls = list(kms_calls)         # verify_bucket's calls only
        assert result.ok and result.records == RECORDS, result.first_break

        history = read_history(sb.session, bucket)
        verifier = PublicKeyVerifier.from_kms(sb.session, key)
        walls, cpus = [], []
        for _ in range(3):
            w, c = time.perf_counter(), time.process_time()
            again = verify_history(history, verifier)
            walls.append(time.perf_counter() - w)
            cpus.append(time.process_time() - c)
            assert again.ok
    size = len(next(iter(history.trails.values())).body or b"")
    cpu = statistics.median(cpus)
    print(format_table([
        {"what": "write + ship + seal", "records": RECORDS, "seconds": round(written, 2),
         "KMS calls": f"~{RECORDS // DEFAULT_CHECKPOINT_EVERY + 2} Sign (writer)"},
        {"what": "verify_bucket (S3 reads + offline check)", "records": result.records,
         "seconds": round(end_to_end, 2),
         "KMS calls": f"{len(verify_calls)} ({', '.join(verify_calls)})"},
        {"what": "verify_history, median of 3 (wall)", "records": again.records,
         "seconds": round(statistics.median(walls), 2), "KMS calls": 0},
        {"what": "verify_history, median of 3 (CPU)", "records": again.records,
         "seconds": round(cpu, 2), "KMS calls": 0},
    ]))
    print(f"\ntrail object {size / 1e6:.1f} MB ({shipped.key}); {platform.python_implementation()} "
          f"{platform.python_version()}, one core; load average {os.getloadavg()[0]:.1f}")
    print(f"target: offline check under {TARGET_S:.0f} s CPU and at most 1 KMS call per trail: "
          + ("met" if cpu < TARGET_S and len(verify_calls) <= result.trails else "NOT met"))
