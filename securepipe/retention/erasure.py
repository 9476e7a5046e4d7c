"""Step 5: erase one speaker everywhere, with a receipt, and shred their key.

GDPR Art. 17 asks for erasure without undue delay when consent is withdrawn; BIPA asks for
destruction, and both ask you to be able to show it happened. :func:`erase_speaker`:

1. checks the speaker id (before any AWS call) and finds the speaker's consent record (an
   unknown speaker is a typed :class:`~securepipe.errors.UnknownSpeakerError`, nothing changed);
2. marks the erasure under way (status ``erasing``: no new key material, nothing new encrypted);
3. finds every version and delete marker in every given bucket that belongs to the speaker
   (raw uploads, quarantined uploads, features, archive copies, exports), attributed with no
   caller-supplied mapping: by the speaker the kit wrote into each object's metadata, and by
   the registry's index of the speaker's samples, keyed by contractor and sample id (sample ids
   are unique only per contractor). A version goes only if every source that names a speaker
   names this one: when sources disagree (the metadata names another speaker, or two speakers
   claim the sample) it is reported ``unattributed`` and never deleted. Each version that goes
   is hashed, deleted by version id, and journaled in the registry (each journal entry signed
   and chained, see below);
4. lists unfinished multipart uploads and aborts the speaker's (and any older than the ingest
   window): their parts could otherwise still be completed into the original recording;
5. reports every version and upload it cannot attribute to anyone (``unattributed``: it may be
   the speaker's), and the receipt is then not ``complete``;
6. re-lists the buckets to verify that nothing of the speaker is left but what a hold keeps;
7. shreds the speaker's key (:mod:`securepipe.retention.shredding`), so every copy of their
   ciphertext outside the buckets becomes undecryptable too;
8. returns an :class:`ErasureReceipt` **signed with an asymmetric KMS key**
   (:class:`~securepipe.encryption.signing.KmsSigner`; anyone with the public key verifies it
   offline, :func:`verify_receipt`), and writes audit records (``securepipe.audit.records``).

**Honest about backups.** Shredding removes the only live copy of the wrapped key, but a
registry backup can restore it: the status is ``erased-pending-backup-expiry`` (and the receipt
not ``complete``) until the longest backup retention of the registry table has passed
(``backups_clear_at``; ``None`` while an on-demand backup exists, which never expires by itself).

**Authenticated journal.** Each journal entry is signed with the same KMS key and names the
speaker, its sequence number and the digest of the entry before it; each is its own registry
item (``journal#<speaker>#<seq>``, written only if that position is free), so a journal of any
length fits DynamoDB's 400 KB item limit. The speaker's item holds the journal's signed *head*
(entry count and digest of the last entry), written when the erasure begins and moved past
each new entry with a conditional UpdateItem (only if it still counts the entries before it).
A resumed erasure verifies the whole chain and the head with the public key before it deletes
anything. An item at a journal position that does not verify as the chain's next entry
(planted there by anyone who can write the registry, a copy of another position's or another
speaker's entry) is *set aside*, never adopted and never a reason to stop: the receipt lists it
(``journal_set_aside``, signed) and the erasure writes its own entries at the next positions
nobody has taken (a taken position is read and skipped), so no planted item can block an
erasure. A set-aside item does not make the receipt incomplete, because it hides nothing:
the receipt's ``deleted`` comes only from verified entries, ``remaining_after`` from a fresh
listing, and destroying a genuine entry (overwriting it) breaks the chain after it, which the
signed head and the anchored heads below then refuse. A journal shortened from the end or
emptied, a head removed while an erasure is under way, or an edited head stops it with
:class:`~securepipe.errors.ErasureError`. An entry past the head (written by a run that stopped
before moving the head, or by a concurrent erasure of the same speaker) is verified and adopted,
and a run whose next position is taken adopts that entry and writes its own after it, so two
erasures of one speaker never lose each other's deletions (the erasure lease below keeps them
from running at once; this is the journal's own defence should they ever overlap). The
receipt's signature covers ``journal_head``.

**Anchored outside the registry (rollback).** A signed head replayed from earlier (someone with
write access to the registry saves a (journal, head) pair and writes it back later, or restores
the item from a backup) verifies like any other. So after the head moves, it is also written to
``anchor_bucket`` (the kit's audit bucket, under S3 Object Lock in COMPLIANCE mode by default:
nobody can overwrite or delete a version there until its retention ends) at
``erasure-journal/<speaker>/<count:08d>-<128 random bits>``: a name nobody can know in advance,
so an object planted ahead of time can neither block an anchor nor pass for one. A resumed
erasure lists every version of those anchors (delete markers do not hide them), counts only
those whose body names the speaker and the count in the name and whose signature verifies, and
refuses, with :class:`~securepipe.errors.JournalRollbackError` and before any delete, a journal
shorter than the longest of them, one whose chain does not pass through that head's digest, or a
journal left without a head while heads are anchored (the speaker's item restored). Anchors
that do not verify are ignored (they could only block, never shorten, a journal). The anchor is
written after the registry, so a crash between the two leaves the anchor one entry behind
(never ahead): a rollback of exactly that last entry is the one not caught. Writing anchors
needs ``s3:PutObject`` on ``erasure-journal/*`` of the audit bucket, which the registry's
writers should not have.

**Recovering from a genuine rollback.** A registry restored from a backup taken mid-erasure
has lost the journal entries written since, for good, so every run is refused. The operator who
knows why runs ``erase_speaker(..., accept_rollback=True)`` once: it anchors a signed record
that the anchored branch past the journal's last surviving entry was abandoned
(``erasure-journal/<speaker>/accept-<count:08d>-<random>``; later runs, with or without the
flag, accept the journal through it), re-lists the buckets, erases what is left as any run
does, and names the rollback in the signed receipt (``journal_rollback``: how many journaled
deletions can no longer be itemised). The receipt can still be ``complete``: what it reports
as left comes from the fresh listing, not from the journal; what the rollback lost is the
itemised evidence of deletions already done, and the receipt says so.

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
The receipt is dated by the erasure's clock, never before the run started (a clock that moves
backwards does not date it in the past).
Erasing an erased speaker changes nothing and says so (it still removes any straggler that
appeared since, such as a late ingest), unless key material is back in their registry item
(e.g. an attribute restored from a backup): it is then shredded again and the status is
``erased`` (or ``erased-pending-backup-expiry``) from that moment. A crash between a
version's delete and its journal entry loses that one receipt line, never the deletion.

**One erasure of a speaker at a time.** Two runs deleting at once would each sign a receipt
listing what was journaled when it signed, so a deletion the other had made but not yet
journaled could be missing from a receipt that still says ``complete``. So a run first takes
the speaker's *erasure lease*: one conditional UpdateItem of the speaker's item
(``erasure_lease``: a random run id, ``erasure_lease_until``: when it ends, by the erasure's
clock; :meth:`~securepipe.retention.consent.ConsentRegistry.take_erasure_lease`), allowed only
if no lease is held, the held one has ended, or it is the run's own. A live lease of another
run refuses the run with :class:`~securepipe.errors.ErasureInProgressError` (naming the speaker
and when the lease ends) before it writes or deletes anything. The run renews its lease before
every deletion, conditioned on still holding it, from a clock that never goes backwards (so a
clock moving back never shortens it); a run whose lease lapsed and was taken stops with the
same error before deleting anything more, and a run that no longer holds its lease when it is
done signs no receipt. A run stopped by an error releases its lease; a crashed run's lease
simply ends (``lease_seconds``, 15 minutes by default), and a re-run then resumes from the
journal. The lease is what makes each receipt whole; the shared journal still never loses a
deletion if two runs ever overlap (a clock far off between two machines could let them).

Scale note: each erasure lists every version of the given buckets (HEAD per version). At
millions of objects, drive it from an S3 Inventory report instead of live listings.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import json
import logging
import secrets
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from securepipe import clock as _clock
from securepipe.clients import shared_client
from securepipe.encryption.signing import (
    KmsSigner,
    PublicKeyVerifier,
    signature_from_text,
    signature_to_text,
)
from securepipe.errors import (
    ErasureError,
    ErasureInProgressError,
    InvalidParameterError,
    JournalRollbackError,
    RetentionError,
    SignatureError,
)
from securepipe.ids import validate_bucket_name, validate_speaker_id
from securepipe.retention.consent import (
    ANCHOR_PREFIX,
    JOURNAL_PREFIX,
    MAX_LEASE_SECONDS,
    ConsentRegistry,
)
from securepipe.retention.lifecycle import RAW_EXPIRY_DAYS
from securepipe.retention.shredding import ShredEvidence, shred_speaker_key
from securepipe.retention.sweeper import (
    GONE_CODES,
    AttributedVersion,
    PendingUpload,
    abort_upload,
    attribute_buckets,
    short_bucket,
)

__all__ = [
    "DEFAULT_LEASE_SECONDS",
    "MAX_LEASE_SECONDS",
    "DeletedVersion",
    "ErasureReceipt",
    "KeptVersion",
    "UnattributedVersion",
    "erase_speaker",
    "verify_receipt",
]

AUDIT = logging.getLogger("securepipe.audit.records")
_CHUNK = 1 << 20
#: How long an erasure run's lease on its speaker lasts unless renewed (15 minutes); the run
#: renews it before every deletion, so only a crashed (or stuck) run lets it lapse.
DEFAULT_LEASE_SECONDS = 900

Status = Literal["erased", "erased-pending-backup-expiry", "already-erased", "held"]


@dataclass(frozen=True)
class DeletedVersion:
    """One deleted object version, delete marker, or aborted multipart upload, and the digest
    of what was deleted.

    ``kind``: ``version``, ``delete-marker`` or ``multipart-upload`` (``version_id`` is then
    the upload id). ``sha256_source``: ``computed`` (hashed from the bytes read just before
    the delete), ``s3-checksum`` (S3's stored SHA-256, for objects in an archival class that
    cannot be read without a restore), ``object-metadata`` (the digest ingest wrote; a claim,
    not a measurement), or ``none`` (delete markers and unfinished uploads have no content).
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
class UnattributedVersion:
    """A version (or unfinished upload) nothing attributes to anyone: it may be the speaker's."""

    bucket: str
    key: str
    version_id: str
    kind: str
    reason: str


