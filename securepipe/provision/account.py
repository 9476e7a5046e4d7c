"""Provision an account the kit's way from an :class:`~securepipe.provision.AccountLayout`:
idempotent, with a dry-run plan, refusing (and changing nothing) when the account already holds
something that conflicts.

:func:`provision` first surveys the account (read-only calls) and builds a :class:`Plan`: each
change it would make, and each conflict (a bucket owned by someone else, an alias naming a key
of the wrong kind or a disabled key, a consent table with another key schema). With conflicts it
raises :class:`~securepipe.errors.ProvisioningConflictError` before any write, unless
``force=True``, which applies every change that does not touch a conflicting resource. Then it
runs only the steps the plan lists, each with the kit's own re-apply-safe function
(:func:`~securepipe.encryption.hardening.apply_bucket_hardening`,
:func:`~securepipe.access.presigned.apply_presign_age_cap`,
:func:`~securepipe.retention.lifecycle.apply_lifecycle`,
:func:`~securepipe.access.credentials.ensure_contractor_role`,
:func:`~securepipe.audit.monitoring.apply_monitoring`,
:func:`~securepipe.audit.alarms.apply_guard_alarms`), so a second run plans nothing.

Object Lock is switched on when the archive and audit buckets are created; for a bucket that
exists without it (e.g. made by a tool that ignored the property) it is enabled with
PutObjectLockConfiguration, which AWS accepts on an existing versioned bucket
(https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-lock-configure.html).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import unquote

import boto3
from botocore.exceptions import ClientError

from securepipe import clock
from securepipe.access.credentials import (
    contractor_role_policy,
    contractor_trust_statement,
    ensure_contractor_role,
)
from securepipe.access.presigned import apply_presign_age_cap, presign_age_cap_statement
from securepipe.audit.alarms import apply_guard_alarms, inspect_guard_alarms
from securepipe.audit.ledger import TrailLedger, apply_default_retention, default_retention
from securepipe.audit.monitoring import apply_monitoring
from securepipe.audit.records import AuditRecord
from securepipe.encryption.hardening import (
    apply_account_public_access_block,
    apply_bucket_hardening,
    failures,
    inspect_bucket,
)
from securepipe.errors import InvalidParameterError, ProvisioningConflictError
from securepipe.ids import check_int, check_session, validate_kms_key_arn
from securepipe.merge import merge_policy
from securepipe.provision.layout import KIT_ROLES, LOCKED_ROLES, AccountLayout, KitRole, key_arns
from securepipe.provision.policies import (
    KIT_ROLE_POLICY_NAME,
    kit_role_policy,
    kit_role_tags,
    kit_trust_statement,
)
from securepipe.report import format_table
from securepipe.retention.consent import ConsentRegistry
from securepipe.retention.lifecycle import (
    DATA_PREFIXES,
    apply_lifecycle,
    inspect_lifecycle,
    lifecycle_rules,
)

__all__ = ["AUDIT_RETENTION_DAYS", "AUDIT_RETENTION_MODE", "CONTRACTOR_MAX_SESSION_S", "STEPS",
           "Change", "Plan", "ensure_kit_role", "provision"]

#: Contractor sessions last at most an hour (the scorecard's
#: ``iam_contractor_role_session_duration``).
CONTRACTOR_MAX_SESSION_S = 3600
#: The audit bucket's default Object Lock retention (provision() and the CloudFormation
#: template). GOVERNANCE so a test account can still be torn down by an administrator with
#: s3:BypassGovernanceRetention; pass COMPLIANCE to provision() for production.
AUDIT_RETENTION_MODE: Literal["COMPLIANCE", "GOVERNANCE"] = "GOVERNANCE"
AUDIT_RETENTION_DAYS = 365
#: The steps, in the order they run.
STEPS = ("kms-keys", "buckets", "object-lock", "bucket-hardening", "account-public-access",
         "presign-cap", "lifecycle", "contractor-role", "kit-roles", "consent-table",
         "monitoring")
_KEYS = (("data", "data_key_alias", "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"),
         ("archive", "archive_key_alias", "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"),
         ("signing", "signing_key_alias", "ECC_NIST_P256", "SIGN_VERIFY"))
_PURPOSE = {"data": "voice training data", "archive": "the cold archive",
            "signing": "signs audit-trail checkpoints and erasure receipts"}


@dataclass(frozen=True)
class Change:
    """One change the plan makes: the step, the resource, and what is done to it."""

    step: str
    resource: str
    action: str


@dataclass(frozen=True)
class Plan:
    """What :func:`provision` would change (``applied=False``) or changed (``applied=True``)."""

    layout: AccountLayout
    changes: tuple[Change, ...]
    conflicts: tuple[str, ...]
    applied: bool = False
    skipped: tuple[str, ...] = field(default_factory=tuple)

    @property
    def empty(self) -> bool:
        """Nothing to change and nothing in conflict."""
        return not self.changes and not self.conflicts

    def table(self) -> str:
        if not self.changes:
            head = "nothing to change"
        else:
            verb = "changed" if self.applied else "would change"
            head = f"{verb} {len(self.changes)} thing(s):\n" + format_table(
                [{"step": c.step, "resource": c.resource, "action": c.action}
                 for c in self.changes])
        lines = [head, *(f"CONFLICT: {c}" for c in self.conflicts),
                 *(f"skipped (conflict): {s}" for s in self.skipped)]
        return "\n".join(lines)

    __str__ = table


def provision(session: boto3.Session, layout: AccountLayout | None = None, *,
              dry_run: bool = False, force: bool = False,
              audit_retention_days: int = AUDIT_RETENTION_DAYS,
              audit_retention_mode: RetentionMode = AUDIT_RETENTION_MODE,
              trusted_principals: Mapping[str, Sequence[str]] | None = None) -> Plan:
    """Bring the account to ``layout`` (default: :meth:`AccountLayout.for_session`).

    ``dry_run`` returns the plan and changes nothing. Conflicts raise
    :class:`~securepipe.errors.ProvisioningConflictError` before any write unless ``force``
    (then the steps touching a conflicting resource are skipped and listed). Returns the plan
    carried out, with the layout's key ARNs filled in.

    The audit bucket gets a default Object Lock retention (``audit_retention_mode``,
    ``audit_retention_days``; an existing default at least as strong is kept), so every put
    there is locked. What was changed is recorded as the next trail of the account's audit
    history (:class:`~securepipe.audit.ledger.TrailLedger`: signed by the ``SIGN_VERIFY``
    signing key with KMS Sign, chained to the last trail, listed in a signed digest index) and
    shipped under the same retention, so the provisioning itself is audited. GOVERNANCE by
    default: an administrator with ``s3:BypassGovernanceRetention`` can still tear a test
    account down; pass ``"COMPLIANCE"`` for production. No trail is shipped when the signing
    key's alias or the audit bucket is in conflict (skipped): the kit never signs a trail with
    a key that is not an asymmetric signing key.

    The kit's own roles (``layout.kit_roles``: uploader, ingest, trainer, auditor, eraser) are
    created with their generated policies (:func:`ensure_kit_role`). ``trusted_principals``
    maps a kit role (or ``"contractor"``) to the IAM ARNs that may assume it; a role created
    without one trusts the account root, and an existing role's trust policy is changed only
    for the roles named here (the kit's statement replaced by Sid, the rest kept).
    """
    check_session(session)
    if layout is not None and not isinstance(layout, AccountLayout):
        raise InvalidParameterError(f"layout must be an AccountLayout, got "
                                    f"{type(layout).__name__}")
    if not isinstance(dry_run, bool) or not isinstance(force, bool):
        raise InvalidParameterError("dry_run and force must be booleans")
    check_int(audit_retention_days, "audit_retention_days", 1, 36_500)
    if audit_retention_mode not in ("COMPLIANCE", "GOVERNANCE"):
        raise InvalidParameterError("audit_retention_mode must be COMPLIANCE or GOVERNANCE")
    retention = _Retention(audit_retention_mode, audit_retention_days)
    trust = _trust_map(trusted_principals)
    layout = layout or AccountLayout.for_session(session)
    account = str(session.client("sts").get_caller_identity()["Account"])
    if account != layout.account_id or (session.region_name or "us-east-1") != layout.region:
        raise InvalidParameterError(
            f"the layout is for {layout.account_id}/{layout.region}, the session reaches "
            f"{account}/{session.region_name}")
    layout = layout.with_keys(**key_arns(session, layout))
    survey = _Survey(session, layout, retention, trust)
    changes, conflicts, blocked = survey.run()
    plan = Plan(layout, tuple(changes), tuple(conflicts))
    if dry_run:
        return plan
    if conflicts and not force:
        raise ProvisioningConflictError(conflicts)
    steps = {c.step for c in changes}
    layout = _apply(session, layout, steps, blocked, retention, trust)
    done = tuple(c for c in changes if c.resource not in blocked)
    if done and layout.bucket("audit") not in blocked and (
            layout.signing_key_alias not in blocked and layout.signing_key_arn is not None):
        _ship_provisioning_trail(session, layout, done, retention)
    return Plan(layout, done, tuple(conflicts), applied=True, skipped=tuple(sorted(blocked)))


#: Where shipped audit trails live in the audit bucket (the scorecard's
#: ``audit_trail_verifies`` reads them there).
TRAIL_PREFIX = "trails/"


def _ship_provisioning_trail(session: boto3.Session, layout: AccountLayout,
                             changes: tuple[Change, ...], retention: _Retention) -> None:
    """Record what provisioning changed as the next trail of the audit bucket's history:
    :meth:`TrailLedger.resume` (the last signed digest index, verified with the public key),
    one trail signed by the signing key (KMS Sign), shipped under Object Lock, then a signed
    digest index (``audit_trail_verifies`` reads both back)."""
    signing_key = validate_kms_key_arn(layout.signing_key_arn)
    caller = str(session.client("sts").get_caller_identity()["Arn"])
    name = f"provision-{clock.now():%Y%m%dT%H%M%S%fZ}"
    ledger = TrailLedger.resume(session, layout.bucket("audit"), signing_key,
                                trail_prefix=TRAIL_PREFIX, retain_days=retention.days,
                                mode=retention.mode, sse_kms_key_arn=layout.kms_key_arn)
    trail = ledger.open(name)
    for c in changes:
        trail.append(AuditRecord(principal=caller, action=f"securepipe:provision/{c.step}",
                                 key=c.resource, purpose=c.action))
    ledger.ship(trail)
    ledger.seal()


RetentionMode = Literal["COMPLIANCE", "GOVERNANCE"]


def _trust_map(given: Mapping[str, Sequence[str]] | None) -> dict[str, list[str]]:
    """``trusted_principals`` validated before any call (each list as a trust statement)."""
    if given is None:
        return {}
    if not isinstance(given, Mapping):
        raise InvalidParameterError("trusted_principals must map a kit role (or 'contractor') "
                                    "to a list of IAM ARNs")
    unknown = set(given) - {*KIT_ROLES, "contractor"}
    if unknown:
        raise InvalidParameterError(f"trusted_principals: unknown role(s) {sorted(unknown)}; "
                                    f"expected {', '.join((*KIT_ROLES, 'contractor'))}")
    for role, principals in given.items():
        # each raises InvalidParameterError on a bad ARN or list
        (contractor_trust_statement if role == "contractor" else kit_trust_statement)(principals)
    return {role: list(principals) for role, principals in given.items()}


def _document(value: Any) -> dict[str, Any]:
    """A policy document as botocore returns it (decoded), or URL-encoded JSON from an
    endpoint that does not decode it."""
    if isinstance(value, str):
        return dict(json.loads(unquote(value)))
    return dict(value)


def ensure_kit_role(session: boto3.Session, layout: AccountLayout, role: KitRole, *,
                    trusted_principals: Sequence[str] | None = None) -> str:
    """Create (or bring up to date) one of the kit's own roles and return its ARN.

    The role is named ``layout.role_name(role)``, tagged :func:`kit_role_tags` (the eraser
    ``securepipe=audit-writer``, which the scorecard requires of whoever may sign trails), and
    holds the generated :func:`kit_role_policy` as its inline policy
    ``securepipe-kit-role``, merged by Sid (statements you added there stay). A new role trusts
    ``trusted_principals``, or by default the account root; on an existing role the trust
    policy is left exactly as it is unless ``trusted_principals`` is given, and then only the
    kit's statement (Sid ``KitRoleMayBeAssumed``) is replaced. Idempotent: nothing is written
    when everything is already so.

    Wraps IAM GetRole, CreateRole (https://docs.aws.amazon.com/IAM/latest/APIReference/API_CreateRole.html),
    UpdateAssumeRolePolicy, ListRoleTags, TagRole, GetRolePolicy and PutRolePolicy.
    """
    check_session(session)
    name = layout.role_name(role)
    wanted = kit_role_policy(role, layout)
    tags = kit_role_tags(role)
    given = None if trusted_principals is None else kit_trust_statement(trusted_principals)
    iam = session.client("iam")
    try:
        current = iam.get_role(RoleName=name)["Role"]
    except iam.exceptions.NoSuchEntityException:
        current = None
    if current is None:
        if given is None:
            partition = layout.data_key_arn.split(":")[1] if layout.data_key_arn else "aws"
            given = kit_trust_statement([f"arn:{partition}:iam::{layout.account_id}:root"])
        arn = str(iam.create_role(
            RoleName=name, AssumeRolePolicyDocument=json.dumps(merge_policy(None, [given])),
            Description=f"securepipe: the kit's {role} role (generated least-privilege policy)",
            Tags=tags)["Role"]["Arn"])
    else:
        arn = str(current["Arn"])
        if given is not None:
            trust = _document(current.get("AssumeRolePolicyDocument") or {})
            merged = merge_policy(trust, [given])
            if merged != trust:
                iam.update_assume_role_policy(RoleName=name, PolicyDocument=json.dumps(merged))
        have = {(t["Key"], t["Value"]) for t in iam.list_role_tags(RoleName=name).get("Tags", [])}
        missing = [t for t in tags if (t["Key"], t["Value"]) not in have]
        if missing:
            iam.tag_role(RoleName=name, Tags=missing)
    inline = _inline(iam, name)
    merged_policy = merge_policy(inline, wanted["Statement"])
    if merged_policy != inline:
        iam.put_role_policy(RoleName=name, PolicyName=KIT_ROLE_POLICY_NAME,
                            PolicyDocument=json.dumps(merged_policy))
    return arn


def _inline(iam: Any, name: str) -> dict[str, Any] | None:
    try:
        return _document(iam.get_role_policy(RoleName=name, PolicyName=KIT_ROLE_POLICY_NAME)[
            "PolicyDocument"])
    except iam.exceptions.NoSuchEntityException:
        return None


@dataclass(frozen=True)
class _Retention:
    """The audit bucket's wanted default Object Lock retention."""

    mode: RetentionMode
    days: int

    def satisfied_by(self, rule: dict[str, Any] | None) -> bool:
        """Whether an existing default rule is at least as strong (a longer span, or
        COMPLIANCE where GOVERNANCE is wanted, is kept, never weakened)."""
        if rule is None:
            return False
        days = int(rule.get("Days") or 0) or 365 * int(rule.get("Years") or 0)
        mode_ok = rule.get("Mode") == "COMPLIANCE" or self.mode == rule.get("Mode")
        return mode_ok and days >= self.days


# -- survey (read-only) ------------------------------------------------------------------------


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


class _Survey:
    def __init__(self, session: boto3.Session, layout: AccountLayout,
                 retention: _Retention, trust: Mapping[str, Sequence[str]]) -> None:
        self.session, self.layout, self.retention = session, layout, retention
        self.trust = trust
        self.changes: list[Change] = []
        self.conflicts: list[str] = []
        self.blocked: set[str] = set()

    def change(self, step: str, resource: str, action: str) -> None:
        self.changes.append(Change(step, resource, action))

    def conflict(self, resource: str, why: str) -> None:
        self.conflicts.append(f"{resource}: {why}")
        self.blocked.add(resource)

    def run(self) -> tuple[list[Change], list[str], set[str]]:
        for step in (self.keys, self.buckets, self.public_access, self.presign_cap,
                     self.lifecycle, self.role, self.kit_roles, self.table, self.monitoring):
            step()
        return self.changes, self.conflicts, self.blocked

    def keys(self) -> None:
        kms = self.session.client("kms")
        for kind, attr, spec, usage in _KEYS:
            alias = getattr(self.layout, attr)
            meta = _describe_alias(kms, alias)
            if meta is None:
                self.change("kms-keys", alias, f"create the {kind} key ({spec}, {usage}) and "
                            "its alias" + ("" if kind == "signing" else ", rotation on"))
                continue
            got = (meta.get("KeySpec") or meta.get("CustomerMasterKeySpec"), meta.get("KeyUsage"))
            if got != (spec, usage):
                self.conflict(alias, f"names a {got[0]}/{got[1]} key; the {kind} key must be "
                              f"{spec}/{usage}")
            elif meta.get("KeyState") != "Enabled":
                self.conflict(alias, f"names a key in state {meta.get('KeyState')}")
            elif meta.get("KeyManager") != "CUSTOMER":
                self.conflict(alias, "names an AWS managed key; the kit needs a customer key")
            elif kind != "signing" and not kms.get_key_rotation_status(
                    KeyId=meta["KeyId"])["KeyRotationEnabled"]:
                self.change("kms-keys", alias, "turn on automatic rotation")

    def _bucket_key(self, role: str) -> str | None:
        return self.layout.archive_key_arn if role == "archive" else self.layout.data_key_arn

    def buckets(self) -> None:
        s3 = self.session.client("s3")
        for role, name in self.layout.buckets.items():
            try:
                s3.head_bucket(Bucket=name, ExpectedBucketOwner=self.layout.account_id)
            except ClientError as exc:
                if _code(exc) in ("404", "NoSuchBucket", "NotFound"):
                    lock = " with Object Lock" if role in LOCKED_ROLES else ""
                    self.change("buckets", name, f"create ({role}){lock}, versioning on")
                    self.change("bucket-hardening", name, "SSE-KMS, TLS-only policy, Block "
                                "Public Access, ownership enforced")
                    if role == "audit":
                        self.change("object-lock", name, f"default retention "
                                    f"{self.retention.mode} {self.retention.days} days")
                else:
                    self.conflict(name, f"exists but is not this account's or cannot be read "
                                  f"({_code(exc)})")
                continue
            if s3.get_bucket_versioning(Bucket=name).get("Status") != "Enabled":
                self.change("buckets", name, "turn versioning on")
            if role in LOCKED_ROLES:
                try:
                    lock = s3.get_object_lock_configuration(Bucket=name)[
                        "ObjectLockConfiguration"].get("ObjectLockEnabled")
                except ClientError as exc:
                    if _code(exc) != "ObjectLockConfigurationNotFoundError":
                        raise
                    lock = "Disabled"
                if lock != "Enabled":
                    self.change("object-lock", name, "enable Object Lock "
                                "(PutObjectLockConfiguration)")
                if role == "audit" and (lock != "Enabled" or not self.retention.satisfied_by(
                        default_retention(self.session, name))):
                    self.change("object-lock", name, f"default retention "
                                f"{self.retention.mode} {self.retention.days} days")
            key = self._bucket_key(role)
            wrong = (["every control: its key does not exist yet"] if key is None else [
                f.control for f in failures(inspect_bucket(self.session, name, key))
                if f.control != "account-public-access"])
            if wrong:
                self.change("bucket-hardening", name, f"fix {', '.join(wrong)}")

    def public_access(self) -> None:
        from securepipe.encryption.hardening import s3control_client

        try:
            pab = s3control_client(self.session).get_public_access_block(
                AccountId=self.layout.account_id)["PublicAccessBlockConfiguration"]
            on = all(pab.values()) and len(pab) == 4
        except ClientError as exc:
            if _code(exc) != "NoSuchPublicAccessBlockConfiguration":
                raise
            on = False
        if not on:
            self.change("account-public-access", self.layout.account_id,
                        "Block Public Access on for the whole account")

    def _policy(self, bucket: str) -> dict[str, Any] | None:
        try:
            return dict(json.loads(self.session.client("s3").get_bucket_policy(
                Bucket=bucket)["Policy"]))
        except ClientError as exc:
            if _code(exc) in ("NoSuchBucketPolicy", "NoSuchBucket"):
                return None
            raise

    def presign_cap(self) -> None:
        for bucket in self.layout.data_buckets:
            current = self._policy(bucket)
            statement = presign_age_cap_statement(bucket)
            if current is None or merge_policy(current, [statement]) != current:
                self.change("presign-cap", bucket, "deny requests signed more than 900 s ago")

    def lifecycle(self) -> None:
        s3 = self.session.client("s3")
        for role in ("raw", "features", "archive"):
            bucket = self.layout.bucket(role)
            try:
                s3.head_bucket(Bucket=bucket)
            except ClientError:
                self.change("lifecycle", bucket, f"the kit's {role} rules")
                continue
            findings = inspect_lifecycle(self.session, bucket, data_prefixes=DATA_PREFIXES[role])
            if failures(findings):
                self.change("lifecycle", bucket, f"the kit's {role} rules (merged by ID)")

    def role(self) -> None:
        iam = self.session.client("iam")
        name = self.layout.contractor_role
        try:
            role = iam.get_role(RoleName=name)["Role"]
        except iam.exceptions.NoSuchEntityException:
            self.change("contractor-role", name, "create (trusts the account; sessions <= 1 h)")
            return
        if "contractor" in self.trust:
            trust = _document(role.get("AssumeRolePolicyDocument") or {})
            if merge_policy(trust, [contractor_trust_statement(self.trust["contractor"])]
                            ) != trust:
                self.change("contractor-role", name, "trust " + ", ".join(
                    self.trust["contractor"]))
        if int(role.get("MaxSessionDuration", 0)) != CONTRACTOR_MAX_SESSION_S:
            self.change("contractor-role", name, "sessions of at most 1 h")
        if self.layout.data_key_arn is None:
            self.change("contractor-role", name, "inline policy for the new data key")
            return
        try:
            inline = iam.get_role_policy(RoleName=name, PolicyName="securepipe-contractor-"
                                         "raw-access")["PolicyDocument"]
        except iam.exceptions.NoSuchEntityException:
            inline = {}
        if isinstance(inline, str):  # botocore decodes it; an endpoint may return it encoded
            inline = json.loads(unquote(inline))
        wanted = contractor_role_policy(bucket=self.layout.bucket("raw"),
                                        key_arn=self.layout.data_key_arn)["Statement"]
        if not inline or merge_policy(inline, wanted) != inline:
            self.change("contractor-role", name, "the kit's inline policy (merged by Sid)")

    def kit_roles(self) -> None:
        iam = self.session.client("iam")
        keys = (self.layout.data_key_arn, self.layout.archive_key_arn,
                self.layout.signing_key_arn)
        for role in KIT_ROLES:
            name = self.layout.role_name(role)
            try:
                current = iam.get_role(RoleName=name)["Role"]
            except iam.exceptions.NoSuchEntityException:
                who = ", ".join(self.trust.get(role, ())) or "the account"
                tags = ", ".join(f"{t['Key']}={t['Value']}" for t in kit_role_tags(role))
                self.change("kit-roles", name, f"create the {role} role (trusts {who}; tags "
                            f"{tags}) with its generated policy")
                continue
            if role in self.trust:
                trust = _document(current.get("AssumeRolePolicyDocument") or {})
                if merge_policy(trust, [kit_trust_statement(self.trust[role])]) != trust:
                    self.change("kit-roles", name, "trust " + ", ".join(self.trust[role]))
            have = {(t["Key"], t["Value"]) for t in iam.list_role_tags(RoleName=name).get(
                "Tags", [])}
            missing = [f"{t['Key']}={t['Value']}" for t in kit_role_tags(role)
                       if (t["Key"], t["Value"]) not in have]
            if missing:
                self.change("kit-roles", name, f"tag {', '.join(missing)}")
            if not all(keys):
                self.change("kit-roles", name, "the generated policy for the new keys")
                continue
            inline = _inline(iam, name)
            wanted = kit_role_policy(role, self.layout)["Statement"]
            if inline is None or merge_policy(inline, wanted) != inline:
                self.change("kit-roles", name, "the generated policy (merged by Sid)")

    def table(self) -> None:
        ddb = self.session.client("dynamodb")
        name = self.layout.consent_table
        try:
            table = ddb.describe_table(TableName=name)["Table"]
        except ClientError as exc:
            if _code(exc) != "ResourceNotFoundException":
                raise
            self.change("consent-table", name, "create (keyed by speaker, SSE-KMS)")
            return
        if table.get("KeySchema") != [{"AttributeName": "speaker", "KeyType": "HASH"}]:
            self.conflict(name, f"exists with key schema {table.get('KeySchema')}; the consent "
                          "registry is keyed by speaker")

    def monitoring(self) -> None:
        ct = self.session.client("cloudtrail")
        name = self.layout.trail_name
        try:
            logging_on = ct.get_trail_status(Name=name).get("IsLogging", False)
        except ClientError as exc:
            if _code(exc) != "TrailNotFoundException":
                raise
            logging_on = False
        if not logging_on:
            self.change("monitoring", name, "trail with S3 data events, logging")
        audit = self._policy(self.layout.bucket("audit")) or {}
        sids = {st.get("Sid") for st in audit.get("Statement", [])}
        if not {"AWSCloudTrailAclCheck", "AWSCloudTrailWrite"} <= sids:
            self.change("monitoring", self.layout.bucket("audit"), "CloudTrail delivery "
                        "statements (merged by Sid)")
        alarms = {a["AlarmName"] for a in self.session.client("cloudwatch").describe_alarms(
            AlarmNamePrefix="securepipe-").get("MetricAlarms", [])}
        wanted = {f"securepipe-{m}-{b}" for m in ("GetRequests", "BytesDownloaded")
                  for b in self.layout.data_buckets}
        if not wanted <= alarms:
            self.change("monitoring", self.layout.topic_name, "bulk-read alarms, SNS topic and "
                        "its SQS subscriber")
        if any(f.status != "pass" for f in inspect_guard_alarms(self.session)):
            self.change("monitoring", self.layout.trail_name, "trail to CloudWatch Logs; "
                        "alarms on key disable/deletion and bucket-policy changes (CIS 4.7, "
                        "4.8)")


# -- apply -------------------------------------------------------------------------------------


def _apply(session: boto3.Session, layout: AccountLayout, steps: set[str],
           blocked: set[str], retention: _Retention,
           trust: Mapping[str, Sequence[str]]) -> AccountLayout:
    kms, s3 = session.client("kms"), session.client("s3")
    if "kms-keys" in steps:
        for kind, attr, spec, usage in _KEYS:
            alias = getattr(layout, attr)
            if alias in blocked:
                continue
            found = _describe_alias(kms, alias)
            if found is not None:
                key_id = found["KeyId"]
            else:
                key_id = kms.create_key(
                    Description=f"securepipe: {_PURPOSE[kind]}", KeySpec=spec, KeyUsage=usage,
                    Tags=[{"TagKey": "securepipe", "TagValue": kind}])["KeyMetadata"]["KeyId"]
                kms.create_alias(AliasName=alias, TargetKeyId=key_id)
            if kind != "signing":
                kms.enable_key_rotation(KeyId=key_id)
        layout = layout.with_keys(**key_arns(session, layout))
    names = [(r, b) for r, b in layout.buckets.items() if b not in blocked]
    if "buckets" in steps or "object-lock" in steps:
        for role, bucket in names:
            try:
                s3.head_bucket(Bucket=bucket)
            except ClientError:
                kwargs: dict[str, Any] = {"Bucket": bucket,
                                          "ObjectLockEnabledForBucket": role in LOCKED_ROLES}
                if layout.region != "us-east-1":
                    kwargs["CreateBucketConfiguration"] = {"LocationConstraint": layout.region}
                s3.create_bucket(**kwargs)
            s3.put_bucket_versioning(Bucket=bucket,
                                     VersioningConfiguration={"Status": "Enabled"})
            if role in LOCKED_ROLES:
                _lock(session, bucket, retention if role == "audit" else None)

    def harden() -> None:
        for role, bucket in names:
            key = layout.archive_key_arn if role == "archive" else layout.data_key_arn
            apply_bucket_hardening(session, bucket, key or layout.kms_key_arn)

    def presign_cap() -> None:
        for bucket in layout.data_buckets:
            if bucket not in blocked:
                apply_presign_age_cap(session, bucket)

    def lifecycle() -> None:
        for role in ("raw", "features", "archive"):
            if layout.bucket(role) not in blocked:
                apply_lifecycle(session, layout.bucket(role), lifecycle_rules(role))

    def monitoring() -> None:
        setup = apply_monitoring(session, list(layout.data_buckets), layout.bucket("audit"),
                                 kms_key_arn=layout.kms_key_arn,
                                 config=layout.monitoring_config())
        apply_guard_alarms(session, trail_name=layout.trail_name, topic_arn=setup.topic_arn)

    run: dict[str, Callable[[], object]] = {
        "bucket-hardening": harden,
        "account-public-access": lambda: apply_account_public_access_block(
            session, account_id=layout.account_id),
        "presign-cap": presign_cap,
        "lifecycle": lifecycle,
        "contractor-role": lambda: ensure_contractor_role(
            session, bucket=layout.bucket("raw"), key_arn=layout.kms_key_arn,
            role_name=layout.contractor_role, max_session_s=CONTRACTOR_MAX_SESSION_S,
            trusted_principals=trust.get("contractor")),
        "kit-roles": lambda: [ensure_kit_role(session, layout, role,
                                              trusted_principals=trust.get(role))
                              for role in KIT_ROLES],
        "consent-table": lambda: ConsentRegistry(session, layout.consent_table,
                                                 kms_key_arn=layout.kms_key_arn),
        "monitoring": monitoring,
    }
    needs = {"contractor-role": layout.contractor_role, "consent-table": layout.consent_table,
             "monitoring": layout.bucket("audit")}
    for step in STEPS:
        if step in steps and step in run and needs.get(step) not in blocked:
            run[step]()
    return layout


def _lock(session: boto3.Session, bucket: str, retention: _Retention | None) -> None:
    """Object Lock on ``bucket`` (PutObjectLockConfiguration); for the audit bucket also the
    default retention. An existing configuration is rewritten only where it falls short, so a
    default rule someone set (or a stronger one) is never dropped."""
    current = default_retention(session, bucket)
    if retention is not None:
        if not retention.satisfied_by(current):
            apply_default_retention(session, bucket, days=retention.days, mode=retention.mode)
        return
    try:
        enabled = session.client("s3").get_object_lock_configuration(Bucket=bucket)[
            "ObjectLockConfiguration"].get("ObjectLockEnabled") == "Enabled"
    except ClientError as exc:
        if _code(exc) != "ObjectLockConfigurationNotFoundError":
            raise
        enabled = False
    if not enabled:
        session.client("s3").put_object_lock_configuration(
            Bucket=bucket, ObjectLockConfiguration={"ObjectLockEnabled": "Enabled"})


def _describe_alias(kms: Any, alias: str) -> dict[str, Any] | None:
    """The key an alias names (DescribeKey), or None when the alias does not exist.

    Existence is read from ListAliases first, so a missing alias is never asked about: AWS
    answers NotFound, the sandbox's fail-closed emulation refuses a key it cannot resolve.
    """
    for page in kms.get_paginator("list_aliases").paginate():
        if any(a.get("AliasName") == alias for a in page.get("Aliases", [])):
            return dict(kms.describe_key(KeyId=alias)["KeyMetadata"])
    return None

