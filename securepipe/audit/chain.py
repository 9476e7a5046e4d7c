"""A tamper-evident audit trail: hash-chained JSON lines, HMAC checkpoints, Object Lock.

A plain log file can be edited after the fact. Here every line carries ``seq`` (its position)
and ``prev``, the SHA-256 of the previous line's bytes, so removing, inserting, reordering or
editing a line breaks the chain where it happened. Hashes alone can be recomputed by whoever
edits the file, so every ``checkpoint_every`` records, and when the trail is closed, a
*checkpoint* line carries an HMAC-SHA256 over itself, and so over ``prev``, the chain head: only
the holder of the HMAC key can write one, and the final checkpoint's record count makes
truncation visible.

The HMAC key is a KMS data key (``GenerateDataKey`` on the customer-managed key, with an
encryption context naming the trail). The trail's header stores only the *encrypted* data key;
the verifier calls KMS ``Decrypt`` with the same context to get the key back, so verifying is an
auditable KMS call, and a header moved to another trail (another context) does not decrypt.
Only the standard library's ``hmac`` and ``hashlib`` are used: no home-made cryptography. This
is the same design as CloudTrail's own log file integrity validation (digest files that chain
to the previous digest and are signed), scaled down.

:func:`verify_trail` reports OK, or the *first* line that breaks, with its index and a reason:
any single-line edit, deletion, insertion, reordering, and any truncation is detected and
located. (A forger who rewrites many lines is detected too, at the first checkpoint whose MAC
no longer matches; which of the lines before it changed cannot then be told.)

:func:`ship_to_bucket` writes a closed trail to the audit bucket with an Object Lock retention
date; S3 (and moto) refuses to delete that object version before the date.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TextIO

import boto3
from botocore.exceptions import ClientError

from securepipe import clock
from securepipe.audit.records import (
    AuditRecord,
    JsonAuditFormatter,
    canonical_json,
    utc_iso,
    validate_fields,
)
from securepipe.encryption.hardening import sse_kms_put_args
from securepipe.errors import InvalidParameterError, SecurePipeError

TRAIL_FORMAT = 1
DEFAULT_CHECKPOINT_EVERY = 100
_ZERO = "0" * 64
_HEADER_KEYS = frozenset({"type", "trail", "seq", "prev", "version", "created", "key_arn",
                          "data_key", "context", "checkpoint_every", "mac"})
_RECORD_KEYS = frozenset({"type", "trail", "seq", "prev", "record"})
_CHECKPOINT_KEYS = frozenset({"type", "trail", "seq", "prev", "records", "final", "time", "mac"})


def encryption_context(trail: str) -> dict[str, str]:
    """The KMS encryption context that binds a trail's HMAC data key to the trail's name."""
    return {"securepipe:trail": trail, "securepipe:use": "audit-trail-hmac"}


def _mac(key: bytes, body: Mapping[str, Any]) -> str:
    unsigned = {k: v for k, v in body.items() if k != "mac"}
    return hmac.new(key, canonical_json(unsigned).encode("ascii"), hashlib.sha256).hexdigest()


def _hash(line: str) -> str:
    return hashlib.sha256(line.encode("utf-8", "surrogatepass")).hexdigest()


class AuditTrail:
    """Writer for one hash-chained, checkpointed trail (JSON lines).

    Creating one calls KMS ``GenerateDataKey`` once:
    https://docs.aws.amazon.com/kms/latest/APIReference/API_GenerateDataKey.html

    :param session: boto3 session allowed ``kms:GenerateDataKey`` on ``key_arn``.
    :param key_arn: the customer-managed KMS key.
    :param name: the trail's name (goes into the encryption context and every line).
    :param checkpoint_every: records between two HMAC checkpoints.
    :param sink: optional text stream each line is written to as it is made (plus ``\\n``).

    The plaintext data key stays in this object's memory until :meth:`close`; Python cannot
    promise to wipe it, so keep writers short-lived.
    """

    def __init__(self, session: boto3.Session, key_arn: str, name: str, *,
                 checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
                 sink: TextIO | None = None) -> None:
        if not isinstance(name, str) or not name or len(name) > 256:
            raise InvalidParameterError(f"invalid trail name {name!r}")
        if not isinstance(checkpoint_every, int) or not 1 <= checkpoint_every <= 1_000_000:
            raise InvalidParameterError("checkpoint_every must be an int in [1, 1000000]")
        self.name = name
        self.checkpoint_every = checkpoint_every
        self._sink = sink
        self._lock = threading.Lock()
        context = encryption_context(name)
        out = session.client("kms").generate_data_key(
            KeyId=key_arn, KeySpec="AES_256", EncryptionContext=context)
        self._key: bytes | None = bytes(out["Plaintext"])
        header = {
            "type": "header", "trail": name, "seq": 0, "prev": _ZERO, "version": TRAIL_FORMAT,
            "created": utc_iso(clock.now()), "key_arn": str(out["KeyId"]),
            "data_key": base64.b64encode(out["CiphertextBlob"]).decode("ascii"),
            "context": context, "checkpoint_every": checkpoint_every,
        }
        self._lines: list[str] = []
        self._records = 0
        self._since_checkpoint = 0
        self._emit({**header, "mac": _mac(self._key, header)})

    @property
    def closed(self) -> bool:
        return self._key is None

    @property
    def lines(self) -> list[str]:
        """Every line so far (header, records, checkpoints), without newlines."""
        with self._lock:
            return list(self._lines)

    def append(self, record: AuditRecord | Mapping[str, Any]) -> str:
        """Chain one audit record (an :class:`AuditRecord` or a dict of JSON values)."""
        raw = record.as_extra() if isinstance(record, AuditRecord) else dict(record)
        # The same validation and redaction as the JSON formatter: unknown or secret-looking
        # fields are dropped, datetimes become ISO-8601 UTC, nothing raw reaches the trail.
        body, dropped = validate_fields(raw)
        if dropped:
            body["dropped_fields"] = dropped
        return self._append_body(body)

    def _append_body(self, body: dict[str, Any]) -> str:
        """Chain a record body that has already been validated (by the JSON formatter)."""
        with self._lock:
            if self._key is None:
                raise SecurePipeError(f"trail {self.name!r} is closed")
            line = self._emit({"type": "record", "trail": self.name, "seq": len(self._lines),
                               "prev": _hash(self._lines[-1]), "record": body})
            self._records += 1
            self._since_checkpoint += 1
            if self._since_checkpoint >= self.checkpoint_every:
                self._checkpoint(final=False)
            return line

    def close(self) -> list[str]:
        """Write the final checkpoint, forget the data key and return every line."""
        with self._lock:
            if self._key is not None:
                self._checkpoint(final=True)
                self._key = None
            return list(self._lines)

    def __enter__(self) -> AuditTrail:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _checkpoint(self, *, final: bool) -> None:
        assert self._key is not None
        body = {"type": "checkpoint", "trail": self.name, "seq": len(self._lines),
                "prev": _hash(self._lines[-1]), "records": self._records, "final": final,
                "time": utc_iso(clock.now())}
        self._emit({**body, "mac": _mac(self._key, body)})
        self._since_checkpoint = 0

    def _emit(self, obj: Mapping[str, Any]) -> str:
        line = canonical_json(obj)
        self._lines.append(line)
        if self._sink is not None:
            self._sink.write(line + "\n")
        return line


class TrailHandler(logging.Handler):
    """A logging handler that appends each record's validated audit fields to an
    :class:`AuditTrail` (use with :func:`securepipe.audit.records.audit_logger`)."""

    def __init__(self, trail: AuditTrail) -> None:
        super().__init__()
        self.trail = trail
        self._fields = JsonAuditFormatter()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            formatter = self.formatter if isinstance(self.formatter, JsonAuditFormatter) else (
                self._fields)
            self.trail._append_body(formatter.audit_fields(record))
        except Exception:
            self.handleError(record)


# -- verification ------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of :func:`verify_trail`: ``ok``, or the index of the first line that breaks."""

    ok: bool
    index: int | None
    reason: str
    records: int
    checkpoints: int
    trail: str | None = None

    def __bool__(self) -> bool:
        return self.ok