def _canonical(data: Any) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      default=str).encode()


@dataclass(frozen=True)
class ErasureReceipt:
    """Evidence of one speaker's erasure, signed with an asymmetric KMS key.

    ``status``: ``erased`` (every version gone, key shredded, no backup can restore it),
    ``erased-pending-backup-expiry`` (the same, but a registry backup can still restore the
    key until ``backups_clear_at``; ``None``: until an on-demand backup is deleted),
    ``already-erased`` (the key was already shredded; ``deleted`` lists everything every run
    deleted, from the verified journal, stragglers found now included), or ``held``
    (everything deletable is gone; ``kept`` lists what a hold keeps, and the key was kept:
    ``key_kept_reason``). ``unattributed`` lists what nobody can be shown to own.
    ``remaining_after`` is a fresh listing after the deletes: the speaker's versions and
    unfinished uploads still in the buckets (must equal ``len(kept)``). ``journal_head`` is
    ``<entries>:<last digest>`` of the journal the receipt was built from;
    ``journal_set_aside`` names the journal positions holding an item that did not verify
    (planted or forged: set aside, never adopted); ``journal_rollback`` says what a rollback
    this run accepted lost (``accept_rollback=True``). ``signature`` is an
    ECDSA P-256 signature by ``signing_key_arn`` over :meth:`payload`; check it with
    :meth:`verify` or :func:`verify_receipt`.
    """

    speaker: str
    started: dt.datetime
    when: dt.datetime
    status: Status
    buckets: tuple[str, ...]
    deleted: tuple[DeletedVersion, ...]
    kept: tuple[KeptVersion, ...]
    unattributed: tuple[UnattributedVersion, ...]
    shredding: ShredEvidence | None
    key_kept_reason: str | None
    remaining_after: int
    resumed: bool
    backup_retention_days: int | None
    backups_clear_at: dt.datetime | None
    signing_key_arn: str
    journal_head: str = ""
    journal_set_aside: tuple[str, ...] = ()
    journal_rollback: str | None = None
    signature: bytes = b""

    @property
    def complete(self) -> bool:
        """True when nothing of the speaker is left, nothing is unattributed, the key is gone,
        and no backup can restore it."""
        return (self.status in ("erased", "already-erased") and not self.kept
                and not self.unattributed and self.remaining_after == 0
                and not (self.shredding is not None and self.shredding.registry_has_key_after))

    def rows(self) -> list[dict[str, Any]]:
        """One row per deleted, kept or unattributed version, for
        :func:`securepipe.report.format_table`."""
        rows = [{"outcome": "deleted" if d.kind != "multipart-upload" else "aborted",
                 "bucket": short_bucket(d.bucket), "key": d.key,
                 "version": d.version_id[:12], "kind": d.kind,
                 "sha256": (d.sha256 or "")[:16], "digest from": d.sha256_source}
                for d in self.deleted]
        rows += [{"outcome": "KEPT: " + k.reason, "bucket": short_bucket(k.bucket), "key": k.key,
                  "version": k.version_id[:12], "kind": k.kind, "sha256": "",
                  "digest from": ""} for k in self.kept]
        rows += [{"outcome": "UNATTRIBUTED: " + u.reason, "bucket": short_bucket(u.bucket),
                  "key": u.key, "version": u.version_id[:12], "kind": u.kind, "sha256": "",
                  "digest from": ""} for u in self.unattributed]
        return rows

    def summary(self) -> dict[str, Any]:
        shred = self.shredding
        return {
            "speaker": self.speaker, "status": self.status, "complete": self.complete,
            "when": self.when.isoformat(timespec="seconds"),
            "deleted": len(self.deleted), "kept": len(self.kept),
            "unattributed": len(self.unattributed),
            "remaining_after": self.remaining_after,
            "key shredded": bool(shred and shred.shredded), "resumed": self.resumed,
        }

    def payload(self) -> dict[str, Any]:
        """Everything the signature covers, as JSON-ready data."""
        return {
            **self.summary(), "started": self.started.isoformat(),
            "when": self.when.isoformat(), "buckets": list(self.buckets),
            "deleted": [asdict(d) for d in self.deleted],
            "kept": [asdict(k) for k in self.kept],
            "unattributed": [asdict(u) for u in self.unattributed],
            "shredding": None if self.shredding is None else self.shredding.as_dict(),
            "key_kept_reason": self.key_kept_reason,
            "backup_retention_days": self.backup_retention_days,
            "backups_clear_at": (None if self.backups_clear_at is None
                                 else self.backups_clear_at.isoformat()),
            "signing_key_arn": self.signing_key_arn, "journal_head": self.journal_head,
            "journal_set_aside": list(self.journal_set_aside),
            "journal_rollback": self.journal_rollback,
        }

    def as_dict(self) -> dict[str, Any]:
        """The whole receipt as JSON-ready data, with its base64 ``signature``."""
        return {**self.payload(), "signature": signature_to_text(self.signature)}

    def verify(self, verifier: PublicKeyVerifier) -> None:
        """Raise :class:`~securepipe.errors.SignatureError` unless the receipt is exactly
        what ``verifier``'s key signed."""
        verify_receipt(self.as_dict(), verifier)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise SignatureError()
    return dict(pairs)


