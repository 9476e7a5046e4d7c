"""A history of audit trails that nobody but the writer can extend, reorder or hide from.

One trail proves its own lines (:mod:`securepipe.audit.chain`); a history must also prove that
no *whole* trail was dropped, replaced by another genuine trail, or reordered. So, as in
CloudTrail's log file integrity validation (digest files: SHA-256 of each delivered log file,
each digest naming the previous digest, signed with a key only CloudTrail holds; CloudTrail
User Guide, "CloudTrail digest file structure":
https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-log-file-validation-digest-file-structure.html):

* each trail's header names ``previous``, the head digest of the trail shipped before it;
* :meth:`TrailLedger.seal` writes a *digest index* (normally once a day, under
  ``digests/YYYY-MM-DD/<n>.json``, ``n`` counting every digest of the history) listing every
  trail shipped since the last seal (key, version id, SHA-256 of the object, head, record
  count), naming the previous digest's SHA-256, and signed with the same KMS asymmetric key; it
  is written only if absent (``If-None-Match: *``) and under Object Lock;
* the audit bucket has a default Object Lock retention (:func:`apply_default_retention`), so
  every put there, a planted one included, is locked ("the rule ... will be applied by default
  to every new object placed in the specified bucket", PutObjectLockConfiguration).

:func:`read_history` reads every *version* and delete marker under the trail and digest prefixes
(ListObjectVersions), so a delete marker hides nothing and is itself reported;
:func:`verify_history` checks the whole history offline with the public key and reports every
break in order, ``first_break`` first: a digest or trail edited, a signature by another key, a
day dropped, a trail dropped, swapped or reordered, a version nobody listed, a delete marker.
Verifying costs no KMS call beyond fetching the public key once.

What it cannot see: the newest day being dropped *entirely* (digest and trails) leaves a shorter
history that is still consistent; Object Lock is what stops that (those versions cannot be
deleted), and ``expect_head`` pins a digest known from elsewhere.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import boto3
from botocore.exceptions import ClientError

from securepipe import clock
from securepipe.audit.chain import (
    DEFAULT_CHECKPOINT_EVERY,
    GENESIS,
    LEGACY_HMAC_FORMAT,
    SCHEME_HMAC,
    AuditTrail,
    ShippedTrail,
    VerifyResult,
    ship_to_bucket,
    verify_trail,
)
from securepipe.audit.records import canonical_json, utc_iso
from securepipe.clients import shared_client
from securepipe.encryption.hardening import sse_kms_put_args
from securepipe.encryption.signing import (
    KmsSigner,
    PublicKeyVerifier,
    signature_from_text,
    signature_to_text,
)
from securepipe.errors import InvalidParameterError, SecurePipeError, SignatureError
from securepipe.ids import validate_kms_key_arn

TRAIL_PREFIX = "trails/"
DIGEST_PREFIX = "digests/"
DIGEST_FORMAT = 1
#: Prefix of every message a digest index's signature covers (domain separation).
SIGNED_DIGEST_TAG = b"securepipe:audit-digest:v1\n"
_DIGEST_KEYS = frozenset({"type", "version", "seq", "day", "key_arn", "previous", "head",
                          "created", "trails", "sig"})
_ENTRY_KEYS = frozenset({"key", "version_id", "sha256", "name", "head", "previous", "records"})
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
Mode = Literal["COMPLIANCE", "GOVERNANCE"]


def _sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _digest_key(prefix: str, day: str, seq: int) -> str:
    return f"{prefix}{day}/{seq:06d}.json"


def digest_message(body: Mapping[str, Any]) -> bytes:
    """The bytes a digest index's ``sig`` covers: the tag and its canonical JSON without ``sig``."""
    return SIGNED_DIGEST_TAG + canonical_json(
        {k: v for k, v in body.items() if k != "sig"}).encode("ascii")


def apply_default_retention(session: boto3.Session, bucket: str, *, days: int = 365,
                            mode: Mode = "COMPLIANCE") -> None:
    """Give an Object Lock bucket a default retention, so every new object version is locked.

    Wraps PutObjectLockConfiguration (Object Lock must have been enabled at bucket creation):
    https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObjectLockConfiguration.html
    """
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 36500:
        raise InvalidParameterError("days must be an int in [1, 36500]")
    if mode not in ("COMPLIANCE", "GOVERNANCE"):
        raise InvalidParameterError("mode must be COMPLIANCE or GOVERNANCE")
    shared_client(session, "s3").put_object_lock_configuration(
        Bucket=bucket, ObjectLockConfiguration={
            "ObjectLockEnabled": "Enabled",
            "Rule": {"DefaultRetention": {"Mode": mode, "Days": days}}})


