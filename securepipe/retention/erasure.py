"""Step 5: erase one speaker everywhere, with a receipt, and shred their key.

GDPR Art. 17 asks for erasure without undue delay when consent is withdrawn; BIPA asks for
destruction, and both ask you to be able to show it happened. :func:`erase_speaker`:

1. checks the speaker id (before any AWS call) and finds the speaker's consent record (an
   unknown speaker is a typed :class:`~securepipe.errors.UnknownSpeakerError`, nothing changed);
2. marks the erasure under way (status ``erasing``: no new key material, nothing new encrypted);
3. finds every version and delete marker in every given bucket that belongs to the speaker
   (raw uploads, quarantined uploads, features, archive copies; attributed as in
   :mod:`securepipe.retention.lifecycle`, and here a version goes if *any* source names the
   speaker),
   hashes each ciphertext, deletes it by version id, and journals it in the registry;
4. re-lists the buckets to verify that nothing of the speaker is left but what a hold keeps;
5. shreds the speaker's key (:mod:`securepipe.retention.shredding`), so every copy of their
ciphertext
   outside the buckets becomes undecryptable too;
6. returns an :class:`ErasureReceipt` and writes audit records (``securepipe.audit.records``
logger).

**Legal hold and Object Lock.** Versions under an Object Lock legal hold or an unexpired
retention period are *not* deleted (S3 would refuse; the kit never asks it to bypass governance
retention) and the receipt names each with its reason. The speaker's key is then *kept*, and
the status becomes ``erasure-held``: a hold exists to preserve data for legal claims (GDPR
Art. 17(3)(e)) or a legal obligation (Art. 17(3)(b)), and shredding the key would destroy the
held copy as surely as deleting it. Everything not held is deleted at once. Once the hold is
released, run :func:`erase_speaker` again: it deletes the rest and shreds the key. (The cost,
stated plainly: until then, a stolen copy of one of the speaker's deleted features would still
decrypt for whoever also holds ``kms:Decrypt`` on the customer key.)

**Idempotent and crash-safe.** Every deleted version is journaled in the speaker's registry
item as it goes, so a re-run after a crash (``after_step`` injects one in tests) finishes the
work, touches no other speaker, and returns a receipt that lists everything from both runs.
Erasing an erased speaker changes nothing and says so (it still removes any straggler that
appeared since, such as a late ingest). A crash between a version's delete and its journal entry
loses that one receipt line, never the deletion.

Scale note: each erasure lists every version of the given buckets (HEAD per version). At
millions of objects, drive it from an S3 Inventory report instead of live listings.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from securepipe import clock as _clock
from securepipe.errors import ErasureError, InvalidParameterError
from securepipe.ids import validate_bucket_name, validate_speaker_id
from securepipe.retention.consent import ConsentRegistry
from securepipe.retention.shredding import ShredEvidence, shred_speaker_key
from securepipe.retention.sweeper import AttributedVersion, attributed_versions, short_bucket

__all__ = [
    "DeletedVersion",
    "ErasureReceipt",
    "KeptVersion",
    "erase_speaker",
]

AUDIT = logging.getLogger("securepipe.audit.records")
_CHUNK = 1 << 20

Status = Literal["erased", "already-erased", "held"]


@dataclass(frozen=True)
class DeletedVersion:
    """One deleted object version (or delete marker) and the digest of what was deleted.

    ``sha256_source``: ``computed`` (hashed from the bytes read just before the delete),
    ``s3-checksum`` (S3's stored SHA-256, for objects in an archival class that cannot be read
    without a restore), ``object-metadata`` (the digest ingest wrote; a claim, not a
    measurement), or ``none`` (delete markers have no content).
    """

    bucket: str
    key: str
    version_id: str
    kind: str
    sha256: str | None
    sha256_source: str
    bytes: int | None
    attribution: str


@dataclass(frozen=True)
class KeptVersion:
    """One version of the speaker that was not deleted, and why."""

    bucket: str
    key: str
    version_id: str
    kind: str
    reason: str


@dataclass(frozen=True)
class ErasureReceipt:
    """Evidence of one speaker's erasure.

    ``status``: ``erased`` (every version gone, key shredded), ``already-erased`` (nothing to do
    but stragglers, listed in ``deleted``), or ``held`` (everything deletable is gone; ``kept``
    lists what a hold keeps, and the key was kept: ``key_kept_reason``). ``remaining_after`` is
    a fresh listing after the deletes: the speaker's versions still in the buckets (must equal
    ``len(kept)``).
    """

    speaker: str
    when: dt.datetime
    status: Status
    buckets: tuple[str, ...]
    deleted: tuple[DeletedVersion, ...]
    kept: tuple[KeptVersion, ...]
    shredding: ShredEvidence | None
    key_kept_reason: str | None
    remaining_after: int
    resumed: bool

    @property
    def complete(self) -> bool:
        """True when nothing of the speaker is left in the buckets and the key is gone."""
        return self.status in ("erased", "already-erased") and not self.kept

    def rows(self) -> list[dict[str, Any]]:
        """One row per deleted or kept version, for
        :func:`securepipe.report.format_table`."""
        rows = [{"outcome": "deleted", "bucket": short_bucket(d.bucket), "key": d.key,
                 "version": d.version_id[:12], "kind": d.kind,
                 "sha256": (d.sha256 or "")[:16], "digest from": d.sha256_source}
                for d in self.deleted]
        rows += [{"outcome": "KEPT: " + k.reason, "bucket": short_bucket(k.bucket), "key": k.key,
                  "version": k.version_id[:12], "kind": k.kind, "sha256": "",
                  "digest from": ""} for k in self.kept]
        return rows

    def summary(self) -> dict[str, Any]:
        shred = self.shredding
        return {
            "speaker": self.speaker, "status": self.status,
            "when": self.when.isoformat(timespec="seconds"),
            "deleted": len(self.deleted), "kept": len(self.kept),
            "remaining_after": self.remaining_after,
            "key shredded": bool(shred and shred.shredded), "resumed": self.resumed,
        }

    def as_dict(self) -> dict[str, Any]:
        """The whole receipt as JSON-ready data."""
        return {
            **self.summary(), "buckets": list(self.buckets),
            "deleted": [asdict(d) for d in self.deleted],
            "kept": [asdict(k) for k in self.kept],
            "shredding": None if self.shredding is None else self.shredding.as_dict(),
            "key_kept_reason": self.key_kept_reason,
        }


def _aware(clock: Callable[[], dt.datetime]) -> dt.datetime:
    moment = clock()
    if not isinstance(moment, dt.datetime) or moment.tzinfo is None:
        raise InvalidParameterError("clock must return a timezone-aware datetime")
    return moment


def _digest(s3: Any, v: AttributedVersion) -> tuple[str | None, str]:
    """SHA-256 (hex) of a version's stored bytes, and where it came from."""
    if v.kind == "delete-marker":
        return None, "none"
    try:
        body = s3.get_object(Bucket=v.bucket, Key=v.key, VersionId=v.version_id)["Body"]
        digest = hashlib.sha256()
        try:
            for chunk in body.iter_chunks(_CHUNK):
                digest.update(chunk)
        finally:
            body.close()
        return digest.hexdigest(), "computed"
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "InvalidObjectState":
            raise
    # An archival class cannot be read without a restore (hours, and billed): use S3's own
    # SHA-256 checksum, stored at upload (HeadObject with ChecksumMode needs kms:Decrypt for
    # SSE-KMS objects on AWS, so only the erasure asks for it).
    head = s3.head_object(Bucket=v.bucket, Key=v.key, VersionId=v.version_id,
                          ChecksumMode="ENABLED")
    if head.get("ChecksumSHA256"):
        return base64.b64decode(head["ChecksumSHA256"]).hex(), "s3-checksum"
    if v.metadata_sha256:
        return v.metadata_sha256, "object-metadata"
    return None, "unavailable"