def _refuse_constant(name: str) -> Any:
    raise SignatureError()


def verify_receipt(receipt: Mapping[str, Any] | str | bytes,
                   verifier: PublicKeyVerifier) -> None:
    """Check a receipt offline: :meth:`ErasureReceipt.as_dict`, or its JSON text as stored.

    Needs only the signing key's public key; any edited field, a receipt signed by another
    key, a missing signature or one not in canonical base64
    (:func:`~securepipe.encryption.signing.signature_from_text`), and JSON text with a key
    given twice at any level (a consumer that keeps the first would read what was not signed)
    or ``NaN``/``Infinity`` raise :class:`~securepipe.errors.SignatureError`. Pass the text
    rather than ``json.loads`` of it: a parsed dict has already dropped duplicates.
    """
    if isinstance(receipt, str | bytes):
        try:
            receipt = json.loads(receipt, object_pairs_hook=_no_duplicate_keys,
                                 parse_constant=_refuse_constant)
        except (ValueError, RecursionError):
            raise SignatureError() from None
    if not isinstance(receipt, Mapping) or not isinstance(verifier, PublicKeyVerifier):
        raise SignatureError()
    data = dict(receipt)
    encoded = data.pop("signature", None)
    if data.get("signing_key_arn") != verifier.key_arn:
        raise SignatureError()
    verifier.verify(_canonical(data), signature_from_text(encoded))


def _aware(clock: Callable[[], dt.datetime]) -> dt.datetime:
    moment = clock()
    if not isinstance(moment, dt.datetime) or moment.tzinfo is None:
        raise InvalidParameterError("clock must return a timezone-aware datetime")
    return moment.astimezone(dt.UTC)


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