def default_retention(session: boto3.Session, bucket: str) -> dict[str, Any] | None:
    """The bucket's default Object Lock retention (``{"Mode":..., "Days"|"Years":...}``) or
    ``None`` (GetObjectLockConfiguration)."""
    try:
        conf = shared_client(session, "s3").get_object_lock_configuration(Bucket=bucket)[
            "ObjectLockConfiguration"]
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == "ObjectLockConfigurationNotFoundError":
            return None
        raise
    rule = conf.get("Rule", {}).get("DefaultRetention")
    if conf.get("ObjectLockEnabled") != "Enabled" or not rule:
        return None
    if not (rule.get("Days") or rule.get("Years")):
        return None
    return dict(rule)


@dataclass(frozen=True)
class ShippedDigest:
    """A digest index written by :meth:`TrailLedger.seal`."""

    bucket: str
    key: str
    version_id: str
    sha256: str
    day: str
    trails: int


class TrailLedger:
    """The writer side of a history: opens trails chained to the last one, ships them, seals
    days.

    :param session: the writer's session (``kms:Sign`` on ``signing_key_arn``, ``s3:PutObject``
        on the audit bucket).
    :param previous_trail: head of the last trail already shipped (:data:`GENESIS` at first).
    :param previous_digest: SHA-256 of the last digest index already written.
    :param sealed: how many digest indexes the history already has.
    :meth:`resume` reads all three back from the bucket.
    :param sse_kms_key_arn: SSE-KMS key for the objects (a hardened bucket requires one).
    One trail is open at a time: two open trails would both name the same predecessor.
    """

    def __init__(self, session: boto3.Session, bucket: str, signing_key_arn: str, *,
                 trail_prefix: str = TRAIL_PREFIX, digest_prefix: str = DIGEST_PREFIX,
                 retain_days: int = 365, mode: Mode = "COMPLIANCE",
                 sse_kms_key_arn: str | None = None, previous_trail: str = GENESIS,
                 previous_digest: str = GENESIS, sealed: int = 0) -> None:
        if not trail_prefix or not digest_prefix or trail_prefix.startswith(digest_prefix) or (
                digest_prefix.startswith(trail_prefix)):
            raise InvalidParameterError("trail and digest prefixes must be distinct and "
                                        "non-empty")
        self.session = session
        self.bucket = bucket
        self.signer = KmsSigner(session, signing_key_arn)
        self.trail_prefix, self.digest_prefix = trail_prefix, digest_prefix
        self.retain_days, self.mode, self.sse_kms_key_arn = retain_days, mode, sse_kms_key_arn
        self.head = previous_trail
        self.previous_digest = previous_digest
        self.sealed = sealed
        self._open: AuditTrail | None = None
        self._pending: list[dict[str, Any]] = []

    @classmethod
    def resume(cls, session: boto3.Session, bucket: str, signing_key_arn: str,
               **kwargs: Any) -> TrailLedger:
        """A ledger that continues the history already in ``bucket``: its last digest index
        (verified with the public key, KMS GetPublicKey) gives the previous digest, the last
        trail's head and the count. ``kwargs`` as for the constructor."""
        prefix = kwargs.get("digest_prefix", DIGEST_PREFIX)
        verifier = PublicKeyVerifier.from_kms(session, signing_key_arn)
        history = read_history(session, bucket, trail_prefix=kwargs.get(
            "trail_prefix", TRAIL_PREFIX), digest_prefix=prefix, trails=False)
        last: tuple[int, str, dict[str, Any]] | None = None
        for obj in history.digests:
            data, _ = _parse_digest(obj, verifier, prefix)
            if data is not None and (last is None or data["seq"] > last[0]):
                last = (data["seq"], _sha(obj.body or b""), data)
        if last is None:
            return cls(session, bucket, signing_key_arn, **kwargs)
        return cls(session, bucket, signing_key_arn, previous_trail=str(last[2]["head"]),
                   previous_digest=last[1], sealed=last[0], **kwargs)

    @property
    def pending(self) -> int:
        """Trails shipped but not yet listed in a digest index."""
        return len(self._pending)

    def open(self, name: str, *, checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY
             ) -> AuditTrail:
        """A new :class:`AuditTrail` whose header names the last shipped trail's head."""
        if self._open is not None:
            raise SecurePipeError(f"trail {self._open.name!r} is still open: ship it first")
        self._open = AuditTrail(self.session, self.signer.key_arn, name, previous=self.head,
                                checkpoint_every=checkpoint_every)
        return self._open

    def ship(self, trail: AuditTrail) -> ShippedTrail:
        """Seal ``trail`` and put it under ``<trail_prefix><day>/<name>.jsonl``, locked."""
        if trail is not self._open:
            raise SecurePipeError("only the trail this ledger opened last can be shipped")
        lines = trail.close()
        day = clock.now().date().isoformat()
        key = f"{self.trail_prefix}{day}/{trail.name}.jsonl"
        if any(p["key"] == key for p in self._pending):
            raise SecurePipeError(f"a trail named {trail.name!r} was already shipped today")
        shipped = ship_to_bucket(self.session, self.bucket, key, lines, self._until(),
                                 mode=self.mode, sse_kms_key_arn=self.sse_kms_key_arn)
        self._pending.append({"key": key, "version_id": shipped.version_id,
                              "sha256": shipped.sha256, "name": trail.name, "head": trail.head,
                              "previous": trail.previous, "records": trail.records})
        self.head = trail.head
        self._open = None
        return shipped

    def seal(self) -> ShippedDigest:
        """Write today's signed digest index listing every trail shipped since the last seal.

        One KMS ``Sign``; S3 PutObject with ``If-None-Match: *`` (a day is sealed once) and an
        Object Lock retention:
        https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html
        """
        if self._open is not None:
            raise SecurePipeError(f"trail {self._open.name!r} is still open: ship it first")
        day = clock.now().date().isoformat()
        seq = self.sealed + 1
        body: dict[str, Any] = {
            "type": "digest", "version": DIGEST_FORMAT, "seq": seq, "day": day,
            "key_arn": self.signer.key_arn, "previous": self.previous_digest, "head": self.head,
            "created": utc_iso(clock.now()), "trails": list(self._pending)}
        sig = self.signer.sign(digest_message(body))
        data = (canonical_json({**body, "sig": signature_to_text(sig)}) + "\n"
                ).encode("ascii")
        key = _digest_key(self.digest_prefix, day, seq)
        raw = hashlib.sha256(data).digest()
        out = shared_client(self.session, "s3").put_object(
            Bucket=self.bucket, Key=key, Body=data, ContentType="application/json",
            IfNoneMatch="*", ObjectLockMode=self.mode, ObjectLockRetainUntilDate=self._until(),
            ChecksumAlgorithm="SHA256", ChecksumSHA256=base64.b64encode(raw).decode("ascii"),
            **(sse_kms_put_args(self.sse_kms_key_arn) if self.sse_kms_key_arn else {}))
        self.previous_digest = raw.hex()
        self.sealed = seq
        sealed = ShippedDigest(self.bucket, key, str(out.get("VersionId", "")), raw.hex(), day,
                               len(self._pending))
        self._pending = []
        return sealed

    def _until(self) -> dt.datetime:
        return clock.now() + dt.timedelta(days=self.retain_days)


