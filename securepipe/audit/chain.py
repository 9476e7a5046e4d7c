"""A tamper-evident audit trail: hash-chained JSON lines, checkpoints signed with a KMS key.

A plain log file can be edited after the fact. Here every line carries ``seq`` (its position)
and ``prev``, the SHA-256 of the previous line's bytes, so removing, inserting, reordering or
editing a line breaks the chain where it happened. Hashes alone can be recomputed by whoever
edits the file, so the header, every ``checkpoint_every`` records, and the final *seal* written
at close carry an ECDSA P-256 signature made by KMS ``Sign`` with an asymmetric key
(``SIGN_VERIFY``) over the line, and so over ``prev``, the chain head. Only a principal allowed
``kms:Sign`` on that key can write a checkpoint; a verifier needs only the public key
(:class:`securepipe.encryption.signing.PublicKeyVerifier`, fetched once with
``kms:GetPublicKey`` or pinned as PEM) and holds nothing that could sign. The seal's record count
makes truncation visible, and the header names ``previous``, the head digest of the trail
shipped before it, so trails chain into one history (:mod:`securepipe.audit.ledger` ships them
with signed daily digest indexes, as CloudTrail's log file integrity validation does).

Every signed message starts with a domain tag (:data:`SIGNED_LINE_TAG`), so a signature the same
key made for something else (a digest index, an erasure receipt) is never taken for a line's.

:func:`verify_trail` reports OK, or the *first* line that breaks, with its index and a reason:
any single-line edit, deletion, insertion, reordering, and any truncation is detected and
located. (A forger who rewrites many lines is detected too, at the first checkpoint whose
signature no longer matches; which of the lines before it changed cannot then be told.)

Format 1 (HMAC-SHA256 checkpoints under a KMS data key) is still *verified*, read-only: its
result says :data:`SCHEME_HMAC`, because whoever may decrypt that data key to verify can also
forge a trail. No new format-1 trail is written.

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
from collections.abc import Callable, Iterable, Mapping, Sequence
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
from securepipe.encryption.signing import (
    KmsSigner,
    PublicKeyVerifier,
    signature_from_text,
    signature_to_text,
)
from securepipe.errors import InvalidParameterError, SecurePipeError, SignatureError

#: The format new trails are written in (signed checkpoints); format 1 (HMAC) is read-only.
TRAIL_FORMAT = 2
LEGACY_HMAC_FORMAT = 1
DEFAULT_CHECKPOINT_EVERY = 100
#: ``previous`` of the first trail in a history, and ``prev`` of every header.
GENESIS = "0" * 64
_ZERO = GENESIS
#: The verification scheme a result reports: signatures checked with a public key...
SCHEME_SIGNED = "ecdsa-p256 signature (verifier cannot forge)"
#: ...or the legacy format-1 HMAC, which anyone able to verify could also have written.
SCHEME_HMAC = "hmac (verifier can forge)"
#: Prefix of every message a trail line's signature covers (domain separation).
SIGNED_LINE_TAG = b"securepipe:audit-trail-line:v2\n"
_V1_HEADER_KEYS = frozenset({"type", "trail", "seq", "prev", "version", "created", "key_arn",
                             "data_key", "context", "checkpoint_every", "mac"})
_V2_HEADER_KEYS = frozenset({"type", "trail", "seq", "prev", "version", "created", "key_arn",
                             "checkpoint_every", "previous", "sig"})
_RECORD_KEYS = frozenset({"type", "trail", "seq", "prev", "record"})
_V1_CHECKPOINT_KEYS = frozenset({"type", "trail", "seq", "prev", "records", "final", "time",
                                 "mac"})
_V2_CHECKPOINT_KEYS = frozenset({"type", "trail", "seq", "prev", "records", "final", "time",
                                 "sig"})


def encryption_context(trail: str) -> dict[str, str]:
    """The KMS encryption context that bound a format-1 trail's HMAC data key to its name."""
    return {"securepipe:trail": trail, "securepipe:use": "audit-trail-hmac"}


def _mac(key: bytes, body: Mapping[str, Any]) -> str:
    unsigned = {k: v for k, v in body.items() if k != "mac"}
    return hmac.new(key, canonical_json(unsigned).encode("ascii"), hashlib.sha256).hexdigest()