class _Anchor:
    """Signed journal heads kept outside the registry, one object per head, in a bucket the
    registry's writers cannot rewrite (see the module docstring).

    An anchor is named ``<prefix><count:08d>-<128 random bits, hex>``: nobody can plant an
    object at the name the next anchor will take (to block it, or to pass one off as it), and
    an anchor counts only if its body names the speaker and the count its name carries and its
    signature verifies against the erasure's signing key."""

    def __init__(self, s3: Any, bucket: str) -> None:
        self._s3, self.bucket = s3, bucket

    @staticmethod
    def prefix(speaker: str) -> str:
        return f"{ANCHOR_PREFIX}/{speaker}/"

    def put(self, speaker: str, head: Mapping[str, Any]) -> None:
        """Write one head under a fresh random name (PutObject with ``If-None-Match: *``:
        never over another object, though a random name never meets one)."""
        body = _canonical({"speaker": speaker, "count": head["count"],
                           "digest": head["digest"], "sig": signature_to_text(head["sig"])})
        key = f"{self.prefix(speaker)}{int(head['count']):08d}-{secrets.token_hex(16)}"
        self._s3.put_object(Bucket=self.bucket, Key=key, Body=body, IfNoneMatch="*",
                            ChecksumAlgorithm="SHA256", ContentType="application/json")

    def put_start(self, speaker: str, head: Mapping[str, Any]) -> None:
        """Anchor the empty journal's head (count 0): the fact that an erasure began."""
        if head["count"] != 0:
            raise InvalidParameterError("put_start anchors only an empty journal's head")
        self.put(speaker, head)

    def highest(self, speaker: str,
                verify: Callable[[int, str, bytes], None]) -> tuple[int, str] | None:
        """``(count, digest)`` of the longest anchored head whose signature verifies."""
        return next(self.heads(speaker, verify), None)

    def put_accept(self, speaker: str, body: Mapping[str, Any]) -> None:
        """Anchor an accepted rollback (``accept-<count:08d>-<random>``, see
        :meth:`_Journal.accept`)."""
        key = (f"{self.prefix(speaker)}accept-{int(body['count']):08d}-"
               f"{secrets.token_hex(16)}")
        self._s3.put_object(Bucket=self.bucket, Key=key, Body=_canonical(dict(body)),
                            IfNoneMatch="*", ChecksumAlgorithm="SHA256",
                            ContentType="application/json")

    def accepts(self, speaker: str, verify: Callable[[dict[str, Any]], None]
                ) -> list[dict[str, Any]]:
        """Every anchored accepted rollback whose signature verifies (``verify`` raises
        otherwise)."""
        out: list[dict[str, Any]] = []
        pages = self._s3.get_paginator("list_object_versions").paginate(
            Bucket=self.bucket, Prefix=f"{self.prefix(speaker)}accept-")
        for page in pages:
            for v in page.get("Versions", []):
                try:
                    data = json.loads(self._s3.get_object(
                        Bucket=self.bucket, Key=v["Key"], VersionId=v["VersionId"])["Body"].read(),
                        parse_constant=_refuse_constant)
                    if not isinstance(data, dict) or data.get("speaker") != speaker:
                        continue
                    verify(data)
                except (ValueError, KeyError, TypeError, SignatureError):
                    continue
                out.append(data)
        return out

    def heads(self, speaker: str, verify: Callable[[int, str, bytes], None]
              ) -> Iterator[tuple[int, str]]:
        """``(count, digest)`` of every anchored head whose signature verifies, longest first.

        ListObjectVersions (every version, so a delete marker hides nothing), then GetObject
        by version, longest first, lazily."""
        found: list[tuple[int, str, str]] = []
        pages = self._s3.get_paginator("list_object_versions").paginate(
            Bucket=self.bucket, Prefix=self.prefix(speaker))
        for page in pages:
            for v in page.get("Versions", []):
                tail = str(v["Key"])[len(self.prefix(speaker)):]
                digits, sep, nonce = tail.partition("-")
                if (digits.isascii() and digits.isdigit() and len(digits) == 8
                        and (not sep or _is_nonce(nonce))):
                    found.append((int(digits), str(v["Key"]), str(v["VersionId"])))
        for count, key, version in sorted(found, reverse=True):
            try:
                body = self._s3.get_object(Bucket=self.bucket, Key=key,
                                           VersionId=version)["Body"].read()
                data = json.loads(body, parse_constant=_refuse_constant)
                digest = data["digest"]
                if (not isinstance(data, dict) or data.get("speaker") != speaker
                        or data.get("count") != count or not isinstance(digest, str)):
                    continue
                verify(count, digest, signature_from_text(data.get("sig")))
            except (ValueError, KeyError, TypeError, SignatureError):
                continue              # not a head this key signed: it cannot shorten anything
            yield count, digest


def _is_nonce(text: str) -> bool:
    return len(text) == 32 and all(c in "0123456789abcdef" for c in text)