def _scan(session: boto3.Session, buckets: Sequence[str], speaker: str,
          sample_speakers: Mapping[str, str] | None) -> list[AttributedVersion]:
    return [v for bucket in buckets for v in attributed_versions(session, bucket, sample_speakers)
            if speaker in v.candidates]


def erase_speaker(
    session: boto3.Session,
    *,
    speaker: str,
    registry: ConsentRegistry,
    buckets: Sequence[str],
    sample_speakers: Mapping[str, str] | None = None,
    clock: Callable[[], dt.datetime] | None = None,
    after_step: Callable[[str, str], None] | None = None,
) -> ErasureReceipt:
    """Erase every object version of ``speaker`` in ``buckets`` and shred their key.

    ``sample_speakers`` maps sample ids to speakers
    (:func:`securepipe.retention.lifecycle.sample_speakers`)
    for objects without speaker metadata (raw and quarantined uploads). ``clock`` (default
    :func:`securepipe.clock.now`) dates the receipt and the registry. ``after_step(step,
    detail)`` is called after each version delete (``"delete"``) and after shredding
    (``"shred"``); tests use it to inject crashes.

    Wraps ListObjectVersions, HeadObject, GetObject and DeleteObject with ``VersionId``
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/DeletingObjectVersions.html), and
    DynamoDB UpdateItem for the journal and the shredding. Raises
    :class:`~securepipe.errors.InvalidParameterError` for a malformed speaker id or bucket name
    (before any AWS call), :class:`~securepipe.errors.UnknownSpeakerError` for a speaker the
    registry does not know (nothing changed), and :class:`~securepipe.errors.ErasureError` when
    S3 or DynamoDB fails part-way (re-run to resume).
    """
    validate_speaker_id(speaker)
    if isinstance(buckets, str) or not isinstance(buckets, Sequence) or not buckets:
        raise InvalidParameterError("buckets must be a non-empty list of bucket names")
    buckets = tuple(validate_bucket_name(b) for b in buckets)
    if not isinstance(registry, ConsentRegistry):
        raise InvalidParameterError("registry must be a ConsentRegistry")
    if clock is not None and not callable(clock):
        raise InvalidParameterError("clock must be a callable returning an aware datetime")
    tick = clock or _clock.now
    done = after_step or (lambda step, detail: None)
    start = _aware(tick)

    record = registry.get(speaker)            # UnknownSpeakerError: nothing has changed
    already = record.status == "erased"
    resumed = record.status in ("erasing", "erasure-held")
    try:
        if not already:
            registry.begin_erasure(speaker, start)
        s3 = session.client("s3")
        deleted_now: list[DeletedVersion] = []
        kept: list[KeptVersion] = []
        for v in _scan(session, buckets, speaker, sample_speakers):
            lock = v.lock_reason(start)
            if lock:
                kept.append(KeptVersion(v.bucket, v.key, v.version_id, v.kind, lock))
                _audit("erasure.kept", v, "denied", start, speaker, lock)
                continue
            sha, source = _digest(s3, v)
            try:
                s3.delete_object(Bucket=v.bucket, Key=v.key, VersionId=v.version_id)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                if code not in ("AccessDenied", "InvalidRequest"):
                    raise
                reason = f"refused by S3 ({code}): Object Lock or a policy"
                kept.append(KeptVersion(v.bucket, v.key, v.version_id, v.kind, reason))
                _audit("erasure.kept", v, "denied", start, speaker, reason)
                continue
            entry = DeletedVersion(
                v.bucket, v.key, v.version_id, v.kind, sha, source, v.size,
                v.source if v.conflict is None else f"conflict: {v.conflict}")
            deleted_now.append(entry)
            if not already:
                registry.append_journal(speaker, asdict(entry))
            _audit("erasure.delete-version", v, "allowed", start, speaker)
            done("delete", f"{v.bucket}/{v.key}?versionId={v.version_id}")

        remaining = _scan(session, buckets, speaker, sample_speakers)
        kept_ids = {(k.bucket, k.key, k.version_id) for k in kept}
        unexplained = [v for v in remaining if (v.bucket, v.key, v.version_id) not in kept_ids]
        if unexplained:
            raise ErasureError(
                f"{len(unexplained)} version(s) of {speaker!r} appeared during the erasure "
                "(is ingest still running for them?); nothing was shredded, re-run to finish")

        shredding: ShredEvidence | None = None
        key_kept: str | None = None
        when = _aware(tick)
        if already:
            status: Status = "already-erased"
            when = record.erased_at or when
        elif kept:
            status = "held"
            key_kept = (
                f"{len(kept)} version(s) are under an S3 Object Lock legal hold or retention "
                "(GDPR Art. 17(3)(b)/(e): a legal obligation or legal claims). They must stay "
                "readable, so the speaker key is kept; everything else was deleted. Re-run "
                "erase_speaker once the hold is released: it deletes the rest and shreds the key.")
            registry.hold_erasure(speaker, key_kept)
        else:
            status = "erased"
            shredding = shred_speaker_key(registry, speaker, when=when)
            done("shred", speaker)
        deleted = tuple(deleted_now) if already else _journal(registry, speaker)
    except (ClientError, BotoCoreError) as exc:
        code = exc.response.get("Error", {}).get("Code") if isinstance(exc, ClientError) else None
        raise ErasureError(f"erasure of {speaker!r} stopped ({code or type(exc).__name__}); "
                           "what was deleted is journaled, re-run to finish") from exc

    receipt = ErasureReceipt(
        speaker=speaker, when=when, status=status, buckets=buckets, deleted=deleted,
        kept=tuple(kept), shredding=shredding, key_kept_reason=key_kept,
        remaining_after=len(remaining), resumed=resumed)
    summary = " ".join(f"{k}={v}" for k, v in receipt.summary().items() if k != "speaker")
    AUDIT.info(f"erasure of {speaker}: {summary}",
               extra={"principal": "securepipe-erasure", "action": f"erasure.{status}",
                      "outcome": "allowed", "purpose": "erasure", "when": when,
                      "speaker": speaker, "reason": key_kept})
    return receipt


def _journal(registry: ConsentRegistry, speaker: str) -> tuple[DeletedVersion, ...]:
    """The journal, in order, without duplicates (a version deleted once is listed once)."""
    seen: set[tuple[str, str, str]] = set()
    out: list[DeletedVersion] = []
    for item in registry.journal(speaker):
        ident = (str(item["bucket"]), str(item["key"]), str(item["version_id"]))
        if ident in seen:
            continue
        seen.add(ident)
        out.append(DeletedVersion(
            bucket=ident[0], key=ident[1], version_id=ident[2], kind=str(item["kind"]),
            sha256=item.get("sha256"), sha256_source=str(item.get("sha256_source", "none")),
            bytes=None if item.get("bytes") is None else int(item["bytes"]),
            attribution=str(item.get("attribution", ""))))
    return tuple(out)


def _audit(action: str, v: AttributedVersion, outcome: str, at: dt.datetime,
           speaker: str, reason: str | None = None) -> None:
    AUDIT.info(action, extra={"principal": "securepipe-erasure", "action": action,
                              "bucket": v.bucket, "key": v.key, "version_id": v.version_id,
                              "outcome": outcome, "purpose": "erasure", "when": at,
                              "bytes": v.size, "speaker": speaker, "reason": reason})
