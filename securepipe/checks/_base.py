"""The scorecard's building blocks: check metadata, results, configuration and run context.

Kept apart from :mod:`securepipe.checks` (the registry and runner) so that every check module
can import these without importing the registry.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from securepipe.errors import InvalidParameterError, SecurePipeError

if TYPE_CHECKING:
    from securepipe.checks.discovery import Sighting

Severity = Literal["low", "medium", "high", "critical"]
#: Severities from least to most severe.
SEVERITIES: tuple[Severity, ...] = ("low", "medium", "high", "critical")
Status = Literal["pass", "fail", "error", "unverifiable"]
#: Statuses from best to worst; a check's status is the worst of its resources'.
STATUSES: tuple[Status, ...] = ("pass", "unverifiable", "error", "fail")

#: The kit's six steps (one notebook each).
STEPS: Mapping[int, str] = {
    1: "01 encrypt before upload",
    2: "02 least-privilege credentials",
    3: "03 audit and exfiltration",
    4: "04 features, not raw",
    5: "05 retention and erasure",
    6: "06 access review and scorecard",
}

#: The seed article's prevention checklist, item by item (reference only; see the README).
CHECKLIST: Mapping[int, str] = {
    1: "Encrypt client-side before data reaches your storage layer",
    2: "Use customer-managed keys, not provider defaults",
    3: "Scope credentials per-user/per-contractor with short TTLs",
    4: "Log and alert on bulk access patterns",
    5: "Extract and discard: persist features, not raw biometrics",
    6: "Set retention policies",
    7: "Threat model your contractors",
    8: "Run periodic access reviews",
}

#: The kit's bucket roles and the key each one's default encryption must use.
BUCKET_ROLES: tuple[str, ...] = ("raw", "features", "archive", "audit")
#: The role of a bucket outside the kit's naming where voice data was found
#: (:mod:`securepipe.checks.discovery`): checked like a data bucket, with the data key.
DISCOVERED = "discovered"
_BUCKET_NAME = re.compile(r"securepipe-(raw|features|archive|audit)-(\d{12})-([a-z0-9-]+)")


def severity_rank(severity: str) -> int:
    """0 for ``low`` up to 3 for ``critical``; :class:`InvalidParameterError` otherwise."""
    try:
        return SEVERITIES.index(severity)
    except ValueError:
        raise InvalidParameterError(
            f"unknown severity {severity!r}; expected one of {', '.join(SEVERITIES)}") from None


@dataclass(frozen=True)
class ResourceResult:
    """One resource's outcome within a check (a bucket, a key, a role, ``account``...)."""

    resource: str
    status: Status
    evidence: str


@dataclass(frozen=True)
class CheckResult:
    """A check's outcome: the worst status over its resources, a summary and every resource."""

    check: Check
    status: Status
    evidence: str
    resources: tuple[ResourceResult, ...] = ()
    seconds: float = 0.0

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.check.metadata(),
            "status": self.status,
            "evidence": self.evidence,
            "seconds": round(self.seconds, 3),
            "resources": [{"resource": r.resource, "status": r.status, "evidence": r.evidence}
                          for r in self.resources],
        }


Evaluator = Callable[["CheckContext"], Sequence[ResourceResult]]


@dataclass(frozen=True)
class Check:
    """One check and its metadata, Prowler-style: what, how bad, why, how to fix.

    ``step`` is the kit's step (1-6, :data:`STEPS`); ``checklist_item`` the seed article's
    checklist item it maps to (:data:`CHECKLIST`), or ``None`` for a control the article does
    not list and the kit adds. ``evaluate(ctx)`` returns one :class:`ResourceResult` per
    resource; :meth:`run` turns that into a :class:`CheckResult` and never raises.
    """

    id: str
    title: str
    severity: Severity
    step: int
    checklist_item: int | None
    rationale: str
    remediation: str
    evaluate: Evaluator = field(repr=False, compare=False)

    def __post_init__(self) -> None:
        severity_rank(self.severity)
        if self.step not in STEPS:
            raise InvalidParameterError(f"{self.id}: step must be one of {sorted(STEPS)}")
        if self.checklist_item is not None and self.checklist_item not in CHECKLIST:
            raise InvalidParameterError(f"{self.id}: unknown checklist item {self.checklist_item}")

    @property
    def checklist(self) -> str:
        """The article's checklist item, or a note that the kit adds this control."""
        if self.checklist_item is None:
            return "(not on the article's checklist: the kit adds it)"
        return CHECKLIST[self.checklist_item]

    @property
    def kit_function(self) -> str | None:
        """The first kit function the remediation names (``securepipe.x.y``), if any."""
        match = re.search(r"securepipe(?:\.\w+)+", self.remediation)
        return match.group(0) if match else None

    def metadata(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "severity": self.severity,
                "step": self.step, "step_name": STEPS[self.step],
                "checklist_item": self.checklist_item, "checklist": self.checklist,
                "rationale": self.rationale, "remediation": self.remediation,
                "kit_function": self.kit_function}

    def run(self, ctx: CheckContext) -> CheckResult:
        """Evaluate, and report anything that prevented it as ``error`` with the reason."""
        import time

        start = time.perf_counter()
        try:
            resources = tuple(self.evaluate(ctx))
        except Exception as exc:  # the run must go on: an unexpected failure is an error
            resources = (ResourceResult("-", "error", could_not_evaluate(exc)),)
        if not resources:
            resources = (nothing_evaluated(ctx.config),)
        status = worst(r.status for r in resources)
        return CheckResult(self, status, summarise(resources, ctx.config.label),
                           resources, time.perf_counter() - start)