class _Journal:
    """The speaker's erasure journal: each entry signed, naming the speaker, its position and
    the digest of the entry before it, one registry item per entry, plus a signed *head*
    (entry count and last digest) in the speaker's item. An entry is written first (only if
    its position is free), then the head is moved past it (only if it still counts the entries
    before it). Loading verifies the chain and the head; an entry written past the head (a run
    that crashed between the two writes, or a concurrent erasure) is verified and adopted, so
    every deletion any run journaled reaches the receipt."""

    def __init__(self, registry: ConsentRegistry, speaker: str, signer: KmsSigner,
                 verifier: PublicKeyVerifier, status: str, anchor: _Anchor,
                 accept_rollback: bool = False) -> None:
        self._registry, self._speaker, self._signer = registry, speaker, signer
        self._verifier = verifier
        self._anchor = anchor
        self._accept_rollback = accept_rollback
        #: the rollback this run accepted (``accept_rollback=True``), or ``None``
        self.rollback: str | None = None
        self.records: list[dict[str, Any]] = []
        #: positions holding an item that does not verify (planted, forged, replayed), and why
        self.set_aside: list[str] = []
        self._prev = ""
        #: the chain's digest after 0, 1, 2, ... genuine entries (grows as entries are taken)
        self._digests = [""]
        digests = self._digests
        entries, head = registry.journal_and_head(speaker)
        for position, entry in enumerate(entries):
            self._take(position, entry)
        self._next = len(entries)        # the first position nobody has written yet
        self.has_head = head is not None
        if head is None:
            if self.records or status in ("erasing", "erasure-held"):
                anchored = self._anchored()
                if anchored is not None:    # the speaker's item was restored or replaced
                    self._rolled_back(anchored, (
                        f"erasure journal of {speaker!r} has no signed head although an "
                        f"erasure was started, and a head of {anchored[0]} entries signed by "
                        f"this erasure is anchored in s3://{anchor.bucket}/"
                        f"{anchor.prefix(speaker)} (the registry item was rolled back or "
                        "replaced); nothing was deleted"))
                    return
                raise ErasureError(
                    f"erasure journal of {speaker!r} has no signed head although an erasure "
                    "was started (removed?); nothing was deleted")
            self._check_anchor(digests)     # a whole item rolled back to before
            return
        count = head.get("count") if isinstance(head, dict) else None
        try:
            sig = head.get("sig") if isinstance(head, dict) else None
            if (not isinstance(sig, bytes) or isinstance(count, bool)
                    or not isinstance(count, int) or not 0 <= count <= len(self.records)
                    or head.get("digest") != digests[count]):
                raise SignatureError()
            verifier.verify(self._head_message(count, digests[count]), sig)
        except SignatureError:
            raise ErasureError(
                f"erasure journal of {speaker!r} does not match its signed head ({len(entries)} "
                "entries; entries were dropped, or the head was edited); nothing was deleted"
                ) from None
        for n in range(count + 1, len(digests)):   # entries written past the head: adopt them
            self._advance(n, digests[n])
        self._check_anchor(digests)

    def _take(self, position: int, entry: Mapping[str, Any]) -> bool:
        """Verify the item at ``position`` as the chain's next entry and append it; ``False``
        (and the position set aside) if it does not verify.

        Only the signing key makes an entry that verifies, and each names its speaker, its
        position and the digest of the genuine entry before it, so an item anyone else wrote
        (planted at a position the erasure would take, a copy of another entry, another
        speaker's) is set aside, never adopted and never a reason to stop: it can add nothing
        to the receipt, and it hides nothing either, since destroying a genuine entry breaks
        the chain after it, which the signed head and the anchored heads then refuse."""
        record = entry.get("record")
        message = self._message(position, str(entry.get("prev", "")), record)
        sig = entry.get("sig")
        try:
            if entry.get("seq") != position or entry.get("prev") != self._prev or not isinstance(
                    record, dict) or not isinstance(sig, bytes):
                raise SignatureError()
            self._verifier.verify(message, sig)
        except SignatureError:
            self.set_aside.append(
                f"{JOURNAL_PREFIX}{self._speaker}#{position}: does not verify against the "
                "signing key as the next entry (planted, forged, reordered or another "
                "speaker's); set aside")
            return False
        self.records.append(record)
        self._prev = hashlib.sha256(message).hexdigest()
        self._digests.append(self._prev)
        return True

    def _advance(self, count: int, digest: str) -> None:
        """Move the stored head to ``count`` entries (unless another run already moved it
        there or past) and anchor it."""
        head = {"count": count, "digest": digest,
                "sig": self._signer.sign(self._head_message(count, digest))}
        self._registry.advance_journal_head(self._speaker, head)
        self._anchor.put(self._speaker, head)   # after the registry: never ahead of it

    def _check_anchor(self, digests: list[str]) -> None:
        """Refuse a journal shorter than, or forked from, the longest anchored signed head
        (heads of a branch an anchored, accepted rollback abandoned excepted)."""
        anchor, speaker = self._anchor, self._speaker
        anchored = self._anchored()
        if anchored is not None and anchored[0] >= len(digests):
            # a concurrent erasure may have written entries, moved the head and anchored it
            # since this journal was read: entries come first, so they are in the registry
            self.catch_up()
            digests = self._digests
        abandoned: list[tuple[int, int]] = []   # (from, up to) counts an accepted rollback left
        accepts_read = False
        for count, digest in self._anchor.heads(speaker, self._verify_head):
            if count < len(digests) and digests[count] == digest:
                return                          # the journal passes through it: all earlier too
            if not accepts_read:
                accepts_read = True
                abandoned = [(int(a["count"]), int(a["from_count"]))
                             for a in anchor.accepts(speaker, self._verify_accept)
                             if int(a["count"]) < len(digests)
                             and digests[int(a["count"])] == a["digest"]]
            if any(low < count <= high for low, high in abandoned):
                continue
            self._rolled_back((count, digest), (
                f"erasure journal of {speaker!r} has {len(digests) - 1} entries, but a head of "
                f"{count} entries signed by this erasure is anchored in "
                f"s3://{anchor.bucket}/{anchor.prefix(speaker)} (the registry item was rolled "
                "back or replayed); nothing was deleted"))
            return

    def _rolled_back(self, anchored: tuple[int, str], message: str) -> None:
        """Raise :class:`~securepipe.errors.JournalRollbackError` (``message``), unless the
        caller accepted a rollback: then anchor a signed record
        that the branch after this journal's last entry up to ``anchored`` was abandoned (so
        later runs accept this journal too) and go on from the journal as it is."""
        if not self._accept_rollback:
            raise JournalRollbackError(message)
        count, digest = anchored
        body: dict[str, Any] = {"speaker": self._speaker, "journal-rollback-accepted": True,
                                "count": len(self.records), "digest": self._prev,
                                "from_count": count, "from_digest": digest}
        self._anchor.put_accept(self._speaker, {
            **body, "sig": signature_to_text(self._signer.sign(_canonical(body)))})
        self.rollback = (f"{message.removesuffix('; nothing was deleted')}. Accepted "
                         f"(accept_rollback=True): up to {count - len(self.records)} journaled "
                         "deletion(s) of the lost entries cannot be itemised; what is left was "
                         "re-listed and erased")

    def _verify_head(self, count: int, digest: str, sig: bytes) -> None:
        self._verifier.verify(self._head_message(count, digest), sig)

    def _verify_accept(self, data: dict[str, Any]) -> None:
        body = {k: data[k] for k in ("speaker", "journal-rollback-accepted", "count", "digest",
                                     "from_count", "from_digest")}
        if body["journal-rollback-accepted"] is not True:
            raise SignatureError()
        self._verifier.verify(_canonical(body), signature_from_text(data.get("sig")))

    def _anchored(self) -> tuple[int, str] | None:
        """The longest anchored head that verifies (see :meth:`_Anchor.highest`)."""
        return self._anchor.highest(self._speaker, self._verify_head)

    def _message(self, seq: int, prev: str, record: Any) -> bytes:
        return _canonical({"speaker": self._speaker, "seq": seq, "prev": prev,
                           "record": record})

    def _head_message(self, count: int, digest: str) -> bytes:
        return _canonical({"speaker": self._speaker, "journal-head": True, "count": count,
                           "digest": digest})

    def signed_head(self) -> dict[str, Any]:
        """The signed head of the journal as it is now."""
        count = len(self.records)
        return {"count": count, "digest": self._prev,
                "sig": self._signer.sign(self._head_message(count, self._prev))}

    @property
    def head(self) -> str:
        """``<entry count>:<digest of the last entry>`` (``0:`` when empty)."""
        return f"{len(self.records)}:{self._prev}"

    def catch_up(self) -> None:
        """Adopt every entry another run wrote at the positions after the ones read (setting
        aside any item there that does not verify)."""
        while (entry := self._registry.journal_entry(self._speaker, self._next)) is not None:
            self._next += 1
            if self._take(self._next - 1, entry):
                self._advance(len(self.records), self._prev)

    def append(self, record: dict[str, Any]) -> None:
        """Journal one deletion at the next free position: a position someone else took first
        is read (another run's entry is adopted, anything else set aside) and skipped, so no
        planted item can block the journal; then move the head past it and anchor the head."""
        while True:
            position = self._next
            message = self._message(position, self._prev, record)
            entry = {"seq": position, "prev": self._prev, "record": record,
                     "sig": self._signer.sign(message)}
            if self._registry.put_journal_entry(self._speaker, entry):
                break
            self.catch_up()
        self._next = position + 1
        self.records.append(record)
        self._prev = hashlib.sha256(message).hexdigest()
        self._digests.append(self._prev)
        self._advance(len(self.records), self._prev)

    def holds(self, bucket: str, key: str, version_id: str) -> bool:
        """True if the journal already lists this version (or upload)."""
        return any((str(r.get("bucket")), str(r.get("key")), str(r.get("version_id")))
                   == (bucket, key, version_id) for r in self.records)

    def deleted(self) -> tuple[DeletedVersion, ...]:
        """The journal's deletions, in order, without duplicates."""
        seen: set[tuple[str, str, str]] = set()
        out: list[DeletedVersion] = []
        for item in self.records:
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