def verifier_policy(bucket: str, signing_key_arn: str) -> dict[str, Any]:
    """An IAM policy with exactly what a verifier needs, and nothing that could sign or write.

    ``kms:GetPublicKey`` on the signing key; ``s3:GetObject``/``s3:GetObjectVersion`` on the
    audit bucket's objects; ``s3:ListBucket``/``s3:ListBucketVersions`` on the bucket (actions:
    https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazons3.html).
    """
    from securepipe.ids import validate_bucket_name

    bucket, key = validate_bucket_name(bucket), validate_kms_key_arn(signing_key_arn)
    return {"Version": "2012-10-17", "Statement": [
        {"Sid": "PublicKeyOnly", "Effect": "Allow", "Action": "kms:GetPublicKey",
         "Resource": key},
        {"Sid": "ReadEveryVersion", "Effect": "Allow",
         "Action": ["s3:GetObject", "s3:GetObjectVersion"],
         "Resource": f"arn:aws:s3:::{bucket}/*"},
        {"Sid": "ListEveryVersion", "Effect": "Allow",
         "Action": ["s3:ListBucket", "s3:ListBucketVersions"],
         "Resource": f"arn:aws:s3:::{bucket}"}]}


def create_verifier_role(session: boto3.Session, role_name: str, bucket: str,
                         signing_key_arn: str, *, trusted_arn: str) -> str:
    """Create a role holding only :func:`verifier_policy`, assumable by ``trusted_arn``; return
    its ARN (IAM CreateRole and PutRolePolicy:
    https://docs.aws.amazon.com/IAM/latest/APIReference/API_PutRolePolicy.html)."""
    iam = shared_client(session, "iam")
    arn = iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{
            "Effect": "Allow", "Action": "sts:AssumeRole",
            "Principal": {"AWS": trusted_arn}}]}),
        Tags=[{"Key": "securepipe", "Value": "audit-verifier"}])["Role"]["Arn"]
    iam.put_role_policy(RoleName=role_name, PolicyName="verify-audit-trails",
                        PolicyDocument=json.dumps(verifier_policy(bucket, signing_key_arn)))
    return str(arn)