def nothing_evaluated(config: CheckConfig) -> ResourceResult:
    """The result of a check that evaluated no resource: never a pass.

    ``unverifiable`` when discovery ran and found nothing of this kind; ``error`` when discovery
    itself could not read the account (a note that says "could not evaluate"), naming why: a
    TLS or permission failure must not read as "nothing to check".
    """
    failed = [n for n in config.notes if "could not evaluate" in n]
    if failed:
        return ResourceResult("-", "error", "evaluated no resource, because discovery failed: "
                              + "; ".join(failed))
    return ResourceResult("-", "unverifiable", "evaluated no resource: none of this kind was "
                          "found or configured, so nothing shows the control is in place")


def worst(statuses: Iterable[Status]) -> Status:
    """The worst status: fail > error > unverifiable > pass."""
    found = list(statuses)
    return max(found, key=STATUSES.index) if found else "error"


def summarise(resources: Sequence[ResourceResult], label: Callable[[str], str]) -> str:
    """One line: the evidence of the resources that decided the status."""
    status = worst(r.status for r in resources)
    deciding = [r for r in resources if r.status == status]
    if len(resources) == 1:
        return resources[0].evidence
    parts = [f"{label(r.resource)}: {r.evidence}" for r in deciding]
    rest = len(resources) - len(deciding)
    if status == "pass":
        return f"{len(resources)}/{len(resources)} pass; " + "; ".join(parts)
    return "; ".join(parts) + (f" ({rest} other(s) not {status})" if rest else "")


def could_not_evaluate(exc: BaseException) -> str:
    """The reason a check could not be evaluated, naming the AWS error code if there is one."""
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        op = getattr(exc, "operation_name", "") or "the request"
        code = err.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        message = str(err.get("Message") or "").strip()
        return f"could not evaluate: {op} answered {code}" + (f": {message}" if message else "")
    if isinstance(exc, BotoCoreError | SecurePipeError):
        return f"could not evaluate: {type(exc).__name__}: {exc}"
    return f"could not evaluate (internal error in the check): {type(exc).__name__}: {exc}"


#: Errors that mean "this resource could not be evaluated" (anything else is a bug, still caught
#: by :meth:`Check.run`).
EVALUATION_ERRORS = (ClientError, BotoCoreError, SecurePipeError)


def default_clock() -> dt.datetime:
    """Now, by the sandbox clock when a sandbox is open (it can be moved), else real UTC time."""
    from securepipe import clock

    return clock.now()


@dataclass(frozen=True)
class Bucket:
    """A bucket the checks look at, its role and the customer-managed key it must use."""

    name: str
    role: str
    key_arn: str | None = None