def _shred_after_rollback(registry: ConsentRegistry, speaker: str, when: dt.datetime,
                          exc: JournalRollbackError) -> JournalRollbackError:
    """A rolled-back journal stops the deletes, never the shredding: the erasure was asked
    for and anchored, so key material back in the item (restored from a backup with it) is
    removed and the speaker marked ``erasing`` (``erased`` stays ``erased``). Returns the
    error to raise, saying what was done."""
    old = registry.remove_wrapped_key(speaker, when, status="erasing")
    shredded = old.get("wrapped_key") is not None
    AUDIT.info(f"erasure of {speaker}: journal rolled back; key material "
               f"{'shredded' if shredded else 'absent'}",
               extra={"principal": "securepipe-erasure", "action": "erasure.rollback",
                      "outcome": "denied", "purpose": "erasure", "when": when,
                      "speaker": speaker, "reason": str(exc)[:500]})
    return JournalRollbackError(
        f"{exc} The key material present was {'shredded' if shredded else 'already gone'} "
        "and the speaker is marked erasing; restore the genuine journal to finish the deletes.")


def _uploads_to_abort(uploads: list[PendingUpload], speaker: str, at: dt.datetime
                      ) -> tuple[list[tuple[PendingUpload, str]], list[UnattributedVersion]]:
    abort: list[tuple[PendingUpload, str]] = []
    unknown: list[UnattributedVersion] = []
    for up in uploads:
        if up.candidates == (speaker,):
            abort.append((up, "registry-index"))
        elif speaker in up.candidates:
            unknown.append(UnattributedVersion(
                up.bucket, up.key, up.upload_id, "multipart-upload",
                f"the registry's index names several speakers: {', '.join(up.candidates)}"))
        elif not up.candidates and up.older_than(at, RAW_EXPIRY_DAYS):
            abort.append((up, f"unattributed, older than the {RAW_EXPIRY_DAYS}-day ingest "
                              "window"))
        elif not up.candidates:
            unknown.append(UnattributedVersion(
                up.bucket, up.key, up.upload_id, "multipart-upload",
                "unfinished upload of a sample the registry's index does not know"))
    return abort, unknown


