"""Storage checks: bucket hardening (step 1), client-side encryption (1, 4), the ingest window (4).

The bucket-hardening checks do not read S3 themselves: each one takes its control from
:func:`securepipe.encryption.hardening.inspect_bucket`, computed once per bucket per run. That
verifier
decides the policy controls by *evaluating* the bucket policy, and tells a customer-managed
key from ``aws/s3`` (Prowler's ``s3_bucket_kms_encryption`` does not).
"""

from __future__ import annotations

from typing import Any

from securepipe.checks._base import (
    EVALUATION_ERRORS,
    Bucket,
    Check,
    CheckContext,
    ResourceResult,
    could_not_evaluate,
    per_resource,
)
from securepipe.checks.discovery import list_versions, read_head, recognise, stratified
from securepipe.encryption.hardening import Finding, inspect_bucket
from securepipe.errors import SecurePipeError

_HARDEN = "securepipe.encryption.hardening.apply_bucket_hardening(session, bucket, key_arn)"


def bucket_findings(ctx: CheckContext, bucket: Bucket) -> dict[str, Finding]:
    """:func:`~securepipe.encryption.hardening.inspect_bucket`'s findings for one bucket, once per
    run."""
    def compute() -> dict[str, Finding]:
        if bucket.key_arn is None:
            raise SecurePipeError(f"no customer-managed key is known for {bucket.name}; pass "
                                  "one (CheckConfig.buckets or --data-key)")
        return {f.control: f for f in inspect_bucket(ctx.session, bucket.name, bucket.key_arn,
                                                     account_id=ctx.account_id)}
    return ctx.memo(("inspect_bucket", bucket.name), compute)


def _hardening(control: str) -> Any:
    def evaluate(ctx: CheckContext) -> list[ResourceResult]:
        def one(bucket: Bucket) -> ResourceResult:
            finding = bucket_findings(ctx, bucket)[control]
            return ResourceResult(bucket.name, finding.status, finding.evidence)
        return per_resource(ctx.config.buckets, one, lambda b: b.name)
    return evaluate


def _account_public_access(ctx: CheckContext) -> list[ResourceResult]:
    """The account-level flags: the same for every bucket; the first readable finding wins."""
    errors: list[ResourceResult] = []
    for bucket in ctx.config.buckets:
        try:
            finding = bucket_findings(ctx, bucket)["account-public-access"]
        except Exception as exc:  # reported; the next bucket may still be readable
            errors.append(ResourceResult("account", "error", could_not_evaluate(exc)))
            continue
        if finding.status != "error":
            return [ResourceResult(f"account {ctx.account_id or ''}".strip(), finding.status,
                                   finding.evidence)]
        errors.append(ResourceResult("account", "error", finding.evidence))
    return errors[:1]