def signed_message(body: Mapping[str, Any]) -> bytes:
    """The bytes a line's ``sig`` covers: the domain tag and the line's canonical JSON without
    ``sig``."""
    unsigned = {k: v for k, v in body.items() if k != "sig"}
    return SIGNED_LINE_TAG + canonical_json(unsigned).encode("ascii")


def _hash(line: str) -> str:
    return hashlib.sha256(line.encode("utf-8", "surrogatepass")).hexdigest()


def line_digest(line: str | bytes) -> str:
    """SHA-256 (hex) of one trail line, as the next line's ``prev`` (and a trail's head) names
    it."""
    return _hash(_as_text(line))


def _is_digest(value: object) -> bool:
    return (isinstance(value, str) and len(value) == 64
            and all(c in "0123456789abcdef" for c in value))


class AuditTrail:
    """Writer for one hash-chained trail (JSON lines) with KMS-signed checkpoints.

    Creating one signs its header (one KMS ``Sign`` call); so does every checkpoint and the
    seal: https://docs.aws.amazon.com/kms/latest/APIReference/API_Sign.html

    :param session: boto3 session allowed ``kms:Sign`` on ``key_arn`` (the writer's role only).
    :param key_arn: the asymmetric ``SIGN_VERIFY`` key (``ECC_NIST_P256``); never the data key.
    :param name: the trail's name (goes into every line).
    :param previous: the head digest of the trail shipped before this one
        (:attr:`VerifyResult.head`), or :data:`GENESIS` for the first trail of a history.
    :param checkpoint_every: records between two signed checkpoints.
    :param sink: optional text stream each line is written to as it is made (plus ``\\n``).
    """

    def __init__(self, session: boto3.Session, key_arn: str, name: str, *,
                 previous: str = GENESIS,
                 checkpoint_every: int = DEFAULT_CHECKPOINT_EVERY,
                 sink: TextIO | None = None) -> None:
        if not isinstance(name, str) or not name or len(name) > 256:
            raise InvalidParameterError(f"invalid trail name {name!r}")
        if not isinstance(checkpoint_every, int) or not 1 <= checkpoint_every <= 1_000_000:
            raise InvalidParameterError("checkpoint_every must be an int in [1, 1000000]")
        if not _is_digest(previous):
            raise InvalidParameterError("previous must be a SHA-256 hex digest (or GENESIS)")
        self.name = name
        self.key_arn = key_arn
        self.previous = previous
        self.checkpoint_every = checkpoint_every
        self._signer: KmsSigner | None = KmsSigner(session, key_arn)
        self._sink = sink
        self._lock = threading.Lock()
        self._lines: list[str] = []
        self._records = 0
        self._since_checkpoint = 0
        self._emit_signed({
            "type": "header", "trail": name, "seq": 0, "prev": _ZERO, "version": TRAIL_FORMAT,
            "created": utc_iso(clock.now()), "key_arn": key_arn,
            "checkpoint_every": checkpoint_every, "previous": previous,
        })

    @property
    def closed(self) -> bool:
        return self._signer is None

    @property
    def lines(self) -> list[str]:
        """Every line so far (header, records, checkpoints), without newlines."""
        with self._lock:
            return list(self._lines)

    @property
    def records(self) -> int:
        """How many records were chained so far."""
        with self._lock:
            return self._records

    @property
    def head(self) -> str:
        """SHA-256 of the last line so far; once closed, the digest the next trail names."""
        with self._lock:
            return _hash(self._lines[-1])

    def append(self, record: AuditRecord | Mapping[str, Any]) -> str:
        """Chain one audit record (an :class:`AuditRecord` or a dict of JSON values)."""
        raw = record.as_extra() if isinstance(record, AuditRecord) else dict(record)
        # The same validation and redaction as the JSON formatter: unknown or secret-looking
        # fields are dropped, datetimes become ISO-8601 UTC, nothing raw reaches the trail.
        body, dropped = validate_fields(raw)
        if dropped:
            body["dropped_fields"] = dropped
        return self.append_fields(body)

    def append_fields(self, body: Mapping[str, Any]) -> str:
        """Chain a record body that has already been validated (by the JSON formatter)."""
        with self._lock:
            if self._signer is None:
                raise SecurePipeError(f"trail {self.name!r} is closed")
            line = self._emit({"type": "record", "trail": self.name, "seq": len(self._lines),
                               "prev": _hash(self._lines[-1]), "record": dict(body)})
            self._records += 1
            self._since_checkpoint += 1
            if self._since_checkpoint >= self.checkpoint_every:
                self._checkpoint(final=False)
            return line

    def close(self) -> list[str]:
        """Write the signed seal (final checkpoint) and return every line."""
        with self._lock:
            if self._signer is not None:
                self._checkpoint(final=True)
                self._signer = None
            return list(self._lines)

    def __enter__(self) -> AuditTrail:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _checkpoint(self, *, final: bool) -> None:
        self._emit_signed({"type": "checkpoint", "trail": self.name, "seq": len(self._lines),
                           "prev": _hash(self._lines[-1]), "records": self._records,
                           "final": final, "time": utc_iso(clock.now())})
        self._since_checkpoint = 0

    def _emit_signed(self, body: dict[str, Any]) -> str:
        assert self._signer is not None
        sig = self._signer.sign(signed_message(body))
        return self._emit({**body, "sig": signature_to_text(sig)})

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
            self.trail.append_fields(formatter.audit_fields(record))
        except Exception:
            self.handleError(record)