# -- reading and verifying ---------------------------------------------------------------------


@dataclass(frozen=True)
class StoredObject:
    """One object version read back (or a delete marker: ``body`` is ``None``)."""

    key: str
    version_id: str
    body: bytes | None
    last_modified: dt.datetime | None = None


@dataclass(frozen=True)
class History:
    """Every version and delete marker under the trail and digest prefixes."""

    digests: tuple[StoredObject, ...]
    trails: Mapping[tuple[str, str], StoredObject]
    markers: tuple[StoredObject, ...] = ()


def read_history(session: boto3.Session, bucket: str, *, trail_prefix: str = TRAIL_PREFIX,
                 digest_prefix: str = DIGEST_PREFIX, trails: bool = True) -> History:
    """List every version and delete marker under both prefixes and read each version.

    Wraps ListObjectVersions
    (https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectVersions.html) and GetObject
    with ``VersionId``; the caller needs ``s3:ListBucketVersions`` and
    ``s3:GetObjectVersion``/``s3:GetObject`` on the audit bucket, nothing else.
    """
    s3 = shared_client(session, "s3")
    digests: list[StoredObject] = []
    stored: dict[tuple[str, str], StoredObject] = {}
    markers: list[StoredObject] = []
    for prefix in (digest_prefix, trail_prefix) if trails else (digest_prefix,):
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket,
                                                                       Prefix=prefix):
            for v in page.get("Versions", []):
                body = s3.get_object(Bucket=bucket, Key=v["Key"],
                                     VersionId=v["VersionId"])["Body"].read()
                obj = StoredObject(v["Key"], str(v["VersionId"]), body, v.get("LastModified"))
                if prefix == digest_prefix:
                    digests.append(obj)
                else:
                    stored[(obj.key, obj.version_id)] = obj
            for m in page.get("DeleteMarkers", []):
                markers.append(StoredObject(m["Key"], str(m["VersionId"]), None,
                                            m.get("LastModified")))
    return History(tuple(digests), stored, tuple(markers))


@dataclass(frozen=True, order=True)
class Break:
    """Where the history breaks: the object (key, version), the line if inside a trail, why.

    Breaks sort in history order: by day, then the digest before its trails in listed order,
    then versions no digest lists and delete markers.
    """

    order: tuple[str, int, int, str] = field(repr=False)
    key: str = field(compare=False)
    version_id: str | None = field(compare=False)
    line: int | None = field(compare=False)
    reason: str = field(compare=False)

    def __str__(self) -> str:
        where = f"{self.key}" + (f" (version {self.version_id})" if self.version_id else "")
        return where + (f", line {self.line}" if self.line is not None else "") + (
            f": {self.reason}")


@dataclass(frozen=True)
class HistoryResult:
    """Outcome of :func:`verify_history`."""

    breaks: tuple[Break, ...]
    days: int
    trails: int
    records: int
    legacy: tuple[tuple[str, VerifyResult], ...] = ()

    @property
    def ok(self) -> bool:
        return not self.breaks

    @property
    def first_break(self) -> Break | None:
        return self.breaks[0] if self.breaks else None

    def __bool__(self) -> bool:
        return self.ok


def _day_of(key: str, prefix: str, when: dt.datetime | None) -> str:
    rest = key[len(prefix):] if key.startswith(prefix) else key
    match = _DAY.match(rest)
    if match:
        return match.group(0)
    return when.date().isoformat() if when else "9999-12-31"