@dataclass
class _Line:
    text: str
    obj: dict[str, Any] | None
    problem: str | None


def _parse(text: str) -> _Line:
    try:
        obj = json.loads(text)
    except ValueError:
        return _Line(text, None, "not valid JSON")
    if not isinstance(obj, dict):
        return _Line(text, None, "not a JSON object")
    kind = obj.get("type")
    keys = {"header": _HEADER_KEYS, "record": _RECORD_KEYS, "checkpoint": _CHECKPOINT_KEYS}.get(
        kind if isinstance(kind, str) else "")
    if keys is None:
        return _Line(text, None, f"unknown line type {kind!r}")
    if set(obj) != keys:
        return _Line(text, None, f"{kind} line has the wrong fields")
    if (not isinstance(obj["seq"], int) or isinstance(obj["seq"], bool)
            or not isinstance(obj["prev"], str) or not isinstance(obj["trail"], str)):
        return _Line(text, None, f"{kind} line has a malformed seq, prev or trail")
    if kind == "record" and not isinstance(obj["record"], dict):
        return _Line(text, None, "record line without a record object")
    if kind == "checkpoint" and (not isinstance(obj["records"], int)
                                 or not isinstance(obj["final"], bool)
                                 or not isinstance(obj["mac"], str)):
        return _Line(text, None, "checkpoint line with malformed fields")
    try:
        canonical = canonical_json(obj)
    except ValueError:
        return _Line(text, None, "not canonical JSON")
    if canonical != text:
        return _Line(text, None, "not in canonical form (the line was re-written)")
    return _Line(text, obj, None)