# -- verification ------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyResult:
    """Outcome of :func:`verify_trail`: ``ok``, or the index of the first line that breaks.

    ``scheme`` says what an OK means: :data:`SCHEME_SIGNED`, or :data:`SCHEME_HMAC` for a
    legacy format-1 trail (which its verifier could have forged). ``head`` is the SHA-256 of
    the last line and ``previous`` the digest the header names (format 2 only).
    """

    ok: bool
    index: int | None
    reason: str
    records: int
    checkpoints: int
    trail: str | None = None
    scheme: str = SCHEME_SIGNED
    head: str | None = None
    previous: str | None = None

    def __bool__(self) -> bool:
        return self.ok

    @property
    def weaker(self) -> bool:
        """True for a legacy HMAC trail: it verifies, but whoever verifies it could forge it."""
        return self.scheme == SCHEME_HMAC


@dataclass
class _Line:
    text: str
    obj: dict[str, Any] | None
    problem: str | None


def _parse(text: str, header_keys: frozenset[str], checkpoint_keys: frozenset[str],
           seal: str) -> _Line:
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):  # RecursionError: hostile nesting depth
        return _Line(text, None, "not valid JSON")
    if not isinstance(obj, dict):
        return _Line(text, None, "not a JSON object")
    kind = obj.get("type")
    keys = {"header": header_keys, "record": _RECORD_KEYS, "checkpoint": checkpoint_keys}.get(
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
                                 or not isinstance(obj[seal], str)):
        return _Line(text, None, "checkpoint line with malformed fields")
    if kind == "record":
        # A record line is covered byte for byte by the next line's prev: any re-writing breaks
        # the chain there, so the (costly) canonical-form check is kept for signed lines.
        return _Line(text, obj, None)
    try:
        canonical = canonical_json(obj)
    except (ValueError, RecursionError):
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


def _signature_ok(verifier: PublicKeyVerifier, obj: Mapping[str, Any]) -> bool:
    sig = obj.get("sig")
    if not isinstance(sig, str):
        return False
    try:
        verifier.verify(signed_message(obj), signature_from_text(sig))
    except SignatureError:
        return False
    return True


def _header_version(text: str) -> object:
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        return None
    return obj.get("version") if isinstance(obj, dict) else None


