"""Retention checks (step 5): lifecycle rules that really expire data, and nothing kept too long.

Both reuse step 5's verifiers in :mod:`securepipe.retention.lifecycle`:

* ``s3_lifecycle_expires_data`` runs :func:`securepipe.retention.lifecycle.inspect_lifecycle` on
each data
  bucket with the kit's data prefixes for its role, and fails on any lifecycle finding that
  fails: a rule that never expires anything (disabled, transitions only, a filter that matches
  none of the data, as the article's ``raw-samples/`` rule), a data prefix without expiry, no
  noncurrent-version expiry in a versioned bucket, no multipart abort. Every expiration,
  noncurrent expiration and multipart abort must fall within the longest consent term the
  consent registry holds (:meth:`~securepipe.retention.consent.ConsentRegistry.longest_term_days`)
  when its table (:attr:`~securepipe.checks.CheckConfig.consent_table`, found by
  :meth:`~securepipe.checks.CheckConfig.discover`) exists, else within BIPA's 1,095 days; the
  raw prefix within the ingest window. Prowler's
  ``s3_bucket_lifecycle_enabled`` passes on any enabled rule;
* ``retention_no_expired_objects`` runs :func:`securepipe.retention.lifecycle.sweep` as a **dry
run** over
  the data buckets, against the consent registry: any version past its speaker's retain-until
  date, or that cannot be attributed to a consent record, fails. Versions kept by Object Lock
  (a legal hold) are reported, not failed: S3 will not delete them and must not.

moto stores lifecycle rules and never applies them (gap ``s3-lifecycle``): in the sandbox the
lifecycle check is a configuration check and the sweep is what enforces retention.
"""

from __future__ import annotations

import math

from botocore.exceptions import ClientError

from securepipe.checks._base import (
    Bucket,
    Check,
    CheckContext,
    ResourceResult,
    Status,
    per_resource,
)
from securepipe.errors import SecurePipeError
from securepipe.retention.consent import BIPA_MAX_DAYS, ConsentRegistry
from securepipe.retention.lifecycle import DATA_PREFIXES, inspect_lifecycle
from securepipe.retention.sweeper import sweep


def _registry(ctx: CheckContext) -> ConsentRegistry | None:
    """The consent registry if its table exists (DescribeTable); ``None`` if there is none.

    Any other failure to read it (AccessDenied, throttling) propagates, so the check reports
    ``error`` rather than judging against a limit the registry might lower.
    """
    table = ctx.config.consent_table
    try:
        ctx.client("dynamodb").describe_table(TableName=table)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return None
        raise
    return ConsentRegistry(ctx.session, table, create=False)


def _lifecycle(ctx: CheckContext) -> list[ResourceResult]:
    data_prefixes = DATA_PREFIXES
    registry = _registry(ctx)
    if registry is not None and not registry.speakers():
        # a freshly provisioned registry: no term to judge by yet (and no speaker's data may
        # be held at all), so the rules are judged against BIPA's cap until one is recorded
        registry = None
        limit = (f"limit {BIPA_MAX_DAYS} days (BIPA); the consent registry "
                 f"{ctx.config.consent_table!r} holds no consent record yet")
    elif registry is None:
        limit = (f"limit {BIPA_MAX_DAYS} days (BIPA); no consent registry "
                 f"{ctx.config.consent_table!r} to take the consent terms from")
    else:
        limit = (f"limit {registry.longest_term_days()} days, the longest consent term in "
                 f"{registry.table!r}")

    # raw uploads: within the configured ingest window (whole days, rounded up)
    window_days = max(1, math.ceil(ctx.config.ingest_window.total_seconds() / 86_400))

    def one(bucket: Bucket) -> ResourceResult:
        findings = inspect_lifecycle(ctx.session, bucket.name,
                                     data_prefixes=data_prefixes.get(bucket.role),
                                     registry=registry, clock=ctx.now,
                                     ingest_window_days=window_days)
        bad = [f for f in findings if f.status != "pass"]
        status: Status = "fail" if any(f.status == "fail" for f in bad) else (
            "error" if bad else "pass")
        if not bad:
            expiry = next((f.evidence for f in findings
                           if f.control == "lifecycle-expires-data"), "")
            return ResourceResult(bucket.name, "pass", f"{len(findings)} lifecycle findings "
                                  f"pass; {expiry}; {limit}")
        return ResourceResult(bucket.name, status, "; ".join(
            f"{f.control}: {f.evidence}" for f in bad) + f"; {limit}")

    return per_resource(ctx.config.data_buckets, one, lambda b: b.name)