def _as_text(line: str | bytes) -> str:
    if isinstance(line, bytes | bytearray):
        line = bytes(line).decode("utf-8", "replace")
    if not isinstance(line, str):
        raise InvalidParameterError("trail lines must be str or bytes")
    return line[:-1] if line.endswith("\n") else line


def verify_trail(
    lines: Iterable[str | bytes], session: boto3.Session, *, name: str | None = None,
    key_arn: str | None = None,
) -> VerifyResult:
    """Check a trail line by line; report OK or the first line that breaks and why.

    Calls KMS ``Decrypt`` once, for the header's data key, with the trail's encryption context:
    https://docs.aws.amazon.com/kms/latest/APIReference/API_Decrypt.html

    :param name: expected trail name (a whole trail swapped for another one is refused).
    :param key_arn: expected KMS key; pin it, or a forger could write a whole new trail under a
        key of their own.
    :returns: a :class:`VerifyResult`; ``index`` is the 0-based line index. A truncated trail
        reports ``index == len(lines)``: the position where the final checkpoint is missing.
    """
    texts = [_as_text(line) for line in lines]
    n = len(texts)
    if n == 0:
        return VerifyResult(False, 0, "empty trail: the header is missing", 0, 0)
    parsed = [_parse(t) for t in texts]
    hashes = [_hash(t) for t in texts]
    head = parsed[0]

    def fail(index: int, reason: str, records: int = 0, checkpoints: int = 0) -> VerifyResult:
        trail = head.obj["trail"] if head.obj else None
        return VerifyResult(False, index, reason, records, checkpoints, trail)

    if head.obj is None:
        return fail(0, f"header: {head.problem}")
    if head.obj["type"] != "header":
        return fail(0, "the first line is not the trail header")
    trail = head.obj["trail"]
    if name is not None and trail != name:
        return fail(0, f"header names trail {trail!r}, expected {name!r}")
    if key_arn is not None and head.obj["key_arn"] != key_arn:
        return fail(0, "header names another KMS key than the expected one")
    if head.obj["seq"] != 0 or head.obj["prev"] != _ZERO or head.obj["version"] != TRAIL_FORMAT:
        return fail(0, "header has a wrong seq, prev or format version")
    if head.obj["context"] != encryption_context(trail):
        return fail(0, "header's encryption context does not name this trail")
    every = head.obj["checkpoint_every"]
    if not isinstance(every, int) or every < 1:
        return fail(0, "header has a malformed checkpoint interval")
    try:
        blob = base64.b64decode(head.obj["data_key"], validate=True)
        key = session.client("kms").decrypt(
            CiphertextBlob=blob, KeyId=head.obj["key_arn"],
            EncryptionContext=encryption_context(trail))["Plaintext"]
    except (ClientError, ValueError, TypeError) as exc:
        return fail(0, f"header: the data key could not be decrypted ({_short(exc)})")
    if not hmac.compare_digest(_mac(key, head.obj), str(head.obj["mac"])):
        return fail(0, "header MAC does not verify (the header was edited)")

    def genuine_checkpoint(i: int) -> bool:
        if not 0 < i < n:
            return False
        obj = parsed[i].obj
        return (obj is not None and obj["type"] == "checkpoint" and obj["trail"] == trail
                and hmac.compare_digest(_mac(key, obj), obj["mac"]))

    def seq_of(i: int) -> int | None:
        obj = parsed[i].obj if 0 <= i < n else None
        return None if obj is None else obj["seq"]

    def chains(i: int, j: int) -> bool:
        """Line i's prev is the hash of line j."""
        obj = parsed[i].obj if 0 <= i < n else None
        return obj is not None and j >= 0 and obj["prev"] == hashes[j]

    def locate(k: int) -> tuple[int, str]:
        """Line k has a wrong seq or prev: decide which line is the culprit."""
        s = seq_of(k)
        assert s is not None
        if s == k:  # right position, broken link
            if seq_of(k + 1) == k and chains(k + 1, k - 1):
                return k, "inserted line: the line after it chains to the line before it"
            if k - 1 >= 1 and (genuine_checkpoint(k) or chains(k + 1, k)):
                return k - 1, ("line was edited: its hash no longer matches the prev of the "
                               "line after it")
            return k, "prev does not match the hash of the line before (line edited)"
        if s == k - 1:  # two lines claim the same position
            if texts[k] == texts[k - 1]:
                return k, f"duplicate of line {k - 1} (replayed)"
            if k - 1 >= 1 and (genuine_checkpoint(k) or chains(k + 1, k)):
                return k - 1, "inserted line: the lines around it chain past it"
            return k, f"inserted line: a second line claims seq {s}"
        if s == k + 1:
            if seq_of(k + 1) == k:
                return k, f"out of order: seq {s} comes before seq {k}"
            return k, f"line with seq {k} is missing (deleted or moved)"
        if s < k:
            return k, f"out of order: seq {s} appears again at line {k}"
        return k, f"lines with seq {k}..{s - 1} are missing (deleted)"

    records = checkpoints = since = 0
    final_at: int | None = None
    for k in range(1, n):
        line = parsed[k]
        if final_at is not None:
            return fail(k, "line after the final checkpoint (appended after close)", records,
                        checkpoints)
        if line.obj is None:
            return fail(k, str(line.problem), records, checkpoints)
        obj = line.obj
        if obj["type"] == "header":
            return fail(k, "a second header inside the trail", records, checkpoints)
        if obj["trail"] != trail:
            return fail(k, f"line belongs to trail {obj['trail']!r}", records, checkpoints)
        if obj["type"] == "checkpoint" and not genuine_checkpoint(k):
            return fail(k, "checkpoint MAC does not verify (forged or edited checkpoint)",
                        records, checkpoints)
        if obj["seq"] != k or obj["prev"] != hashes[k - 1]:
            index, reason = locate(k)
            return fail(index, reason, records, checkpoints)
        if obj["type"] == "record":
            if since >= every:
                return fail(k, f"checkpoint missing after {every} records", records, checkpoints)
            records += 1
            since += 1
            continue
        if obj["records"] != records:
            return fail(k, f"checkpoint counts {obj['records']} records, the trail has {records}",
                        records, checkpoints)
        checkpoints += 1
        since = 0
        if obj["final"]:
            final_at = k
    if final_at is None:
        return fail(n, "no final checkpoint: the trail was truncated (or never closed)", records,
                    checkpoints)
    return VerifyResult(True, None, "ok", records, checkpoints, trail)