def verify_trail(
    lines: Iterable[str | bytes], verifier: PublicKeyVerifier | boto3.Session, *,
    name: str | None = None, key_arn: str | None = None, session: boto3.Session | None = None,
) -> VerifyResult:
    """Check a trail line by line; report OK or the first line that breaks and why.

    A format-2 trail is checked offline with ``verifier``'s public key (no KMS call at all);
    pass a :class:`~securepipe.encryption.signing.PublicKeyVerifier` pinned to the signing key
    ARN, or a boto3 session plus ``key_arn`` to fetch it once with ``kms:GetPublicKey``
    (https://docs.aws.amazon.com/kms/latest/APIReference/API_GetPublicKey.html). A header
    naming another key than the pinned one is refused.

    A legacy format-1 trail needs a session (``session=`` or ``verifier``) to KMS ``Decrypt``
    its HMAC data key, and its result says :data:`SCHEME_HMAC`.

    :param name: expected trail name (a whole trail swapped for another one is refused).
    :param key_arn: expected KMS key; pin it, or a forger could write a whole new trail under a
        key of their own.
    :returns: a :class:`VerifyResult`; ``index`` is the 0-based line index. A truncated trail
        reports ``index == len(lines)``: the position where the seal is missing.
    """
    texts = [_as_text(line) for line in lines]
    if not texts:
        return VerifyResult(False, 0, "empty trail: the header is missing", 0, 0)
    version = _header_version(texts[0])
    if isinstance(verifier, PublicKeyVerifier):
        pinned: PublicKeyVerifier | None = verifier
        if key_arn is not None and key_arn != verifier.key_arn:
            raise InvalidParameterError("key_arn differs from the verifier's pinned key")
        key_arn = verifier.key_arn
    elif hasattr(verifier, "client"):
        pinned, session = None, verifier
    else:
        raise InvalidParameterError("verifier must be a PublicKeyVerifier or a boto3.Session")
    if version == LEGACY_HMAC_FORMAT:
        if session is None:
            return VerifyResult(False, 0, "a format-1 (HMAC) trail needs a session with "
                                "kms:Decrypt to verify (and whoever can, could forge it)", 0, 0,
                                scheme=SCHEME_HMAC)
        return _verify_v1(texts, session, name=name, key_arn=key_arn)
    if pinned is None:
        if key_arn is None:
            return VerifyResult(False, 0, "no signing key pinned: pass key_arn (or a "
                                "PublicKeyVerifier), or anyone's key would do", 0, 0)
        assert session is not None
        try:
            pinned = PublicKeyVerifier.from_kms(session, key_arn)
        except (ClientError, SignatureError, InvalidParameterError) as exc:
            return VerifyResult(False, 0, f"the pinned key's public key could not be fetched "
                                f"({_short(exc)})", 0, 0)
    return _verify_v2(texts, pinned, name=name)


def _verify_v2(texts: list[str], verifier: PublicKeyVerifier, *, name: str | None
               ) -> VerifyResult:
    parsed = [_parse(t, _V2_HEADER_KEYS, _V2_CHECKPOINT_KEYS, "sig") for t in texts]
    head = parsed[0]
    if head.obj is None:
        return VerifyResult(False, 0, f"header: {head.problem}", 0, 0)
    obj = head.obj
    if obj["type"] != "header":
        return VerifyResult(False, 0, "the first line is not the trail header", 0, 0)
    trail = obj["trail"]
    if name is not None and trail != name:
        return VerifyResult(False, 0, f"header names trail {trail!r}, expected {name!r}", 0, 0,
                            trail)
    if obj["key_arn"] != verifier.key_arn:
        return VerifyResult(False, 0, "header names another signing key than the pinned one",
                            0, 0, trail)
    if obj["seq"] != 0 or obj["prev"] != _ZERO or obj["version"] != TRAIL_FORMAT:
        return VerifyResult(False, 0, "header has a wrong seq, prev or format version", 0, 0,
                            trail)
    every = obj["checkpoint_every"]
    if not isinstance(every, int) or isinstance(every, bool) or every < 1:
        return VerifyResult(False, 0, "header has a malformed checkpoint interval", 0, 0, trail)
    if not _is_digest(obj["previous"]):
        return VerifyResult(False, 0, "header has a malformed previous-trail digest", 0, 0,
                            trail)
    if not _signature_ok(verifier, obj):
        return VerifyResult(False, 0, "header signature does not verify with the pinned key "
                            "(the header was edited, or signed by another key)", 0, 0, trail)
    result = _walk(texts, parsed, trail, every, lambda o: _signature_ok(verifier, o),
                   "checkpoint signature does not verify (forged, edited, or another key's)")
    return VerifyResult(result.ok, result.index, result.reason, result.records,
                        result.checkpoints, trail, SCHEME_SIGNED,
                        _hash(texts[-1]) if result.ok else None, obj["previous"])