@dataclass(frozen=True)
class CheckConfig:
    """What the checks look at and their limits. :meth:`discover` fills it from an account.

    :param buckets: the kit's buckets with their roles (``raw``, ``features``, ``archive``: the
        data buckets; ``audit``: where trails are shipped) and expected KMS keys.
    :param key_arns: the customer-managed keys (rotation, key policy).
    :param audit_prefix: where shipped trails live in the audit bucket.
    :param signing_key_arn: the asymmetric key that signs the audit trails and their digests
        (``alias/securepipe-signing``); verifiers pin it.
    :param contractor_roles: role names to treat as contractor roles (``None``: discover them by
        name or tag, see :mod:`securepipe.checks.identity`).
    :param contractor_users: extra IAM user names to treat as contractor identities.
    :param max_session_s: the longest acceptable ``MaxSessionDuration`` of a contractor role.
    :param max_presign_s: the longest acceptable presigned-URL lifetime.
    :param ingest_window: how long a raw upload may wait for ingest.
    :param unused_after: a role with data access not used for this long is flagged.
    :param sample_objects: objects sampled per bucket by the client-side encryption check.
    :param consent_table: the consent registry's DynamoDB table (step 5).
    :param sample_speakers: ``<contractor>/<sample_id> -> speaker`` for attributing raw
        uploads (step 5).
    :param review_exempt: principal names the access review must not flag as broad.
    :param clock: returns an aware ``datetime`` (default: the sandbox clock, or UTC now).
    :param max_attempts: botocore attempts per request (standard retry mode: throttling and
        transient errors are retried with backoff before a check reports an error).
    :param labels: short display names for resources (e.g. a key ARN -> ``data key``).
    :param notes: what discovery found or could not find.
    :param sightings: what sampling the buckets outside the kit's naming found
        (:func:`securepipe.checks.discovery.discover_voice_buckets`); ``None``: not sampled yet
        (the inventory check then samples them itself).
    """

    buckets: tuple[Bucket, ...] = ()
    key_arns: tuple[str, ...] = ()
    audit_prefix: str = "trails/"
    signing_key_arn: str | None = None
    contractor_roles: tuple[str, ...] | None = None
    contractor_users: tuple[str, ...] = ()
    max_session_s: int = 3600
    max_presign_s: int = 900
    ingest_window: dt.timedelta = dt.timedelta(days=7)
    unused_after: dt.timedelta = dt.timedelta(days=90)
    sample_objects: int = 20
    consent_table: str = "securepipe-consent"
    sample_speakers: Mapping[str, str] | None = None
    review_exempt: tuple[str, ...] = ()
    clock: Callable[[], dt.datetime] = default_clock
    max_attempts: int = 5
    labels: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    sightings: tuple[Sighting, ...] | None = None

    def __post_init__(self) -> None:
        for name in ("max_session_s", "max_presign_s", "sample_objects", "max_attempts"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidParameterError(f"{name} must be a positive integer, got {value!r}")
        for name in ("ingest_window", "unused_after"):
            if not isinstance(getattr(self, name), dt.timedelta):
                raise InvalidParameterError(f"{name} must be a datetime.timedelta")
        if not callable(self.clock):
            raise InvalidParameterError("clock must be a callable returning an aware datetime")
        roles = [b.role for b in self.buckets if b.role != DISCOVERED]
        if any(r not in BUCKET_ROLES for r in roles) or len(set(roles)) != len(roles):
            raise InvalidParameterError(f"bucket roles must be distinct, among {BUCKET_ROLES} "
                                        f"(or {DISCOVERED!r}, any number of times)")

    @property
    def data_buckets(self) -> tuple[Bucket, ...]:
        """The buckets that hold voice data or features (every role but ``audit``)."""
        return tuple(b for b in self.buckets if b.role != "audit")

    def bucket(self, role: str) -> Bucket | None:
        """The bucket with this role, or ``None``."""
        return next((b for b in self.buckets if b.role == role), None)

    def label(self, resource: str) -> str:
        """A short display name: a kit bucket shows as its role (``raw``, ``audit``...)."""
        for b in self.buckets:
            if b.name == resource and b.role != DISCOVERED:
                return b.role
        return self.labels.get(resource, resource)

    def with_resources(self, buckets: Mapping[str, str] | None = None, *,
                       data_key: str | None = None, archive_key: str | None = None
                       ) -> CheckConfig:
        """A copy with some bucket names (by role) and keys replaced.

        ``with_resources({"raw": "other-bucket"})`` keeps the raw bucket's expected key;
        ``data_key`` becomes every non-archive bucket's key, ``archive_key`` the archive's.
        """
        names = ({b.role: b.name for b in self.buckets if b.role != DISCOVERED}
                 | dict(buckets or {}))
        unknown = set(names) - set(BUCKET_ROLES)
        if unknown:
            raise InvalidParameterError(f"unknown bucket role(s) {sorted(unknown)}")
        keys = {b.role: b.key_arn for b in self.buckets}
        data = data_key or next((k for r, k in keys.items() if r != "archive" and k), None)
        archive = archive_key or keys.get("archive") or data

        def key_for(role: str) -> str | None:
            if role == "archive":
                return archive
            return data_key or keys.get(role) or data

        chosen = tuple(Bucket(names[r], r, key_for(r)) for r in BUCKET_ROLES if r in names)
        chosen += tuple(Bucket(b.name, DISCOVERED, data_key or b.key_arn) for b in self.buckets
                        if b.role == DISCOVERED and b.name not in names.values())
        key_arns = tuple(dict.fromkeys(
            k for k in (*(b.key_arn for b in chosen), *self.key_arns) if k))
        return replace(self, buckets=chosen, key_arns=key_arns)

    @classmethod
    def discover(cls, session: boto3.Session, *, voice_discovery: bool = True,
                 **overrides: Any) -> CheckConfig:
        """Find the kit's buckets and keys in an account; ``overrides`` win over what is found.

        Buckets are named ``securepipe-<role>-<account>-<region>``
        (:func:`securepipe.sandbox.account.bucket_name`); keys are the targets of the aliases
        ``alias/securepipe-data`` and ``alias/securepipe-archive``, else the customer-managed
        keys the buckets' default encryption names. The archive bucket is expected to use the
        archive key, every other bucket the data key; the audit signing key is the target of
        ``alias/securepipe-signing``. Wraps STS GetCallerIdentity, S3
        ListBuckets (https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListBuckets.html) and
        KMS ListAliases/DescribeKey
        (https://docs.aws.amazon.com/kms/latest/APIReference/API_ListAliases.html); what cannot
        be read is noted, not fatal.

        With ``voice_discovery`` every other bucket is sampled for voice data
        (:func:`securepipe.checks.discovery.discover_voice_buckets`); each one where some is
        found joins the configuration as a ``discovered`` data bucket, under the data key.
        """
        notes: list[str] = []
        account = region = None
        try:
            account = str(session.client("sts").get_caller_identity()["Account"])
        except EVALUATION_ERRORS as exc:
            notes.append(f"account id unknown ({could_not_evaluate(exc)})")
        region = session.region_name or "us-east-1"
        found: dict[str, str] = {}
        listed: list[str] | None = None
        try:
            listed = [str(b["Name"]) for b in
                      session.client("s3").list_buckets().get("Buckets", [])]
            for b in ({"Name": n} for n in listed):
                match = _BUCKET_NAME.fullmatch(b["Name"])
                if match and (account is None or match.group(2) == account) and (
                        match.group(3) == region):
                    found.setdefault(match.group(1), b["Name"])
        except EVALUATION_ERRORS as exc:
            notes.append(f"buckets not listed ({could_not_evaluate(exc)})")
        data_key = archive_key = signing_key = None
        try:
            kms = session.client("kms")
            for page in kms.get_paginator("list_aliases").paginate():
                for alias in page.get("Aliases", []):
                    if "TargetKeyId" not in alias:
                        continue
                    if alias["AliasName"] == "alias/securepipe-signing":
                        signing_key = str(kms.describe_key(KeyId=alias["TargetKeyId"])[
                            "KeyMetadata"]["Arn"])
                    if alias["AliasName"] in ("alias/securepipe-data", "alias/securepipe-archive"):
                        arn = kms.describe_key(KeyId=alias["TargetKeyId"])["KeyMetadata"]["Arn"]
                        if alias["AliasName"].endswith("-data"):
                            data_key = str(arn)
                        else:
                            archive_key = str(arn)
        except EVALUATION_ERRORS as exc:
            notes.append(f"KMS aliases not listed ({could_not_evaluate(exc)})")
        if data_key is None:
            data_key = _key_from_encryption(session, found.get("raw"), notes)
        if archive_key is None and "archive" in found:
            archive_key = _key_from_encryption(session, found.get("archive"), notes) or data_key
        missing = [r for r in BUCKET_ROLES if r not in found]
        if missing:
            notes.append(f"no bucket found for role(s) {', '.join(missing)} (expected "
                         f"securepipe-<role>-{account or '<account>'}-{region})")
        buckets = tuple(Bucket(found[r], r, archive_key if r == "archive" else data_key)
                        for r in BUCKET_ROLES if r in found)
        keys = tuple(k for k in dict.fromkeys((data_key, archive_key)) if k)
        if not keys:
            notes.append("no customer-managed key found (alias/securepipe-data)")
        labels = {k: v for k, v in ((data_key, "data key"), (archive_key, "archive key"),
                                    (signing_key, "signing key")) if k}
        if signing_key is None:
            notes.append("no audit signing key found (alias/securepipe-signing)")
        sightings: tuple[Sighting, ...] | None = None
        if voice_discovery and listed is not None:
            from securepipe.checks.discovery import discover_voice_buckets

            kit = [n for n in listed if _BUCKET_NAME.fullmatch(n)]
            seen, more = discover_voice_buckets(session, known=kit, names=listed)
            sightings = tuple(seen)
            notes.extend(more)
            buckets += tuple(Bucket(x.bucket, DISCOVERED, data_key) for x in seen
                             if x.status == "fail")
        table = (None if "consent_table" in overrides
                 else _discover_consent_table(session, notes))
        base = cls(buckets=buckets, key_arns=keys, labels=labels, notes=tuple(notes),
                   signing_key_arn=signing_key, sightings=sightings)
        if table:
            base = replace(base, consent_table=table)
        return replace(base, **overrides) if overrides else base


_MAX_TABLES_READ = 50
_CONSENT_KEY_SCHEMA = [{"AttributeName": "speaker", "KeyType": "HASH"}]


def _discover_consent_table(session: boto3.Session, notes: list[str]) -> str | None:
    """The consent registry's table: the default name if it exists, else the one table whose
    name contains ``consent`` and whose key is the registry's (``speaker``, partition key
    only). ListTables and DescribeTable
    (https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_DescribeTable.html).
    What cannot be read is noted; ``None``: keep the configured name."""
    default = CheckConfig.consent_table
    try:
        ddb = session.client("dynamodb")
        names = [str(n) for page in ddb.get_paginator("list_tables").paginate()
                 for n in page.get("TableNames", [])]
        if default in names:
            return default
        shaped = [n for n in names if "consent" in n.lower()][:_MAX_TABLES_READ]
        found = [n for n in shaped
                 if ddb.describe_table(TableName=n)["Table"].get("KeySchema")
                 == _CONSENT_KEY_SCHEMA]
    except EVALUATION_ERRORS as exc:
        notes.append(f"consent registry table not looked up ({could_not_evaluate(exc)})")
        return None
    if len(found) == 1:
        notes.append(f"consent registry: table {found[0]!r} (its name and its key, speaker)")
        return found[0]
    notes.append(f"no consent registry table found (expected {default!r}, or one table named "
                 "*consent* keyed by speaker" + (f"; found {len(found)}: "
                                                   f"{', '.join(found[:5])}" if found
                                                   else "") + ")")
    return None


def _key_from_encryption(session: boto3.Session, bucket: str | None,
                         notes: list[str]) -> str | None:
    if bucket is None:
        return None
    try:
        rules = session.client("s3").get_bucket_encryption(Bucket=bucket)[
            "ServerSideEncryptionConfiguration"]["Rules"]
        key = (rules[0].get("ApplyServerSideEncryptionByDefault", {}).get("KMSMasterKeyID")
               if rules else None)
        return str(key) if key and str(key).startswith("arn:") else None
    except EVALUATION_ERRORS as exc:
        notes.append(f"default encryption of {bucket} not read ({could_not_evaluate(exc)})")
        return None


T = TypeVar("T")


class CheckContext:
    """What a check gets: the session, the configuration, the account, and a shared memo.

    Several checks read the same configuration (every bucket-hardening check reads the same
    :func:`securepipe.encryption.hardening.inspect_bucket` findings), so :meth:`memo` computes each
    shared
    read once per run, errors included: a read that failed fails the same way for every check
    that needs it, without asking AWS again.
    """

    def __init__(self, session: boto3.Session, config: CheckConfig,
                 account_id: str | None = None, caller_arn: str | None = None) -> None:
        self.session = session
        self.config = config
        self.account_id = account_id
        self.caller_arn = caller_arn
        self._memo: dict[Hashable, tuple[bool, Any]] = {}

    def memo(self, key: Hashable, compute: Callable[[], T]) -> T:
        if key not in self._memo:
            try:
                self._memo[key] = (True, compute())
            except Exception as exc:
                self._memo[key] = (False, exc)
        ok, value = self._memo[key]
        if not ok:
            raise value
        return value

    def cached(self, key: Hashable) -> Any:
        """A memoised value if it was computed successfully, else ``None``."""
        ok, value = self._memo.get(key, (False, None))
        return value if ok else None

    def now(self) -> dt.datetime:
        moment = self.config.clock()
        if not isinstance(moment, dt.datetime) or moment.tzinfo is None:
            raise InvalidParameterError("the configured clock must return an aware datetime")
        return moment

    def client(self, service: str) -> Any:
        return self.memo(("client", service), lambda: self.session.client(service))


def per_resource(items: Iterable[T], evaluate: Callable[[T], ResourceResult],
                 name: Callable[[T], str]) -> list[ResourceResult]:
    """Evaluate each item; one that cannot be evaluated becomes an ``error`` result."""
    out = []
    for item in items:
        try:
            out.append(evaluate(item))
        except EVALUATION_ERRORS as exc:
            out.append(ResourceResult(name(item), "error", could_not_evaluate(exc)))
    return out