def _parse_digest(obj: StoredObject, verifier: PublicKeyVerifier, prefix: str
                  ) -> tuple[dict[str, Any] | None, str]:
    assert obj.body is not None
    try:
        text = obj.body.decode("ascii")
        data = json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None, "digest is not ASCII JSON"
    if not isinstance(data, dict) or set(data) != _DIGEST_KEYS:
        return None, "digest has the wrong fields"
    try:
        canonical = canonical_json(data) + "\n"
    except (ValueError, RecursionError):
        return None, "digest is not canonical JSON"
    if canonical != text:
        return None, "digest is not in canonical form (re-written)"
    if data["type"] != "digest" or data["version"] != DIGEST_FORMAT:
        return None, "not a digest index of a known format"
    if data["key_arn"] != verifier.key_arn:
        return None, "digest names another signing key than the pinned one"
    try:
        verifier.verify(digest_message(data), signature_from_text(data["sig"]))
    except SignatureError:
        return None, "digest signature does not verify with the pinned key (edited or forged)"
    if not isinstance(data["seq"], int) or isinstance(data["seq"], bool) or not isinstance(
            data["day"], str) or obj.key != _digest_key(prefix, data["day"], data["seq"]):
        return None, f"digest for day {data['day']} stored under another key (moved)"
    entries = data["trails"]
    if not isinstance(entries, list) or not all(
            isinstance(e, dict) and set(e) == _ENTRY_KEYS for e in entries):
        return None, "digest lists malformed trail entries"
    return data, ""


def verify_history(history: History, verifier: PublicKeyVerifier, *,
                   trail_prefix: str = TRAIL_PREFIX, digest_prefix: str = DIGEST_PREFIX,
                   expect_head: str | None = None,
                   legacy_session: boto3.Session | None = None,
                   legacy_key_arns: Sequence[str] = ()) -> HistoryResult:
    """Check every digest index and trail of ``history`` offline with ``verifier``'s public key.

    Reports every break, in history order: digest versions that do not verify (edited, forged,
    another key's), days whose digest does not name the previous one (a day dropped or
    reordered), listed trails that are missing, do not verify (line located), differ from the
    digest's hash, or do not chain to the trail before (dropped, swapped, reordered); versions
    no digest lists (planted, or shipped after the last seal); delete markers. ``expect_head``:
    the SHA-256 the last digest must have. Legacy format-1 trails no digest lists are verified
    with ``legacy_session`` (KMS Decrypt) and returned in ``legacy``, labelled
    :data:`~securepipe.audit.chain.SCHEME_HMAC`, but only under a key in ``legacy_key_arns``
    (anyone may mint a data key under a key of their own); otherwise they are breaks.
    """
    pinned = frozenset(validate_kms_key_arn(a) for a in legacy_key_arns)
    breaks: list[Break] = []
    valid: list[tuple[str, StoredObject, dict[str, Any]]] = []
    for obj in history.digests:
        day = _day_of(obj.key, digest_prefix, obj.last_modified)
        data, why = _parse_digest(obj, verifier, digest_prefix)
        if data is None:
            breaks.append(Break((day, 0, 0, obj.key), obj.key, obj.version_id, None, why))
        else:
            valid.append((day, obj, data))
    valid.sort(key=lambda t: (t[2]["seq"], t[0], t[1].version_id))
    by_sha = {_sha(o.body or b""): d for d, o, _ in valid}
    expected_digest = GENESIS
    expected_trail = GENESIS
    listed: set[tuple[str, str]] = set()
    days = trails = records = 0
    seen_days: set[int] = set()
    for day, obj, data in valid:
        days += 1
        if data["seq"] in seen_days:
            breaks.append(Break((day, 0, 1, obj.key), obj.key, obj.version_id, None,
                                "a second signed digest with the same number"))
        seen_days.add(data["seq"])
        if data["previous"] != expected_digest:
            named = by_sha.get(data["previous"])
            why = (f"names the digest of {named} as previous, but the one before it is "
                   f"another: digests reordered" if named else
                   "the previous digest it names is missing: a day was dropped or replaced")
            breaks.append(Break((day, 0, 2, obj.key), obj.key, obj.version_id, None, why))
        expected_digest = _sha(obj.body or b"")
        for i, entry in enumerate(data["trails"], start=1):
            slot = (str(entry["key"]), str(entry["version_id"]))
            listed.add(slot)
            order = (day, i, 0, slot[0])
            stored = history.trails.get(slot)
            if stored is None or stored.body is None:
                breaks.append(Break(order, slot[0], slot[1], None, "listed in the digest of "
                                    f"{day} but missing (this version was deleted)"))
                expected_trail = str(entry["head"])
                continue
            lines = stored.body.decode("utf-8", "replace").splitlines()
            result = verify_trail(lines, verifier, name=str(entry["name"]))
            trails += 1
            if not result.ok:
                breaks.append(Break((day, i, (result.index or 0) + 1, slot[0]), slot[0],
                                    slot[1], result.index, result.reason))
            elif _sha(stored.body) != entry["sha256"] or result.head != entry["head"]:
                breaks.append(Break(order, slot[0], slot[1], None, "its bytes differ from "
                                    "what the digest lists (the trail was replaced)"))
            elif result.previous != expected_trail:
                breaks.append(Break(order, slot[0], slot[1], 0, "its header names another "
                                    "previous trail than the one listed before it: a trail "
                                    "was dropped, swapped or reordered"))
            else:
                records += result.records
            expected_trail = str(entry["head"])
        if data["head"] != expected_trail:
            breaks.append(Break((day, 1 << 29, 0, obj.key), obj.key, obj.version_id, None,
                                "its head is not the last trail it chains"))
            expected_trail = str(data["head"])
    if expect_head is not None and expected_digest != expect_head:
        last = valid[-1][1].key if valid else digest_prefix
        breaks.append(Break(("9999-12-31", 0, 0, last), last, None, None,
                            "the last digest is not the expected head: the history was "
                            "truncated"))
    legacy: list[tuple[str, VerifyResult]] = []
    for slot, stored in sorted(history.trails.items()):
        if slot in listed:
            continue
        day = _day_of(slot[0], trail_prefix, stored.last_modified)
        order = (day, 1 << 30, 0, slot[0])
        lines = (stored.body or b"").decode("utf-8", "replace").splitlines()
        if lines and _version(lines[0]) == LEGACY_HMAC_FORMAT and legacy_session is not None:
            key_arn = _legacy_key(lines[0])
            if key_arn in pinned:
                result = verify_trail(lines, legacy_session, key_arn=key_arn)
                if result.ok:
                    legacy.append((slot[0], result))
                    continue
        breaks.append(Break(order, slot[0], slot[1], None, "a version no signed digest "
                            "lists (planted, or shipped after the last seal)"))
    for m in history.markers:
        prefix = digest_prefix if m.key.startswith(digest_prefix) else trail_prefix
        day = _day_of(m.key, prefix, m.last_modified)
        breaks.append(Break((day, 1 << 30, 1, m.key), m.key, m.version_id, None,
                            "a delete marker hides this key from plain listings (the versions "
                            "beneath are still read)"))
    return HistoryResult(tuple(sorted(breaks)), days, trails, records, tuple(legacy))