def _short(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return f"{err.get('Code', 'error')}: {err.get('Message', '')}".rstrip(": ")
    return type(exc).__name__


# -- shipping ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShippedTrail:
    """Where a trail was written, and the retention that protects that object version."""

    bucket: str
    key: str
    version_id: str
    sha256: str
    mode: str
    retain_until: dt.datetime


def ship_to_bucket(
    session: boto3.Session, bucket: str, key: str, lines: Sequence[str],
    retain_until: dt.datetime, *, mode: Literal["COMPLIANCE", "GOVERNANCE"] = "COMPLIANCE",
    sse_kms_key_arn: str | None = None,
) -> ShippedTrail:
    """Put a trail into an Object Lock bucket with a retention date on this object version.

    Wraps PutObject with ``ObjectLockMode`` and ``ObjectLockRetainUntilDate`` (the bucket must
    have been created with Object Lock enabled):
    https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html
    In COMPLIANCE mode nobody, the root user included, can delete the version or shorten the
    retention before the date; GOVERNANCE allows it with ``s3:BypassGovernanceRetention``.
    With ``sse_kms_key_arn``, the object is written with SSE-KMS under that key, as a hardened
    bucket (:func:`securepipe.encryption.hardening.apply_bucket_hardening`) requires.
    """
    if mode not in ("COMPLIANCE", "GOVERNANCE"):
        raise InvalidParameterError("mode must be COMPLIANCE or GOVERNANCE")
    if not lines:
        raise InvalidParameterError("refusing to ship an empty trail")
    until = retain_until if retain_until.tzinfo else retain_until.replace(tzinfo=dt.UTC)
    if until <= clock.now():
        raise InvalidParameterError("retain_until must be in the future")
    body = "".join(_as_text(line) + "\n" for line in lines).encode("utf-8")
    digest = hashlib.sha256(body).digest()
    out = session.client("s3").put_object(
        Bucket=bucket, Key=key, Body=body, ContentType="application/x-ndjson",
        ObjectLockMode=mode, ObjectLockRetainUntilDate=until, ChecksumAlgorithm="SHA256",
        ChecksumSHA256=base64.b64encode(digest).decode("ascii"),
        **(sse_kms_put_args(sse_kms_key_arn) if sse_kms_key_arn else {}),
    )
    return ShippedTrail(bucket, key, str(out.get("VersionId", "")), digest.hex(), mode, until)


def read_shipped(session: boto3.Session, bucket: str, key: str,
                 version_id: str | None = None) -> list[str]:
    """Read a shipped trail back as lines (GetObject, optionally a given version)."""
    kwargs: dict[str, Any] = {"Bucket": bucket, "Key": key}
    if version_id:
        kwargs["VersionId"] = version_id
    body = session.client("s3").get_object(**kwargs)["Body"].read().decode("utf-8")
    return body.splitlines()


def ship_to_cloudwatch_logs(session: boto3.Session, group: str, stream: str,
                            lines: Sequence[str]) -> int:
    """Send trail lines to a CloudWatch Logs stream (created if missing); returns events sent.

    Wraps CreateLogGroup, CreateLogStream and PutLogEvents (batches of at most 10,000 events):
    https://docs.aws.amazon.com/AmazonCloudWatchLogs/latest/APIReference/API_PutLogEvents.html
    A log group is not tamper-proof by itself; the chain and checkpoints travel inside the lines.
    """
    logs = session.client("logs")
    for create, kwargs in ((logs.create_log_group, {"logGroupName": group}),
                           (logs.create_log_stream, {"logGroupName": group,
                                                     "logStreamName": stream})):
        try:
            create(**kwargs)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "ResourceAlreadyExistsException":
                raise
    stamp = int(clock.now().timestamp() * 1000)
    sent = 0
    batch: list[dict[str, Any]] = []
    size = 0
    for line in lines:
        text = _as_text(line)
        cost = len(text.encode("utf-8")) + 26
        if batch and (len(batch) >= 10_000 or size + cost > 1_000_000):
            logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=batch)
            sent += len(batch)
            batch, size = [], 0
        batch.append({"timestamp": stamp, "message": text})
        size += cost
    if batch:
        logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=batch)
        sent += len(batch)
    return sent