CHECKS: list[Check] = [
    Check(
        id="s3_bucket_default_encryption_cmk", title="Default encryption: SSE-KMS with the "
        "customer-managed key (not aws/s3)", severity="critical", step=1, checklist_item=2,
        rationale="With aws/s3 (the provider default) anyone allowed to read the bucket "
        "decrypts; a customer key adds its own key policy, its own audit trail of Decrypt "
        "calls, and can be disabled or shredded by you. Prowler's s3_bucket_kms_encryption "
        "passes on aws/s3; this check does not.",
        remediation=f"{_HARDEN}, with the customer key for that bucket's role",
        evaluate=_hardening("default-encryption")),
    Check(
        id="s3_bucket_key_enabled", title="S3 Bucket Key on for SSE-KMS", severity="low",
        step=1, checklist_item=2,
        rationale="Without a bucket key every object write and read is its own KMS call: cost "
        "and KMS request quotas push teams back to aws/s3.",
        remediation=_HARDEN, evaluate=_hardening("bucket-key")),
    Check(
        id="s3_bucket_tls_only_policy", title="Bucket policy denies every request without TLS",
        severity="high", step=1, checklist_item=1,
        rationale="A voiceprint read or written over plain HTTP can be captured on the wire; "
        "the deny on aws:SecureTransport=false is decided by evaluating the policy, so an "
        "equivalent statement passes and one that also blocks HTTPS fails.",
        remediation=_HARDEN, evaluate=_hardening("tls-only")),
    Check(
        id="s3_bucket_sse_kms_enforced", title="Bucket policy refuses uploads without SSE-KMS "
        "under the customer key", severity="high", step=1, checklist_item=2,
        rationale="Default encryption is a default: a client can still ask for another key or "
        "none. The policy pins the customer key on every PutObject.",
        remediation=_HARDEN, evaluate=_hardening("sse-kms-enforced")),
    Check(
        id="s3_bucket_public_access_block", title="Block Public Access: all four flags on the "
        "bucket", severity="critical", step=1, checklist_item=None,
        rationale="One ACL or policy statement granting public read exposes every recording; "
        "Block Public Access overrides both. (AWS enforces it; the sandbox only stores it.)",
        remediation=_HARDEN, evaluate=_hardening("public-access-block")),
    Check(
        id="s3_account_public_access_block", title="Block Public Access: all four flags on the "
        "account", severity="critical", step=1, checklist_item=None,
        rationale="The account-level block also covers buckets created later, by anyone.",
        remediation=_HARDEN + " (it sets the account level too; S3 Control "
        "PutPublicAccessBlock)", evaluate=_account_public_access),
    Check(
        id="s3_bucket_versioning", title="Versioning on", severity="medium", step=1,
        checklist_item=None,
        rationale="An overwrite or delete (by mistake, by ransomware) stays recoverable; in "
        "exchange, erasure must delete versions explicitly (step 5 does).",
        remediation=_HARDEN, evaluate=_hardening("versioning")),
    Check(
        id="s3_bucket_object_ownership_enforced", title="Object ownership BucketOwnerEnforced "
        "(ACLs off)", severity="medium", step=1, checklist_item=None,
        rationale="With ACLs off the account owns every object and only policies grant access: "
        "nothing hides in a per-object ACL the review cannot see.",
        remediation=_HARDEN, evaluate=_hardening("object-ownership")),
]


# -- client-side encryption of what is stored ----------------------------------------------------

_ARCHIVAL = frozenset({"GLACIER", "DEEP_ARCHIVE"})
#: ListObjectVersions pages (1,000 versions each) read per bucket at most: the bound on calls
#: for a bucket with millions of versions (the sample is spread over what was listed).
LIST_PAGES = 10


def classify(head: bytes) -> tuple[bool, str]:
    """Is this the start of an AWS Encryption SDK message? ``(ok, what it looks like)``.

    Message format (https://docs.aws.amazon.com/encryption-sdk/latest/developer-guide/message-format.html):
    version 2 starts ``0x02`` then a two-byte algorithm suite id; version 1 ``0x01 0x80`` then
    the suite id. Known plaintext formats are named by
    :func:`securepipe.checks.discovery.recognise` (WAV, FLAC, Ogg/Opus, MP3, ``.npy``, the kit's
    feature container, a Fernet token: encrypted, but with one shared key and bound to nothing).
    """
    content = recognise(head)
    if content.esdk:
        return True, content.kind
    if content.kind.startswith("unrecognised"):
        return False, f"not an AWS Encryption SDK message (starts {head[:8]!r})"
    return False, content.kind


def _client_side(ctx: CheckContext) -> list[ResourceResult]:
    """Every version, not only the current ones: ListObjectVersions (at most
    :data:`LIST_PAGES` pages per bucket), then the first 64 bytes of ``sample_objects`` versions
    per bucket, half current and half noncurrent (GetObject with ``Range`` and ``VersionId``:
    https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html). A plaintext WAV under a
    delete marker, or a plaintext ``.npy`` under an encrypted current version, fails."""
    s3 = ctx.client("s3")
    limit = ctx.config.sample_objects

    def one(bucket: Bucket) -> ResourceResult:
        listed, more = list_versions(s3, bucket.name, LIST_PAGES)
        readable = [v for v in listed if v.get("StorageClass") not in _ARCHIVAL]
        archival = len(listed) - len(readable)
        if not listed:
            return ResourceResult(bucket.name, "pass", "empty: no object version is stored "
                                  "(current or noncurrent)")
        if not readable:
            return ResourceResult(bucket.name, "unverifiable",
                                  f"all {archival} listed versions are in an archival class "
                                  "(GLACIER/DEEP_ARCHIVE): sampling them needs a restore")
        sample = stratified(readable, limit)
        bad, kinds, unread = [], set(), []
        for v in sample:
            where = v["Key"] + ("" if v.get("IsLatest", True) else
                                f" (noncurrent version {str(v.get('VersionId'))[:8]})")
            if int(v.get("Size", 1)) == 0:
                continue
            try:
                ok, what = classify(read_head(s3, bucket.name, v))
            except EVALUATION_ERRORS as exc:
                unread.append(f"{where}: {could_not_evaluate(exc)}")
                continue
            if ok:
                kinds.add(what)
            else:
                bad.append(f"{where} ({what})")
        old = sum(not v.get("IsLatest", True) for v in sample)
        scope = (f"{len(sample)} of {len(readable)}{'+' if more else ''} readable versions "
                 f"sampled ({old} noncurrent; sample {limit} per bucket, at most {LIST_PAGES} "
                 "list pages)")
        note = f"; {archival} archival version(s) not sampled" if archival else ""
        if bad:
            return ResourceResult(bucket.name, "fail",
                                  f"{len(bad)} sampled version(s) are not ESDK messages: "
                                  f"{', '.join(bad[:3])}" + (", ..." if len(bad) > 3 else "")
                                  + f"; {scope}{note}")
        if unread:
            return ResourceResult(bucket.name, "unverifiable",
                                  f"{len(unread)} sampled version(s) unreadable: "
                                  f"{'; '.join(unread[:2])}; {scope}")
        return ResourceResult(bucket.name, "pass",
                              f"{scope}, all {', '.join(sorted(kinds)) or 'empty'}{note}")

    return per_resource(ctx.config.data_buckets, one, lambda b: b.name)


