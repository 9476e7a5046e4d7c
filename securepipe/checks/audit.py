"""Audit checks (step 3): reads are logged, bulk reads alarm, and the shipped trail verifies.

The first two reuse :func:`securepipe.audit.monitoring.inspect_monitoring` (computed once per run);
the third reads every shipped trail back from the audit bucket and runs
:func:`securepipe.audit.chain.verify_trail` on it, pinned to the customer-managed keys.
"""

from __future__ import annotations

import json
from typing import Any

from securepipe.audit.chain import read_shipped, verify_trail
from securepipe.audit.monitoring import MonitoringFinding, inspect_monitoring
from securepipe.checks._base import Check, CheckContext, ResourceResult, per_resource
from securepipe.errors import SecurePipeError

_MAX_TRAILS = 50


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
    """ListObjectsV2 under the audit prefix, GetObject per trail (latest version), KMS Decrypt
    in :func:`~securepipe.audit.chain.verify_trail`, HeadObject for the Object Lock state
    (https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html)."""
    audit = ctx.config.bucket("audit")
    if audit is None:
        raise SecurePipeError("no audit bucket is known")
    if not ctx.config.key_arns:
        raise SecurePipeError("no customer-managed key is known to pin the trails to")
    s3 = ctx.client("s3")
    prefix = ctx.config.audit_prefix
    objects = [o for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=audit.name, Prefix=prefix) for o in page.get("Contents", [])]
    if not objects:
        return [ResourceResult(audit.name, "fail", f"no shipped trail under s3://{audit.name}/"
                               f"{prefix}: accesses are not recorded tamper-evidently")]
    objects.sort(key=lambda o: o["LastModified"], reverse=True)
    keys = set(ctx.config.key_arns)
    now = ctx.now()

    def one(obj: dict[str, Any]) -> ResourceResult:
        key = obj["Key"]
        name = f"s3://{audit.name}/{key}"
        lines = read_shipped(ctx.session, audit.name, key)
        try:
            header = json.loads(lines[0]) if lines else {}
        except ValueError:
            header = {}
        key_arn = header.get("key_arn") if isinstance(header, dict) else None
        if key_arn is None:
            broken = verify_trail(lines, ctx.session)
            return ResourceResult(name, "fail", f"does not verify: line {broken.index}: "
                                  f"{broken.reason}")
        if key_arn not in keys:
            return ResourceResult(name, "fail", f"its header names key {key_arn}, not one of "
                                  "the customer keys: anyone could have written it under a key "
                                  "of their own")
        result = verify_trail(lines, ctx.session, key_arn=key_arn)
        if not result.ok:
            return ResourceResult(name, "fail", f"tampered: line {result.index}: {result.reason}")
        head = s3.head_object(Bucket=audit.name, Key=key)
        mode, until = head.get("ObjectLockMode"), head.get("ObjectLockRetainUntilDate")
        if not mode or until is None or until <= now:
            return ResourceResult(name, "fail", f"verifies ({result.records} records), but this "
                                  "version is not under Object Lock retention: it can be "
                                  "deleted")
        return ResourceResult(name, "pass", f"verifies: {result.records} records, "
                              f"{result.checkpoints} checkpoints; Object Lock {mode} until "
                              f"{until:%Y-%m-%d}")

    results = per_resource(objects[:_MAX_TRAILS], one, lambda o: f"s3://{audit.name}/{o['Key']}")
    if len(objects) > _MAX_TRAILS:
        results.append(ResourceResult(audit.name, "pass", f"the {_MAX_TRAILS} most recent of "
                                      f"{len(objects)} trails were verified"))
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
        id="audit_trail_verifies", title="Shipped audit trails verify and are under Object Lock",
        severity="high", step=3, checklist_item=4,
        rationale="A plain log file can be edited after the fact. The kit's trail is "
        "hash-chained with KMS-keyed HMAC checkpoints; each shipped trail (latest version) must "
        "verify against the customer keys and be under Object Lock retention.",
        remediation="securepipe.audit.chain.AuditTrail (with TrailHandler on the "
        "securepipe.audit.records logger), then securepipe.audit.chain.ship_to_bucket",
        evaluate=_trails),
]
