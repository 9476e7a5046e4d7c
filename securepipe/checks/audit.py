"""Audit checks (step 3): reads are logged, bulk reads alarm, and the shipped history verifies.

The first two reuse :func:`securepipe.audit.monitoring.inspect_monitoring` (computed once per run);
the third reads every version under the audit bucket's trail and digest prefixes and runs
:func:`securepipe.audit.ledger.verify_history` on them, offline with the signing key's public
key, and reads the bucket's default Object Lock retention.
"""

from __future__ import annotations

from typing import Any

from securepipe.audit.ledger import DIGEST_PREFIX, default_retention, verify_bucket
from securepipe.audit.monitoring import MonitoringFinding, inspect_monitoring
from securepipe.checks._base import Check, CheckContext, ResourceResult
from securepipe.errors import SecurePipeError


def monitoring_findings(ctx: CheckContext) -> list[MonitoringFinding]:
    """:func:`~securepipe.audit.monitoring.inspect_monitoring` over the data buckets, once per
    run."""
    def compute() -> list[MonitoringFinding]:
        from securepipe.retention.lifecycle import DATA_PREFIXES

        buckets = [b.name for b in ctx.config.data_buckets]
        if not buckets:
            raise SecurePipeError("no data bucket is known")
        prefixes = {b.name: DATA_PREFIXES.get(b.role, ("",)) for b in ctx.config.data_buckets}
        return inspect_monitoring(ctx.session, buckets, prefixes=prefixes)
    return ctx.memo("inspect_monitoring", compute)


def _from_monitoring(controls: tuple[str, ...]) -> Any:
    def evaluate(ctx: CheckContext) -> list[ResourceResult]:
        return [ResourceResult(f.resource, f.status, f"{f.control}: {f.evidence}")
                for f in monitoring_findings(ctx) if f.control in controls]
    return evaluate


def _trails(ctx: CheckContext) -> list[ResourceResult]:
    """GetObjectLockConfiguration on the audit bucket; ListObjectVersions and GetObject per
    version under the trail and digest prefixes, verified offline (one KMS GetPublicKey):
    https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectVersions.html"""
    audit = ctx.config.bucket("audit")
    if audit is None:
        raise SecurePipeError("no audit bucket is known")
    key = ctx.config.signing_key_arn
    if key is None:
        raise SecurePipeError("no audit signing key is known (alias/securepipe-signing) to pin "
                              "the trails to")
    results: list[ResourceResult] = []
    rule = default_retention(ctx.session, audit.name)
    if rule is None:
        results.append(ResourceResult(audit.name, "fail", "no default Object Lock retention: a "
                                      "plain PutObject into the audit bucket is not locked"))
    else:
        span = f"{rule.get('Days') or rule.get('Years')} {'days' if rule.get('Days') else 'years'}"
        results.append(ResourceResult(audit.name, "pass", f"default retention {rule['Mode']} "
                                      f"{span}: every put is locked"))
    prefix = ctx.config.audit_prefix
    history = verify_bucket(ctx.session, audit.name, key, trail_prefix=prefix,
                            digest_prefix=DIGEST_PREFIX, legacy=bool(ctx.config.key_arns),
                            legacy_key_arns=ctx.config.key_arns)
    where = f"s3://{audit.name}/{prefix}"
    for name, legacy in history.legacy:
        results.append(ResourceResult(f"s3://{audit.name}/{name}", "fail", f"verifies only as "
                                      f"{legacy.scheme}: whoever can verify it could have "
                                      "written it; ship new trails signed"))
    if history.first_break is not None:
        results.append(ResourceResult(where, "fail", f"{len(history.breaks)} break(s); the "
                                      f"first: {history.first_break}"))
    elif history.days == 0 and not history.legacy:
        results.append(ResourceResult(where, "fail", "no signed trail history: accesses are not "
                                      "recorded tamper-evidently"))
    elif history.days:
        results.append(ResourceResult(where, "pass", f"{history.days} digest(s), "
                                      f"{history.trails} trail(s), {history.records} records "
                                      "verify offline with the signing key's public key; no "
                                      "version hidden or unlisted"))
    return results


CHECKS: list[Check] = [
    Check(
        id="cloudtrail_s3_data_events", title="CloudTrail logs GetObject on the data buckets "
        "and KMS Decrypt", severity="high", step=3, checklist_item=4,
        rationale="S3 data events are off by default: without them nobody can say who read "
        "which recording. A logging, multi-region trail with log file validation must capture "
        "GetObject, PutObject and DeleteObject on every object under every data prefix the kit "
        "uses (decided from its selectors, naming each prefix and operation not logged; no "
        "probe key) and KMS events.",
        remediation="securepipe.audit.monitoring.apply_monitoring(session, data_buckets, "
        "audit_bucket)",
        evaluate=_from_monitoring(("trail-logging", "s3-data-events", "kms-management-events"))),
    Check(
        id="s3_bulk_read_alarms", title="Alarms that can see bulk reads (request metrics, not "
        "NumberOfObjects)", severity="medium", step=3, checklist_item=4,
        rationale="NumberOfObjects counts objects stored, once a day: a bulk download never "
        "moves it. GetRequests/BytesDownloaded (request metrics) do, and must notify someone. "
        "The sandbox cannot store request-metrics configurations: that part is unverifiable "
        "there.",
        remediation="securepipe.audit.monitoring.apply_monitoring (and delete NumberOfObjects "
        "alarms); securepipe.audit.detector for per-principal detection",
        evaluate=_from_monitoring(("s3-request-metrics", "alarm-get-requests",
                                   "alarm-bytes-downloaded", "alarm-delivery",
                                   "no-storage-metric-alarm"))),
    Check(
        id="audit_trail_verifies", title="The shipped trail history verifies with a public key, "
        "and the audit bucket locks every put", severity="high", step=3, checklist_item=4,
        rationale="A plain log file can be edited after the fact, and a trail a verifier could "
        "re-sign proves nothing. The kit's trails are hash-chained, their checkpoints signed "
        "with an asymmetric KMS key, chained trail to trail and listed in signed digest "
        "indexes; every version (delete markers included) must verify with the public key, and "
        "the audit bucket must have a default Object Lock retention.",
        remediation="securepipe.audit.ledger.TrailLedger (open, ship, seal) and "
        "securepipe.audit.ledger.apply_default_retention on the audit bucket",
        evaluate=_trails),
]