def erase_speaker(
    session: boto3.Session,
    *,
    speaker: str,
    registry: ConsentRegistry,
    buckets: Sequence[str],
    signer: KmsSigner,
    anchor_bucket: str,
    verifier: PublicKeyVerifier | None = None,
    sample_speakers: Mapping[str, str] | None = None,
    clock: Callable[[], dt.datetime] | None = None,
    after_step: Callable[[str, str], None] | None = None,
    accept_rollback: bool = False,
    lease_seconds: int = DEFAULT_LEASE_SECONDS,
) -> ErasureReceipt:
    """Erase every object version and unfinished upload of ``speaker`` in ``buckets``, shred
    their key, and return a signed receipt.

    ``anchor_bucket`` (required; the kit's audit bucket, ``sb.resources.bucket("audit")``) keeps
    every signed journal head outside the registry, so a rolled-back journal is refused
    (:class:`~securepipe.errors.JournalRollbackError`) before any delete.
    Attribution needs no mapping (object metadata and the registry's index);
    ``sample_speakers`` may add one (keys ``<contractor>/<sample_id>``).

    Writes in flight: the speaker is marked ``erasing`` (a DynamoDB write) before anything is
    listed, and every kit writer of speaker data re-reads consent strongly consistently after
    its write and deletes what it wrote if the speaker is no longer admitted
    (:func:`securepipe.encryption.upload.fence_write` argues why the two orders cover every
    interleaving). So a write admitted just before the erasure is either in this erasure's
    listing or removed by its own writer, which reports a refusal; a writer that stopped
    between its write and its re-check leaves an object whose metadata names the speaker,
    which the sweeper and a re-run of this function delete (the re-run's receipt lists it with
    attribution ``...; found after the speaker was erased``). ``signer`` signs the journal
    and the receipt (an
    ``ECC_NIST_P256`` ``SIGN_VERIFY`` KMS key; in the sandbox ``sb.resources.signing_key_arn``);
    ``verifier`` (default: the signer's public key, one GetPublicKey) checks a resumed journal.
    ``clock`` (default :func:`securepipe.clock.now`) dates the receipt and the registry.
    ``after_step(step, detail)`` is called after each delete (``"delete"``) and after
    shredding (``"shred"``); tests use it to inject crashes. ``accept_rollback=True`` goes on
    past a journal the anchors show was rolled back (see "Recovering from a genuine rollback"
    in the module docstring) instead of raising :class:`~securepipe.errors.JournalRollbackError`.
    ``lease_seconds`` (1 to :data:`MAX_LEASE_SECONDS`, default :data:`DEFAULT_LEASE_SECONDS`):
    how long this run's erasure lease lasts past each renewal (see "One erasure of a speaker at
    a time" in the module docstring).

    Wraps ListObjectVersions, HeadObject, GetObject, DeleteObject with ``VersionId``
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/DeletingObjectVersions.html),
    ListMultipartUploads and AbortMultipartUpload
    (https://docs.aws.amazon.com/AmazonS3/latest/API/API_AbortMultipartUpload.html), KMS Sign,
    and DynamoDB UpdateItem for the journal and the shredding. Raises
    :class:`~securepipe.errors.InvalidParameterError` for a malformed speaker id or bucket name
    (before any AWS call), :class:`~securepipe.errors.UnknownSpeakerError` for a speaker the
    registry does not know and :class:`~securepipe.errors.ConsentRecordError` for a malformed
    record (nothing changed), and :class:`~securepipe.errors.ErasureError` when the journal does
    not verify (nothing deleted) or S3 or DynamoDB fails part-way (re-run to resume), and its
    subclass :class:`~securepipe.errors.ErasureInProgressError` when another run holds the
    speaker's lease (nothing deleted) or took it from this run (nothing more deleted).
    """
    validate_speaker_id(speaker)
    if isinstance(buckets, str) or not isinstance(buckets, Sequence) or not buckets:
        raise InvalidParameterError("buckets must be a non-empty list of bucket names")
    buckets = tuple(validate_bucket_name(b) for b in buckets)
    validate_bucket_name(anchor_bucket)
    if anchor_bucket in buckets:
        raise InvalidParameterError("anchor_bucket must not be one of the erased buckets")
    if not isinstance(registry, ConsentRegistry):
        raise InvalidParameterError("registry must be a ConsentRegistry")
    if not isinstance(signer, KmsSigner):
        raise InvalidParameterError("signer must be a KmsSigner (receipts are signed)")
    if verifier is not None and (not isinstance(verifier, PublicKeyVerifier)
                                 or verifier.key_arn != signer.key_arn):
        raise InvalidParameterError("verifier must be the signer's PublicKeyVerifier")
    if clock is not None and not callable(clock):
        raise InvalidParameterError("clock must be a callable returning an aware datetime")
    if not isinstance(accept_rollback, bool):
        raise InvalidParameterError("accept_rollback must be a bool")
    if (isinstance(lease_seconds, bool) or not isinstance(lease_seconds, int)
            or not 1 <= lease_seconds <= MAX_LEASE_SECONDS):
        raise InvalidParameterError(
            f"lease_seconds must be an integer from 1 to {MAX_LEASE_SECONDS}")
    tick = clock or _clock.now
    done = after_step or (lambda step, detail: None)
    start = _aware(tick)

    def later() -> dt.datetime:          # the erasure's clock never goes backwards
        return max(start, _aware(tick))

    record = registry.get(speaker)       # UnknownSpeakerError / ConsentRecordError: no change
    already = record.status == "erased"
    resumed = record.status in ("erasing", "erasure-held")
    lease, lease_for = secrets.token_hex(16), dt.timedelta(seconds=lease_seconds)
    leased = False

    def hold() -> None:
        # renewed only while this run still holds it (ErasureInProgressError otherwise), and
        # from the erasure's clock that never goes backwards: a clock moving back never
        # shortens the lease (letting another run take it while this one works)
        registry.renew_erasure_lease(speaker, lease, until=later() + lease_for)

    try:
        # one erasure of the speaker at a time, so this run's receipt is whole: a live lease
        # of another run refuses this one before it writes or deletes anything
        registry.take_erasure_lease(speaker, lease, now=start, until=start + lease_for)
        leased = True
        # read again under the lease: a run that held it before may have finished meanwhile
        record = registry.get(speaker)
        already = record.status == "erased"
        resumed = record.status in ("erasing", "erasure-held")
        verifier = verifier or PublicKeyVerifier.from_kms(session, signer.key_arn)
        s3 = shared_client(session, "s3")
        anchor = _Anchor(s3, anchor_bucket)
        try:
            journal = _Journal(registry, speaker, signer, verifier,   # verified before any delete
                               record.status, anchor, accept_rollback)
        except JournalRollbackError as exc:
            raise _shred_after_rollback(registry, speaker, later(), exc) from None
        if not journal.records:
            # the fact "this speaker's erasure began" goes outside the registry first: the
            # consent gate refuses an anchored speaker whatever a restored item says
            anchor.put_start(speaker, journal.signed_head())
        if not already:
            registry.begin_erasure(speaker, start, head=journal.signed_head())
        deleted_now: list[DeletedVersion] = []
        kept: list[KeptVersion] = []
        unattributed: list[UnattributedVersion] = []

        # every deletion is journaled, stragglers found after the speaker was erased too, so
        # any later run's receipt is built from everything every run deleted
        journaled = journal.has_head or not already

        def record_deleted(entry: DeletedVersion) -> None:
            deleted_now.append(entry)
            if journaled:
                journal.append(asdict(entry))
            done("delete", f"{entry.bucket}/{entry.key}?versionId={entry.version_id}")

        # every bucket listed, then the registry's index read once (after the listings, so it
        # holds every listed sample's entry), then each version attributed as it is reached
        for listed in attribute_buckets(session, buckets, sample_speakers, registry=registry):
            abort, unknown = _uploads_to_abort(listed.uploads, speaker, start)
            unattributed.extend(unknown)
            for up, why in abort:
                hold()
                if not abort_upload(s3, up):
                    continue    # completed since the listing: the check after the pass finds it
                _audit_upload(up, start, speaker, why)
                record_deleted(DeletedVersion(up.bucket, up.key, up.upload_id,
                                              "multipart-upload", None, "none", None, why))
            for v in listed.versions:
                if not v.candidates:
                    unattributed.append(UnattributedVersion(
                        v.bucket, v.key, v.version_id, v.kind,
                        v.conflict or "no speaker metadata, and the registry's index does not "
                        "know its sample"))
                    continue
                if speaker not in v.candidates:
                    continue
                if v.conflict is not None:    # another source says it is not theirs: never delete
                    unattributed.append(UnattributedVersion(
                        v.bucket, v.key, v.version_id, v.kind,
                        f"sources disagree on the speaker ({v.conflict})"))
                    continue
                lock = v.lock_reason(start)
                if lock:
                    kept.append(KeptVersion(v.bucket, v.key, v.version_id, v.kind, lock))
                    _audit("erasure.kept", v, "denied", start, speaker, lock)
                    continue
                hold()                    # before each deletion: still this run's lease?
                try:
                    sha, source = _digest(s3, v)
                except ClientError as exc:
                    if exc.response.get("Error", {}).get("Code") not in GONE_CODES:
                        raise
                    # removed since the listing: by a concurrent erasure of this speaker (its
                    # journal entry is adopted if already written) or by its writer's consent
                    # fence. Either way it was the speaker's and is gone: the receipt says so.
                    if journaled:
                        journal.catch_up()
                        if journal.holds(v.bucket, v.key, v.version_id):
                            continue
                    record_deleted(DeletedVersion(
                        v.bucket, v.key, v.version_id, v.kind, None, "none", v.size,
                        f"{v.source}; already gone when this erasure reached it (deleted by "
                        "a concurrent erasure of the speaker or by its writer's consent "
                        "fence)"))
                    continue
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
                _audit("erasure.delete-version", v, "allowed", start, speaker)
                record_deleted(DeletedVersion(
                    v.bucket, v.key, v.version_id, v.kind, sha, source, v.size,
                    f"{v.source}; found after the speaker was erased" if already
                    else v.source))

        hold()
        after = attribute_buckets(session, buckets, sample_speakers, registry=registry)
        remaining = [v for listed in after for v in listed.versions if v.speaker == speaker]
        still_pending = [u for listed in after for u in listed.uploads
                         if u.candidates == (speaker,)]
        kept_ids = {(k.bucket, k.key, k.version_id) for k in kept}
        unexplained = [v for v in remaining if (v.bucket, v.key, v.version_id) not in kept_ids]
        if unexplained or still_pending:
            raise ErasureError(
                f"{len(unexplained) + len(still_pending)} version(s) or upload(s) of {speaker!r} "
                "appeared during the erasure (is ingest still running for them?); nothing was "
                "shredded, re-run to finish")

        shredding: ShredEvidence | None = None
        key_kept: str | None = None
        when = later()
        retention = registry.backup_retention_days()
        status: Status
        if already and not registry.get(speaker).has_key:
            status = "already-erased"
        elif already:
            # key material is back in an erased speaker's item (e.g. restored from a backup):
            # shred it again; the backup clock starts again from now
            status = "erased"
            shredding = shred_speaker_key(registry, speaker, when=when)
            done("shred", speaker)
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
        clear_at: dt.datetime | None = None
        erased_at = (shredding.erased_at if shredding is not None else record.erased_at)
        if status != "held" and retention != 0:
            clear_at = (None if retention is None or erased_at is None
                        else erased_at + dt.timedelta(days=retention))
            if clear_at is None or when < clear_at:
                status = "erased-pending-backup-expiry"
        # the verified journal: what every run deleted (an erased item without a journal,
        # e.g. erased before journals existed, has only this run's deletions to show)
        if journaled:
            journal.catch_up()        # what a concurrent run journaled meanwhile
        deleted = journal.deleted() if journaled else tuple(deleted_now)
        # released only if still held: had another run taken it meanwhile, its deletions
        # could be missing from this receipt, so none is signed
        if not registry.release_erasure_lease(speaker, lease):
            held = registry.erasure_lease(speaker)
            raise ErasureInProgressError(
                speaker, None if held is None else held[1],
                "this run's lease expired and was taken by another run before its receipt was "
                "signed; re-run after that lease ends for the whole receipt")
        leased = False
    except RetentionError as exc:
        raise ErasureError(f"erasure of {speaker!r} stopped: {exc}; what was deleted is "
                           "journaled, re-run to finish") from exc
    except (ClientError, BotoCoreError) as exc:
        code = exc.response.get("Error", {}).get("Code") if isinstance(exc, ClientError) else None
        raise ErasureError(f"erasure of {speaker!r} stopped ({code or type(exc).__name__}); "
                           "what was deleted is journaled, re-run to finish") from exc
    finally:
        if leased:       # stopped by an error: free the speaker for a re-run at once
            with contextlib.suppress(ClientError, BotoCoreError):   # else it simply expires
                registry.release_erasure_lease(speaker, lease)

    unsigned = ErasureReceipt(
        speaker=speaker, started=start, when=when, status=status, buckets=buckets,
        deleted=deleted, kept=tuple(kept), unattributed=tuple(unattributed),
        shredding=shredding, key_kept_reason=key_kept,
        remaining_after=len(remaining) + len(still_pending), resumed=resumed,
        backup_retention_days=retention, backups_clear_at=clear_at,
        signing_key_arn=signer.key_arn, journal_head=journal.head,
        journal_set_aside=tuple(journal.set_aside), journal_rollback=journal.rollback)
    try:
        signature = signer.sign(_canonical(unsigned.payload()))
    except (ClientError, BotoCoreError) as exc:
        raise ErasureError(f"erasure of {speaker!r} is done but its receipt could not be signed; "
                           "re-run to get the signed receipt") from exc
    receipt = replace(unsigned, signature=signature)
    summary = " ".join(f"{k}={v}" for k, v in receipt.summary().items() if k != "speaker")
    AUDIT.info(f"erasure of {speaker}: {summary} journal_head={receipt.journal_head}",
               extra={"principal": "securepipe-erasure", "action": f"erasure.{status}",
                      "outcome": "allowed", "purpose": "erasure", "when": when,
                      "speaker": speaker, "reason": key_kept})
    return receipt


def _audit(action: str, v: AttributedVersion, outcome: str, at: dt.datetime,
           speaker: str, reason: str | None = None) -> None:
    AUDIT.info(action, extra={"principal": "securepipe-erasure", "action": action,
                              "bucket": v.bucket, "key": v.key, "version_id": v.version_id,
                              "outcome": outcome, "purpose": "erasure", "when": at,
                              "bytes": v.size, "speaker": speaker, "reason": reason})


def _audit_upload(up: PendingUpload, at: dt.datetime, speaker: str, reason: str) -> None:
    AUDIT.info("erasure.abort-upload", extra={
        "principal": "securepipe-erasure", "action": "erasure.abort-upload",
        "bucket": up.bucket, "key": up.key, "version_id": up.upload_id, "outcome": "allowed",
        "purpose": "erasure", "when": at, "speaker": speaker, "reason": reason})