def _legacy_key(line: str) -> str | None:
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):
        return None
    key = obj.get("key_arn") if isinstance(obj, dict) else None
    return key if isinstance(key, str) else None


def _version(line: str) -> object:
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError):
        return None
    return obj.get("version") if isinstance(obj, dict) else None


def verify_bucket(session: boto3.Session, bucket: str, signing_key_arn: str, *,
                  trail_prefix: str = TRAIL_PREFIX, digest_prefix: str = DIGEST_PREFIX,
                  expect_head: str | None = None, legacy: bool = False,
                  legacy_key_arns: Sequence[str] = ()) -> HistoryResult:
    """:func:`read_history` then :func:`verify_history`, with the public key fetched once
    (KMS GetPublicKey) and pinned to ``signing_key_arn``. ``legacy=True`` also verifies
    format-1 trails no digest lists, with KMS Decrypt through ``session``, under the pinned
    ``legacy_key_arns`` only."""
    if legacy and not legacy_key_arns:
        raise InvalidParameterError("legacy=True needs legacy_key_arns: the keys old trails "
                                    "were written under (a forger can use a key of their own)")
    verifier = PublicKeyVerifier.from_kms(session, signing_key_arn)
    return verify_history(read_history(session, bucket, trail_prefix=trail_prefix,
                                       digest_prefix=digest_prefix),
                          verifier, trail_prefix=trail_prefix, digest_prefix=digest_prefix,
                          expect_head=expect_head, legacy_session=session if legacy else None,
                          legacy_key_arns=legacy_key_arns)


__all__ = [
    "DIGEST_FORMAT",
    "DIGEST_PREFIX",
    "SCHEME_HMAC",
    "SIGNED_DIGEST_TAG",
    "TRAIL_PREFIX",
    "Break",
    "History",
    "HistoryResult",
    "ShippedDigest",
    "StoredObject",
    "TrailLedger",
    "apply_default_retention",
    "create_verifier_role",
    "default_retention",
    "digest_message",
    "read_history",
    "verifier_policy",
    "verify_bucket",
    "verify_history",
]
