"""Two sandbox accounts to score: one built the kit's way, one in the common pattern's style.

:func:`hardened_account` applies every step's controls with the kit's own functions (so a
green scorecard on it is evidence that the steps compose), and :func:`misconfigured_account`
reproduces the seed article's pattern: the provider-default key, no bucket policy, a contractor
with a long-lived key, a 12-hour role session built with an f-string, one shared Fernet key,
features as plain ``.npy``, one lifecycle rule on a prefix where nothing lives, a
``NumberOfObjects`` alarm and a plain log file. Both take a started
:class:`~securepipe.sandbox.account.Sandbox` (in-process or server mode) and return a
:class:`Scenario`
saying what was done, step by step, and how to configure the checks for it.

The sandbox cannot backdate objects (S3 sets ``LastModified``), so the misconfigured scenario's
:meth:`Scenario.check_config` runs the checks by a clock ``days_later`` days ahead: the
scorecard is read as it would be a week and a day after the uploads, when the common pattern's
raw recordings are still there.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import boto3

from securepipe.checks._base import CheckConfig, default_clock
from securepipe.errors import InvalidParameterError
from securepipe.sandbox.account import Sandbox

__all__ = [
    "DEFAULT_CONTRACTORS",
    "Scenario",
    "hardened_account",
    "misconfigured_account",
    "purge_prefix",
    "trail_to",
]

#: Contractors whose first recording each scenario uploads (the synthetic set has c01-c04).
DEFAULT_CONTRACTORS = ("c02", "c03", "c04")
TRAIL_PREFIX = "trails/"
_AUDIT_LOGGER = "securepipe.audit.records"


@dataclass(frozen=True)
class Scenario:
    """What a scenario built: ``actions`` rows (step, kit function or API, what it did)."""

    name: str
    actions: tuple[dict[str, Any], ...]
    sample_speakers: Mapping[str, str]
    contractors: tuple[str, ...]
    days_later: int = 0
    extra: Mapping[str, Any] = field(default_factory=dict)

    def check_config(self, session: boto3.Session, **overrides: Any) -> CheckConfig:
        """:meth:`CheckConfig.discover` for this account, with the scenario's clock and the
        manifest's ``sample_id -> speaker`` mapping (for attributing raw uploads)."""
        clock = default_clock
        if self.days_later:
            ahead = dt.timedelta(days=self.days_later)

            def clock() -> dt.datetime:
                return default_clock() + ahead

        settings: dict[str, Any] = {"sample_speakers": dict(self.sample_speakers),
                                    "clock": clock}
        settings.update(overrides)
        return CheckConfig.discover(session, **settings)


def rebased_manifest(today: dt.date | None = None) -> Any:
    """The synthetic manifest with every consent date moved so the *latest* consent was given
    ``today`` (default: the sandbox clock's date).

    The committed consents carry absolute dates (2025-2029). A scenario that should be inside
    retention whenever it is built, this year or in five years' time, rebases them; the
    relative spacing between speakers, and each speaker's term, are kept. Every consent has
    then started (the consent registry refuses writes before a consent date) and the earliest
    retention date is months away (326 days with the committed data).
    """
    import dataclasses

    from securepipe.data.dataset import load_manifest

    manifest = load_manifest()
    today = today or default_clock().date()
    shift = today - max(s.consent.consent_date for s in manifest.speakers)
    if not shift:
        return manifest

    def moved(c: Any) -> Any:
        return dataclasses.replace(
            c, consent_date=c.consent_date + shift, retention_until=c.retention_until + shift,
            withdrawn=None if c.withdrawn is None else c.withdrawn + shift)

    speakers = tuple(dataclasses.replace(s, consent=moved(s.consent)) for s in manifest.speakers)
    return dataclasses.replace(manifest, speakers=speakers)


def _uploads(contractors: Sequence[str]) -> list[Any]:
    """One ordinary recording (no legal hold, no archive flag) per contractor: the one whose
    speaker's consent runs longest, so the scenario stays within retention as long as the
    synthetic consents allow (:func:`rebased_manifest`)."""
    manifest = rebased_manifest()

    def lasts(u: Any) -> dt.date:
        c = manifest.speaker(u.speaker).consent
        return min(c.consent_date + dt.timedelta(days=c.term_days), c.retention_until)

    chosen = []
    for contractor in contractors:
        ordinary = [u for u in manifest.utterances if u.contractor == contractor
                    and not u.legal_hold and not u.archive_required]
        if not ordinary:
            raise InvalidParameterError(f"no recording of contractor {contractor!r} in the "
                                        "synthetic manifest")
        chosen.append(max(ordinary, key=lambda u: (lasts(u), u.sample_id)))
    return chosen