def _sweep(ctx: CheckContext) -> list[ResourceResult]:
    buckets = [b.name for b in ctx.config.data_buckets]
    if not buckets:
        raise SecurePipeError("no data bucket is known")
    table = ctx.config.consent_table
    try:
        registry = ConsentRegistry(ctx.session, table, create=False)
        ctx.client("dynamodb").describe_table(TableName=table)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return [ResourceResult("account", "fail", f"no consent registry (DynamoDB table "
                                   f"{table!r}): no object's retention date can be known")]
        raise
    report = sweep(ctx.session, buckets=buckets, registry=registry, clock=ctx.now,
                   dry_run=True, sample_speakers=ctx.config.sample_speakers)
    results: list[ResourceResult] = []
    for entry in report.would_delete:
        results.append(ResourceResult(f"s3://{entry.bucket}/{entry.key}", "fail",
                                      f"past retention ({entry.reason}); version "
                                      f"{entry.version_id[:8]}"))
    for entry in report.unattributed:
        results.append(ResourceResult(f"s3://{entry.bucket}/{entry.key}", "fail",
                                      f"not attributable to a consent record: {entry.reason}"))
    for error in report.registry_errors:
        results.append(ResourceResult(f"dynamodb:{table}", "fail",
                                      f"malformed consent item: {error}"))
    for entry in report.aborted:
        results.append(ResourceResult(f"s3://{entry.bucket}/{entry.key}", "fail",
                                      f"unfinished multipart upload to abort: {entry.reason}"))
    kept = report.kept
    summary = (f"dry-run sweep at {report.at:%Y-%m-%d %H:%M} UTC: {report.retained} version(s) "
               "within retention")
    if kept:
        summary += (f"; {len(kept)} expired version(s) kept by Object Lock: "
                    + ", ".join(f"{e.key} ({e.reason})" for e in kept[:3]))
    results.append(ResourceResult("account", "pass", summary))
    return results


CHECKS: list[Check] = [
    Check(
        id="s3_lifecycle_expires_data", title="Lifecycle rules expire the data and its old "
        "versions", severity="high", step=5, checklist_item=6,
        rationale="Data you don't have can't be stolen. A rule with only a transition, or "
        "whose prefix matches nothing, passes an 'is lifecycle enabled' check and deletes "
        "nothing; in a versioned bucket an expiration without NoncurrentVersionExpiration "
        "keeps every old version readable.",
        remediation="securepipe.retention.lifecycle.apply_lifecycle(session, bucket, "
        "securepipe.retention.lifecycle.lifecycle_rules(role))", evaluate=_lifecycle),
    Check(
        id="retention_no_expired_objects", title="No object kept past its speaker's retention "
        "date (dry-run sweep)", severity="high", step=5, checklist_item=6,
        rationale="Lifecycle counts days from upload and knows nothing about consent: BIPA's 3 "
        "years from the last interaction, a consent term, a withdrawal. The sweep checks every "
        "version against its speaker's consent record; an object nobody can attribute cannot "
        "be shown to be within retention.",
        remediation="securepipe.retention.lifecycle.sweep(session, buckets=..., registry=..., "
        "dry_run=False) on a schedule; erase withdrawn speakers (step 5)", evaluate=_sweep),
]