def _ingest_window(ctx: CheckContext) -> list[ResourceResult]:
    """Every version under ``raw/`` against the clock (ListObjectVersions:
    https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectVersions.html)."""
    raw = ctx.config.bucket("raw")
    if raw is None:
        raise SecurePipeError("no raw bucket is known")
    now = ctx.now()
    window = ctx.config.ingest_window
    s3 = ctx.client("s3")
    versions: list[dict[str, Any]] = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=raw.name,
                                                                    Prefix="raw/"):
        versions.extend(page.get("Versions", []))
        versions.extend(page.get("DeleteMarkers", []))
    if not versions:
        return [ResourceResult(raw.name, "pass", "no raw upload is waiting under raw/")]
    old = sorted((v for v in versions if now - v["LastModified"] > window),
                 key=lambda v: v["LastModified"])
    oldest = min(v["LastModified"] for v in versions)
    age = now - oldest
    if old:
        shown = ", ".join(f"{v['Key']} ({(now - v['LastModified']).days} d)" for v in old[:3])
        return [ResourceResult(raw.name, "fail",
                               f"{len(old)} of {len(versions)} raw object version(s) older "
                               f"than the {_days(window)} ingest window: {shown}"
                               + (", ..." if len(old) > 3 else ""))]
    return [ResourceResult(raw.name, "pass",
                           f"{len(versions)} raw object version(s) waiting, the oldest "
                           f"{age.total_seconds() / 3600:.1f} h old (window {_days(window)})")]


def _days(delta: Any) -> str:
    days = delta.total_seconds() / 86400
    return f"{days:g} days"


CHECKS += [
    Check(
        id="s3_objects_client_side_encrypted", title="Stored recordings and features are AWS "
        "Encryption SDK messages (client-side encrypted)", severity="critical", step=1,
        checklist_item=1,
        rationale="SSE-KMS protects disks; whoever may GetObject still reads plaintext. Only "
        "client-side envelope encryption, bound to contractor and sample, protects a leaked "
        "object. Samples every version of each data bucket's objects, current and noncurrent "
        "(first 64 bytes), and names plaintext audio, .npy, the kit's feature container and "
        "Fernet tokens: plaintext kept as an old version is still stored.",
        remediation="upload with securepipe.encryption.upload.upload_sample (Envelope, step 1) "
        "and ingest with securepipe.features.ingest.ingest_batch (features encrypted, step 4); "
        "delete plaintext objects, every version", evaluate=_client_side),
    Check(
        id="s3_raw_uploads_within_ingest_window", title="No raw upload older than the ingest "
        "window", severity="high", step=4, checklist_item=5,
        rationale="Raw recordings are the most re-identifiable form of the data: ingest keeps "
        "features and deletes the raw object (every version) within minutes. Anything older "
        "than the window means ingest is not running or is failing.",
        remediation="run securepipe.features.ingest.ingest_batch on a schedule (it deletes "
        "every raw version once the features verify) and the raw-uploads lifecycle rule "
        "(securepipe.retention.lifecycle.lifecycle_rules('raw')) as a backstop",
        evaluate=_ingest_window),
]