def _row(step: int, function: str, what: str) -> dict[str, Any]:
    return {"step": step, "kit function / API": function, "what": what}


@contextlib.contextmanager
def trail_to(trail: Any) -> Iterator[None]:
    """Send the ``securepipe.audit.records`` logger's records into ``trail`` for the block's
    duration
    (restoring the logger's handlers, level and propagation afterwards)."""
    from securepipe.audit.chain import TrailHandler
    from securepipe.audit.records import audit_logger

    logger = logging.getLogger(_AUDIT_LOGGER)
    saved = (list(logger.handlers), logger.level, logger.propagate)
    handler = TrailHandler(trail)
    audit_logger(_AUDIT_LOGGER, handler=handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.handlers[:] = saved[0]
        logger.setLevel(saved[1])
        logger.propagate = saved[2]


def purge_prefix(session: boto3.Session, bucket: str, prefix: str) -> int:
    """Delete every version and delete marker under ``prefix`` (DeleteObject with VersionId:
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/DeletingObjectVersions.html)."""
    s3 = session.client("s3")
    gone = 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Versions", []) + page.get("DeleteMarkers", []):
            s3.delete_object(Bucket=bucket, Key=entry["Key"], VersionId=entry["VersionId"])
            gone += 1
    return gone


def hardened_account(
    sb: Sandbox,
    *,
    contractors: Sequence[str] = DEFAULT_CONTRACTORS,
    pending: int = 1,
    progress: Callable[[str], None] | None = None,
) -> Scenario:
    """Apply every step's controls to a fresh sandbox account, the kit's way.

    1. :func:`~securepipe.encryption.hardening.apply_bucket_hardening` on raw, features, archive
    (its own
       key) and audit; key rotation on both customer keys;
    2. :func:`~securepipe.access.credentials.ensure_contractor_role` (12 h -> 1 h maximum sessions),
       :func:`~securepipe.access.credentials.apply_presign_age_cap` on the data buckets, and each
       contractor
       uploads one recording with :func:`~securepipe.encryption.upload.upload_sample` through
       credentials
       from :func:`~securepipe.access.credentials.vend_contractor_credentials`;
    5. the consent registry (:class:`~securepipe.retention.consent.ConsentRegistry`) and
       :func:`~securepipe.retention.lifecycle.apply_lifecycle` with
       :func:`~securepipe.retention.lifecycle.lifecycle_rules` per bucket role;
    4. :func:`~securepipe.features.ingest.ingest_batch` on all but ``pending`` uploads (a fresh
    upload
       waiting for the next run), its audit records chained into a signed
       :class:`~securepipe.audit.chain.AuditTrail`;
    3. :func:`~securepipe.audit.monitoring.apply_monitoring` (trail with data events, alarms);
       the audit bucket's default retention; the trail, signed with the signing key, shipped
       and sealed by a :class:`~securepipe.audit.ledger.TrailLedger` under Object Lock.
    """
    from securepipe.access.credentials import (
        contractor_session,
        ensure_contractor_role,
        vend_contractor_credentials,
    )
    from securepipe.access.presigned import apply_presign_age_cap
    from securepipe.audit.ledger import TrailLedger, apply_default_retention
    from securepipe.audit.monitoring import apply_monitoring
    from securepipe.encryption.envelope import Envelope, EnvelopeConfig, SampleContext
    from securepipe.encryption.hardening import (
        apply_account_public_access_block,
        apply_bucket_hardening,
    )
    from securepipe.encryption.upload import upload_sample
    from securepipe.features.ingest import IngestConfig, IngestItem, ingest_batch
    from securepipe.retention.consent import ConsentRegistry
    from securepipe.retention.lifecycle import (
        apply_lifecycle,
        features_expiration_days,
        lifecycle_rules,
    )

    say = progress or (lambda _: None)
    if not 0 <= pending <= len(contractors):
        raise InvalidParameterError("pending must be between 0 and the number of contractors")
    session, res = sb.session, sb.resources
    raw, features, archive, audit = (res.bucket(r) for r in ("raw", "features", "archive",
                                                             "audit"))
    data_key, archive_key = res.kms_key_arn, res.archive_key_arn
    manifest = rebased_manifest()
    actions: list[dict[str, Any]] = []

    say("step 1: bucket hardening")
    for bucket, key in ((raw, data_key), (features, data_key), (archive, archive_key),
                        (audit, data_key)):
        apply_bucket_hardening(session, bucket, key)
    apply_account_public_access_block(session)
    kms = session.client("kms")
    for key in (data_key, archive_key):
        kms.enable_key_rotation(KeyId=key.rsplit("/", 1)[-1])
    actions.append(_row(1, "hardening.apply_bucket_hardening", "raw, features, archive, audit: "
                        "SSE-KMS (customer key), bucket key, TLS-only + SSE-KMS policy, Block "
                        "Public Access, versioning, ACLs off"))
    actions.append(_row(1, "hardening.apply_account_public_access_block", "Block Public Access "
                        "for the whole account (an explicit, account-wide call)"))
    actions.append(_row(1, "KMS EnableKeyRotation", "both customer keys rotate"))

    say("step 2: contractor role, presign cap, uploads")
    role_arn = ensure_contractor_role(session, bucket=raw, key_arn=data_key, max_session_s=3600)
    for bucket in (raw, features, archive):
        apply_presign_age_cap(session, bucket)
    actions.append(_row(2, "access.ensure_contractor_role", "one contractor role, sessions of "
                        "at most 1 h"))
    actions.append(_row(2, "access.apply_presign_age_cap", "data buckets refuse requests "
                        "signed more than 900 s earlier"))
    # the consent registry comes first: every upload names its speaker and passes its gate
    # with the audit bucket's erasure anchors: a restored registry item never readmits an
    # erased speaker
    registry = ConsentRegistry(session, kms_key_arn=data_key, anchor_bucket=audit)
    registry.load_manifest_consents(manifest)
    uploads = _uploads(contractors)
    for u in uploads:
        creds = vend_contractor_credentials(session, role_arn=role_arn, contractor=u.contractor,
                                            bucket=raw, key_arn=data_key)
        cs = contractor_session(session, creds)
        upload_sample(cs, Envelope(cs, EnvelopeConfig(key_arns=data_key)),
                      manifest.path_of(u), bucket=raw, key_arn=data_key,
                      context=SampleContext(u.contractor, u.sample_id, "speech-model-training"),
                      speaker=u.speaker, consent=registry)
    actions.append(_row(2, "access.vend_contractor_credentials + upload.upload_sample",
                        f"{len(uploads)} recordings, client-side encrypted, each by its "
                        "contractor's 15-minute session, each admitted by the consent registry "
                        "and naming its speaker"))

    say("step 5: consent registry, lifecycle")
    terms = [s.consent.term_days for s in manifest.speakers]
    for bucket, role in ((raw, "raw"), (features, "features"), (archive, "archive")):
        # role is one of lifecycle's Role literals (the type checker cannot see it).
        rules = lifecycle_rules(role, max_term_days=features_expiration_days(terms))  # type: ignore[arg-type]
        apply_lifecycle(session, bucket, rules)
    actions.append(_row(5, "consent.ConsentRegistry.load_manifest_consents", "a consent record "
                        "per speaker (retention dates)"))
    actions.append(_row(5, "retention.apply_lifecycle(lifecycle_rules(role))", "raw/ 7 days, "
                        "features within the consent term, archive capped; old versions go"))

    say("step 4: ingest")
    config = IngestConfig(raw_bucket=raw, features_bucket=features, archive_bucket=archive,
                          key_arn=data_key, archive_key_arn=archive_key, anchor_bucket=audit)
    items = [IngestItem(u.contractor, u.sample_id, speaker=u.speaker)
             for u in uploads[: len(uploads) - pending]]
    # The trail is signed with the asymmetric signing key, never the data key: verifiers need
    # only its public key, and no contractor role may use it.
    ledger = TrailLedger.resume(session, audit, res.signing_key_arn, sse_kms_key_arn=data_key)
    trail = ledger.open(f"ingest-{sb.account_id}", checkpoint_every=10)
    with trail_to(trail):
        report = ingest_batch(items, config, lambda: session)
    actions.append(_row(4, "ingest.ingest_batch", f"{report.count('processed')} recordings -> "
                        f"encrypted features, raw deleted (every version); {pending} fresh "
                        "upload waits for the next run"))

    say("step 3: monitoring, trail")
    setup = apply_monitoring(session, [raw, features, archive], audit, kms_key_arn=data_key)
    apply_default_retention(session, audit)
    shipped = ledger.ship(trail)
    sealed = ledger.seal()
    actions.append(_row(3, "monitoring.apply_monitoring", "CloudTrail data events on the data "
                        "buckets, request-metric alarms to SNS"))
    _guard_keys(sb, setup.trail_arn, setup.topic_arn, actions)
    actions.append(_row(3, "ledger.TrailLedger + apply_default_retention", f"ingest's signed "
                        f"trail shipped to {shipped.key} and listed in the signed digest "
                        f"{sealed.key}, COMPLIANCE-locked; the audit bucket locks every put"))
    # no sample -> speaker mapping: every object names its speaker, the registry indexes samples
    return Scenario("hardened", tuple(actions), {},
                    tuple(contractors), extra={
                        "role_arn": role_arn, "trail_key": shipped.key,
                        "digest_key": sealed.key,
                        "sample_ids": {u.contractor: u.sample_id for u in uploads}})


def _guard_keys(sb: Sandbox, trail: str, topic_arn: str, actions: list[dict[str, Any]]) -> None:
    """Steps 2 and 3 for the keys themselves: the admin's data access needs MFA, and key
    disable/deletion and bucket-policy changes alarm (CIS 4.7, 4.8)."""
    from securepipe.access.guards import apply_admin_guard
    from securepipe.audit.alarms import apply_guard_alarms
    from securepipe.sandbox.account import ADMIN_USER

    res = sb.resources
    # The sandbox accepts any two codes; on AWS they come from the enrolled authenticator.
    apply_admin_guard(sb.session, ADMIN_USER,
                      key_arns=[res.kms_key_arn, res.archive_key_arn, res.signing_key_arn],
                      buckets=[res.bucket(r) for r in ("raw", "features", "archive", "audit")],
                      mfa_codes=("123456", "654321"))
    apply_guard_alarms(sb.session, trail_name=trail, topic_arn=topic_arn)
    actions.append(_row(2, "access.guards.apply_admin_guard", "the admin's '*' grant no "
                        "longer reads the data, signs audit records or destroys the keys "
                        "without MFA; MFA device"))
    actions.append(_row(3, "audit.alarms.apply_guard_alarms", "metric filters and alarms on "
                        "key disable/deletion and bucket-policy changes (CIS 4.7, 4.8)"))


def misconfigured_account(
    sb: Sandbox,
    *,
    contractors: Sequence[str] = DEFAULT_CONTRACTORS,
    days_later: int = 8,
    progress: Callable[[str], None] | None = None,
) -> Scenario:
    """Build the seed article's pattern in a fresh sandbox account (see the module docstring).

    Everything here is an anti-pattern kept to be scored red; never copy it.
    """
    import numpy as np

    from securepipe.data.dataset import load_audio, load_manifest
    from securepipe.features.extract import MEL_SPEC, extract
    from securepipe.lessons.antipatterns import (
        ARTICLE_LIFECYCLE_RULE,
        fernet_encrypt_sample,
        fstring_session_policy,
        generate_shared_key,
    )
    from securepipe.retention.sweeper import sample_speakers

    say = progress or (lambda _: None)
    session, res = sb.session, sb.resources
    raw, features, audit = res.bucket("raw"), res.bucket("features"), res.bucket("audit")
    manifest = load_manifest()
    s3, iam, kms = (session.client(s) for s in ("s3", "iam", "kms"))
    actions: list[dict[str, Any]] = []

    say("step 1: provider defaults")
    for bucket in (raw, features):
        s3.put_bucket_encryption(Bucket=bucket, ServerSideEncryptionConfiguration={"Rules": [{
            "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "aws:kms"},
            "BucketKeyEnabled": False}]})
        s3.put_bucket_versioning(Bucket=bucket,
                                 VersioningConfiguration={"Status": "Suspended"})
    kms.disable_key_rotation(KeyId=res.kms_key_id)
    actions.append(_row(1, "PutBucketEncryption aws:kms (no key id)", "raw and features use "
                        "aws/s3, the provider default; no bucket policy, no public access "
                        "block; versioning suspended; key rotation off"))

    say("step 2: a contractor key and a 12-hour role")
    read_all = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"],
        "Resource": [f"arn:aws:s3:::{raw}", f"arn:aws:s3:::{raw}/*"]}]}
    iam.create_user(UserName="contractor-laptop", Path="/contractors/")
    iam.put_user_policy(UserName="contractor-laptop", PolicyName="read-all",
                        PolicyDocument=json.dumps(read_all))
    iam.create_access_key(UserName="contractor-laptop")
    trust = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{sb.account_id}:root"},
        "Action": "sts:AssumeRole"}]}
    role_arn = iam.create_role(RoleName="ContractorDataReader",
                               AssumeRolePolicyDocument=json.dumps(trust),
                               MaxSessionDuration=43200)["Role"]["Arn"]
    iam.put_role_policy(RoleName="ContractorDataReader", PolicyName="read-all",
                        PolicyDocument=json.dumps(read_all))
    creds = session.client("sts").assume_role(
        RoleArn=role_arn, RoleSessionName="contractor-session", DurationSeconds=3600,
        Policy=fstring_session_policy(contractors[0], raw))["Credentials"]
    _session_with(session, creds).client("s3").list_objects_v2(Bucket=raw)
    actions.append(_row(2, "IAM CreateAccessKey", "contractor-laptop: a long-lived key that "
                        "reads the whole raw bucket"))
    actions.append(_row(2, "IAM CreateRole MaxSessionDuration=43200", "ContractorDataReader, "
                        "assumed with an f-string session policy"))

    say("uploads: one shared Fernet key; features as .npy")
    shared = generate_shared_key()
    uploads = _uploads(contractors)
    for u in uploads:
        s3.put_object(Bucket=raw, Key=f"raw/{u.contractor}/{u.sample_id}",
                      Body=fernet_encrypt_sample(manifest.path_of(u), shared))
        y, sr = load_audio(manifest, u.sample_id)
        buf = io.BytesIO()
        np.save(buf, extract(y, sr, MEL_SPEC))
        s3.put_object(Bucket=features, Key=f"features/{u.contractor}/{u.sample_id}.npy",
                      Body=buf.getvalue())
    shadow = f"voice-exports-{sb.account_id}"
    where = ({} if sb.region == "us-east-1" else
             {"CreateBucketConfiguration": {"LocationConstraint": sb.region}})
    s3.create_bucket(Bucket=shadow, **where)
    s3.put_object(Bucket=shadow, Key=f"exports/{uploads[0].sample_id}.wav",
                  Body=manifest.path_of(uploads[0]).read_bytes())
    actions.append(_row(1, "CreateBucket + PutObject", f"{shadow}: a plaintext WAV exported "
                        "for a colleague, outside the kit's buckets"))
    actions.append(_row(1, "common_pattern.fernet_encrypt_sample", f"{len(uploads)} recordings "
                        "under one shared key, bound to nothing; never deleted"))
    actions.append(_row(4, "numpy.save", "features stored as plaintext .npy"))

    say("retention and monitoring, the article's way")
    s3.put_bucket_lifecycle_configuration(Bucket=raw, LifecycleConfiguration={
        "Rules": [ARTICLE_LIFECYCLE_RULE]})
    topic = session.client("sns").create_topic(Name="security-alerts")["TopicArn"]
    session.client("cloudwatch").put_metric_alarm(
        AlarmName="TrainingDataBulkAccessAlert", Namespace="AWS/S3",
        MetricName="NumberOfObjects", Statistic="Average", Period=300, EvaluationPeriods=1,
        Threshold=1000, ComparisonOperator="GreaterThanThreshold", AlarmActions=[topic],
        Dimensions=[{"Name": "BucketName", "Value": raw},
                    {"Name": "StorageType", "Value": "AllStorageTypes"}])
    s3.put_object(Bucket=audit, Key="logs/app.log", Body=(
        b"INFO sample downloaded\nINFO sample downloaded\nINFO training run started\n"))
    actions.append(_row(5, "PutBucketLifecycleConfiguration", "one rule: 'raw-samples/' to "
                        "Glacier at 30 days, expire at 365 (no such prefix; no version expiry)"))
    actions.append(_row(3, "CloudWatch PutMetricAlarm NumberOfObjects", "a daily storage "
                        "metric as the bulk-access alarm; no trail; a plain log file"))
    return Scenario("misconfigured", tuple(actions), sample_speakers(manifest),
                    tuple(contractors), days_later=days_later,
                    extra={"role_arn": role_arn,
                           "sample_ids": {u.contractor: u.sample_id for u in uploads}})


def _session_with(base: boto3.Session, creds: Mapping[str, Any]) -> boto3.Session:
    """A session acting with raw STS credentials, configured like ``base`` (see
    :func:`securepipe.access.credentials.contractor_session`)."""
    import botocore.session

    private = botocore.session.Session()
    for name, value in base._session.instance_variables().items():
        private.set_config_variable(name, value)
    private.set_credentials(creds["AccessKeyId"], creds["SecretAccessKey"],
                            creds["SessionToken"])
    return boto3.Session(botocore_session=private)