def _verify_v1(texts: list[str], session: boto3.Session, *, name: str | None,
               key_arn: str | None) -> VerifyResult:
    """Format 1: HMAC checkpoints under a KMS data key (KMS Decrypt once, read-only)."""
    parsed = [_parse(t, _V1_HEADER_KEYS, _V1_CHECKPOINT_KEYS, "mac") for t in texts]
    head = parsed[0]

    def fail(reason: str) -> VerifyResult:
        trail = head.obj["trail"] if head.obj else None
        return VerifyResult(False, 0, reason, 0, 0, trail, SCHEME_HMAC)

    if head.obj is None:
        return fail(f"header: {head.problem}")
    obj = head.obj
    if obj["type"] != "header":
        return fail("the first line is not the trail header")
    trail = obj["trail"]
    if name is not None and trail != name:
        return fail(f"header names trail {trail!r}, expected {name!r}")
    if key_arn is not None and obj["key_arn"] != key_arn:
        return fail("header names another KMS key than the expected one")
    if obj["seq"] != 0 or obj["prev"] != _ZERO or obj["version"] != LEGACY_HMAC_FORMAT:
        return fail("header has a wrong seq, prev or format version")
    if obj["context"] != encryption_context(trail):
        return fail("header's encryption context does not name this trail")
    every = obj["checkpoint_every"]
    if not isinstance(every, int) or every < 1:
        return fail("header has a malformed checkpoint interval")
    try:
        blob = base64.b64decode(obj["data_key"], validate=True)
        key = session.client("kms").decrypt(
            CiphertextBlob=blob, KeyId=obj["key_arn"],
            EncryptionContext=encryption_context(trail))["Plaintext"]
    except (ClientError, ValueError, TypeError) as exc:
        return fail(f"header: the data key could not be decrypted ({_short(exc)})")
    if not hmac.compare_digest(_mac(key, obj), str(obj["mac"])):
        return fail("header MAC does not verify (the header was edited)")
    result = _walk(texts, parsed, trail, every,
                   lambda o: hmac.compare_digest(_mac(key, o), o["mac"]),
                   "checkpoint MAC does not verify (forged or edited checkpoint)")
    return VerifyResult(result.ok, result.index, result.reason, result.records,
                        result.checkpoints, trail, SCHEME_HMAC,
                        _hash(texts[-1]) if result.ok else None)


def _walk(texts: list[str], parsed: list[_Line], trail: str, every: int,
          genuine: Callable[[dict[str, Any]], bool], forged: str) -> VerifyResult:
    """The chain walk shared by both formats: seq, prev, checkpoint counts and the seal."""
    n = len(texts)
    hashes = [_hash(t) for t in texts]

    def fail(index: int, reason: str, records: int, checkpoints: int) -> VerifyResult:
        return VerifyResult(False, index, reason, records, checkpoints, trail)

    def genuine_checkpoint(i: int) -> bool:
        if not 0 < i < n:
            return False
        obj = parsed[i].obj
        return (obj is not None and obj["type"] == "checkpoint" and obj["trail"] == trail
                and genuine(obj))

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
            return fail(k, "line after the seal (appended after close)", records, checkpoints)
        if line.obj is None:
            return fail(k, str(line.problem), records, checkpoints)
        obj = line.obj
        if obj["type"] == "header":
            return fail(k, "a second header inside the trail", records, checkpoints)
        if obj["trail"] != trail:
            return fail(k, f"line belongs to trail {obj['trail']!r}", records, checkpoints)
        if obj["type"] == "checkpoint" and not genuine_checkpoint(k):
            return fail(k, forged, records, checkpoints)
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
        return fail(n, "no seal: the trail was truncated (or never closed)", records,
                    checkpoints)
    return VerifyResult(True, None, "ok", records, checkpoints, trail)


def _short(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        return f"{err.get('Code', 'error')}: {err.get('Message', '')}".rstrip(": ")
    return str(exc) or type(exc).__name__


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
