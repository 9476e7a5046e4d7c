"""Step 1, continued: the contractor-side upload of an encrypted sample, and its counterpart.

:func:`upload_sample` encrypts a recording with an
:class:`~securepipe.encryption.envelope.Envelope` on the
contractor's machine and uploads only the ciphertext to ``raw/<contractor>/<sample_id>``, asking
S3 to encrypt it again at rest under the customer-managed KMS key (SSE-KMS with an S3 Bucket Key:
https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingKMSEncryption.html). The client-side
layer is what protects the sample from anyone who can read the bucket; SSE-KMS is the second
layer, for the disks and backups behind it.

:func:`download_sample` is the counterpart: it fetches the ciphertext, checks that the bytes
arrived intact and decrypts them only under the exact context the caller expects, so a sample
copied into another contractor's folder refuses to decrypt there.

Plaintext is never written anywhere but the caller's source file and, on download, the caller's
destination (through the envelope's atomic temporary file beside it). Ciphertext is staged in a
private temporary directory that is always removed.

**Attribution and consent.** Every upload says how consent was checked: ``consent=`` is
required and has no default. Normally it is the consent registry
(:class:`~securepipe.retention.consent.ConsentRegistry`, or anything with its ``admit`` and
``check_consent`` methods) together with ``speaker=``: the upload names its speaker and sample
in its metadata (:data:`META_SPEAKER`, :data:`META_SAMPLE`), so retention and erasure find the
raw upload without any mapping, and a speaker whose consent is withdrawn, erased, expired or
unknown is refused before anything is encrypted or sent (the sample id is recorded in the
registry's index of the speaker's samples). Uploading with no registry at all is possible only
by naming it: ``consent=CONSENT_NOT_CHECKED`` (lessons 01-03 do, before the registry exists),
so a reader, a reviewer and a grep see that nothing checked consent. Ingest gates every sample
again in any case (:mod:`securepipe.features.ingest`).

**Fenced against a concurrent erasure.** A gated upload re-reads the speaker's consent
(a strongly consistent GetItem) *after* its write has completed; if the speaker is no longer
admitted (an erasure began, consent was withdrawn) it deletes exactly the version it wrote and
raises :class:`~securepipe.errors.ConsentError` (reason ``revoked-after-write``). Why that
closes the race, with :func:`~securepipe.retention.erasure.erase_speaker` marking the speaker
``erasing`` before it lists anything: see :func:`fence_write`.

moto note: the sandbox stores ``ChecksumSHA256`` but does not verify it, and its SSE-KMS is
metadata only (the bytes are stored as sent), so in the sandbox the client-side layer is the only
encryption that is really there; see ``/work/shared/reference/moto-behaviour.md``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

from securepipe import clock as _clock
from securepipe.clients import shared_client
from securepipe.encryption.envelope import (
    BatchContext,
    BindingContext,
    DecryptResult,
    Envelope,
    SampleContext,
)
from securepipe.errors import ConsentError, DecryptionError, InvalidParameterError
from securepipe.ids import validate_bucket_name, validate_kms_key_arn, validate_speaker_id

__all__ = [
    "CONSENT_NOT_CHECKED",
    "META_CIPHERTEXT_SHA256",
    "META_FORMAT",
    "META_SAMPLE",
    "META_SPEAKER",
    "MULTIPART_THRESHOLD",
    "RAW_PREFIX",
    "ConsentGate",
    "ErasureCheck",
    "UploadResult",
    "download_sample",
    "fence_write",
    "open_sample",
    "sample_key",
    "upload_sample",
]

#: Key prefix of raw uploads in the raw bucket: ``raw/<contractor>/<sample_id>``.
RAW_PREFIX = "raw"
#: Object metadata (``x-amz-meta-...``) the upload writes.
META_FORMAT = "securepipe-format"
META_CIPHERTEXT_SHA256 = "securepipe-ciphertext-sha256"
#: Metadata naming the speaker and the sample on every object the kit writes for a speaker.
META_SPEAKER = "securepipe-speaker"
META_SAMPLE = "securepipe-sample"
#: Ciphertexts at least this large go through multipart ``upload_file``; smaller: ``put_object``.
MULTIPART_THRESHOLD = 16 * 1024 * 1024
_MIN_PART = 5 * 1024 * 1024  # S3's smallest part (all parts but the last)
_MAX_SINGLE_PUT = 5 * 1024**3  # S3's largest single PUT
_TEMP_PREFIX = "securepipe-transfer-"
_CHUNK = 1024 * 1024
_MAX_KEY_BYTES = 1024


class ConsentGate(Protocol):
    """What a writer of speaker data asks: ``admit`` before the write (raise to refuse, record
    the sample), ``check_consent`` after it (raise if the speaker is no longer admitted); both
    must read strongly consistently (the registry's GetItem uses ``ConsistentRead``)."""

    def admit(self, speaker: str, sample_id: str, *, contractor: str,
              at: dt.datetime) -> object: ...

    def check_consent(self, speaker: str, at: dt.datetime) -> object: ...


class ErasureCheck(Protocol):
    """What a writer that checked consent elsewhere still asks: ``refuse_if_erased`` (raise
    :class:`~securepipe.errors.ConsentError` for a speaker being or already erased)."""

    def refuse_if_erased(self, speaker: str) -> None: ...


class _ErasuresOnly:
    """A :class:`ConsentGate` that checks only erasure, before and after the write."""

    def __init__(self, erasures: ErasureCheck) -> None:
        self._erasures = erasures

    def admit(self, speaker: str, sample_id: str, *, contractor: str,
              at: dt.datetime) -> object:
        self._erasures.refuse_if_erased(speaker)
        return None

    def check_consent(self, speaker: str, at: dt.datetime) -> object:
        self._erasures.refuse_if_erased(speaker)
        return None


class _ConsentNotChecked:
    """The type of :data:`CONSENT_NOT_CHECKED` (one instance)."""

    _instance: _ConsentNotChecked | None = None

    def __new__(cls) -> _ConsentNotChecked:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "CONSENT_NOT_CHECKED"


#: Pass as ``consent=`` to upload with no consent registry: an explicit, visible choice (the
#: lessons before step 5 use it), never a default. Nothing is fenced, the object names its
#: speaker only if ``speaker=`` is given, and ingest still gates it.
CONSENT_NOT_CHECKED = _ConsentNotChecked()


def fence_write(consent: ConsentGate, speaker: str, at: dt.datetime,
                delete: Callable[[], None], what: str) -> None:
    """After a write for ``speaker`` has completed, re-check consent; if the speaker is no
    longer admitted, call ``delete`` (which removes exactly the version just written) and raise
    :class:`~securepipe.errors.ConsentError` with reason ``revoked-after-write``.

    Why this refuses every interleaving with an erasure, by order and not by timing. The
    erasure (E) does: E1 mark the speaker ``erasing`` (a DynamoDB write; every later
    ``ConsistentRead`` GetItem sees it), then E2 list every version and unfinished upload and
    delete the speaker's, E3 list again and sign. A writer (W) does: W1 ``admit`` (refused
    once E1 is done: it reads consent again after its index write), W2 the write, W3 this
    re-check, a ``ConsistentRead`` GetItem. Either W3 reads the registry after E1, so it sees
    ``erasing`` (or ``erased``) and W deletes its own version; or W3 read before E1, so W2 had
    completed before E1, hence before E2's listing began, and S3's strong read-after-write
    consistency for PUT and LIST
    (https://docs.aws.amazon.com/AmazonS3/latest/userguide/Welcome.html#ConsistencyModel)
    puts the version in E2's listing, and E deletes it (or E3 sees it and refuses to sign).
    A multipart upload under way at E2 is attributed by the registry's index (W1 indexed it)
    and aborted; with :class:`~securepipe.retention.consent.ReadOnlyConsentGate` (a writer
    that may only read the registry, W1 indexes nothing) it is reported unattributed instead,
    and the receipt is not complete. What this does not give: if W2 lands after E3, the
    version exists from W2 until W3 deletes it, after the receipt was signed; W never reports
    success for it. A writer that stops between W2 and W3 (a crash, or a role without
    ``s3:DeleteObjectVersion``) leaves an object whose metadata names the speaker: the
    sweeper and a re-run of the erasure delete it and say so.
    DynamoDB read consistency:
    https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/HowItWorks.ReadConsistency.html
    """
    try:
        consent.check_consent(speaker, at)
    except ConsentError as exc:
        try:
            delete()
        except ClientError as failed:
            code = failed.response.get("Error", {}).get("Code")
            raise ConsentError(speaker, "revoked-after-write", (
                f"{what} was written, then consent refused it ({exc.reason}); deleting it "
                f"failed ({code}): its metadata names the speaker, so the sweeper and a "
                "re-run of the erasure remove it")) from exc
        raise ConsentError(speaker, "revoked-after-write", (
            f"{what} was written, then consent refused it ({exc.reason}); the version "
            "written was deleted")) from exc


@dataclass(frozen=True)
class UploadResult:
    """What :func:`upload_sample` stored, and the plaintext digest for the uploader's records.

    ``plaintext_sha256`` is returned, never uploaded (see :func:`upload_sample`); ``context`` is
    the encryption context bound to the ciphertext; ``version_id`` is ``None`` on an
    unversioned bucket.
    """

    bucket: str
    key: str
    version_id: str | None
    plaintext_sha256: str
    ciphertext_sha256: str
    ciphertext_bytes: int
    context: dict[str, str]
    multipart: bool


def sample_key(contractor: str, sample_id: str) -> str:
    """The object key of a raw upload, ``raw/<contractor>/<sample_id>``.

    Both parts are checked with :class:`~securepipe.encryption.envelope.SampleContext`'s rules (so
    no
    ``/``, ``..``, wildcard or space can reach the key); :class:`InvalidParameterError` otherwise.
    Key naming: https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-keys.html
    """
    # The purpose is irrelevant to the key; building the context reuses its exact checks.
    checked = SampleContext(contractor=contractor, sample_id=sample_id, purpose="key")
    return f"{RAW_PREFIX}/{checked.contractor}/{checked.sample_id}"


def upload_sample(
    session: boto3.Session,
    envelope: Envelope,
    src: str | os.PathLike[str],
    *,
    bucket: str,
    context: SampleContext,
    key_arn: str,
    multipart_threshold: int = MULTIPART_THRESHOLD,
    consent: ConsentGate | _ConsentNotChecked,
    speaker: str | None = None,
    erasures: ErasureCheck | None = None,
) -> UploadResult:
    """Encrypt ``src`` client-side and upload the ciphertext to ``raw/<contractor>/<sample_id>``.

    Wraps S3 PutObject (https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html) for
    ciphertexts below ``multipart_threshold`` and boto3's ``upload_file`` (multipart upload via
    s3transfer, https://docs.aws.amazon.com/AmazonS3/latest/API/API_CreateMultipartUpload.html)
    above it. The object is stored with ``ServerSideEncryption="aws:kms"`` under ``key_arn``
    with an S3 Bucket Key, a SHA-256 checksum S3 verifies on arrival (whole object for PutObject,
    per part for multipart), and metadata :data:`META_FORMAT` and :data:`META_CIPHERTEXT_SHA256`.

    The ciphertext is written to a private (0700) temporary directory that is removed on success
    and on failure; the plaintext is only ever read from ``src``. Arguments are checked before
    any AWS call (:class:`InvalidParameterError`); encryption failures raise
    :class:`~securepipe.errors.EncryptionError`; S3 and file errors propagate unchanged.
    Only :class:`~securepipe.encryption.envelope.SampleContext` is accepted: the object key names
    the sample.

    ``consent`` is required: the consent registry (with ``speaker``), or the named choice
    :data:`CONSENT_NOT_CHECKED`. With a registry, ``consent.admit(speaker, sample_id,
    contractor=<the key's contractor>, at=now)`` is called before anything is encrypted (its
    refusal, :class:`~securepipe.errors.ConsentError`, propagates and nothing is uploaded), and
    after the write :func:`fence_write` re-checks consent, deletes exactly the version written if
    the speaker is no longer admitted, and raises ``ConsentError`` (``revoked-after-write``).
    ``speaker`` writes the speaker and sample into the object's metadata.

    ``consent=CONSENT_NOT_CHECKED`` means "consent was checked elsewhere", never "write data of
    an erased person": with ``speaker=`` and ``erasures=`` (the consent registry, or anything
    with its ``refuse_if_erased``), a speaker whose record says erased (or erasing, or held) or
    whose erasure is anchored is refused before anything is encrypted, and the same check after
    the write deletes exactly the version written and refuses (``revoked-after-write``).
    ``erasures`` is optional because a contractor's upload role may have no access to the
    registry: the upload is then not gated at all, and ingest's consent gate refuses the
    sample (the raw upload expires with the ingest window). The kit's uploader role may read
    the consent fields of speaker items (never write the registry): it uploads with
    ``consent=ReadOnlyConsentGate(registry)``
    (:class:`~securepipe.retention.consent.ReadOnlyConsentGate`), which checks consent before
    and after the write and leaves claiming and indexing to ingest's gate.
    """
    _require_session(session)
    if not isinstance(envelope, Envelope):
        raise InvalidParameterError("envelope must be an Envelope")
    if not isinstance(context, SampleContext):
        raise InvalidParameterError("context must be a SampleContext (the key names the sample)")
    key = sample_key(context.contractor, context.sample_id)
    validate_bucket_name(bucket)
    validate_kms_key_arn(key_arn)
    threshold = multipart_threshold
    if (
        isinstance(threshold, bool)
        or not isinstance(threshold, int)
        or not _MIN_PART <= threshold <= _MAX_SINGLE_PUT
    ):
        raise InvalidParameterError(
            f"multipart_threshold must be an integer in [{_MIN_PART}, {_MAX_SINGLE_PUT}]"
        )
    src_path = Path(src)
    attribution = {META_SAMPLE: context.sample_id}
    gate: ConsentGate | None = None
    if erasures is not None and not callable(getattr(erasures, "refuse_if_erased", None)):
        raise InvalidParameterError("erasures= must be the consent registry (ConsentRegistry)")
    if isinstance(consent, _ConsentNotChecked):
        if speaker is not None:
            validate_speaker_id(speaker)
            if erasures is not None:
                gate = _ErasuresOnly(erasures)
        elif erasures is not None:
            raise InvalidParameterError("erasures= needs speaker= (whose erasure to check)")
    elif (callable(getattr(consent, "admit", None))
          and callable(getattr(consent, "check_consent", None))):
        if speaker is None:
            raise InvalidParameterError("a consent-gated upload needs speaker= (whose consent "
                                        "to check)")
        validate_speaker_id(speaker)
        gate = consent
    else:
        raise InvalidParameterError("consent= must be the consent registry (ConsentRegistry) "
                                    "or CONSENT_NOT_CHECKED, an explicit choice")
    admitted_at = _clock.now()
    if gate is not None:
        assert speaker is not None
        # the index records exactly the key's contractor and sample: erasure deletes by it
        # (with CONSENT_NOT_CHECKED and erasures=: only the erasure check, nothing indexed)
        gate.admit(speaker, context.sample_id, contractor=context.contractor,
                   at=admitted_at)                  # refuses before any write
    if speaker is not None:
        attribution[META_SPEAKER] = speaker

    workdir = Path(tempfile.mkdtemp(prefix=_TEMP_PREFIX))  # mode 0700, per tempfile's contract
    try:
        ciphertext = workdir / "sample.enc"
        encrypted = envelope.encrypt_file(src_path, ciphertext, context)
        ct_hex, ct_b64 = _sha256_file(ciphertext)
        extra: dict[str, Any] = {
            "ServerSideEncryption": "aws:kms",
            "SSEKMSKeyId": key_arn,
            # No plaintext digest here, on purpose: object metadata is readable by anyone who can
            # HEAD or copy the object, and a digest of a voice recording lets whoever holds a
            # copy of that recording confirm that it is in the bucket (and which contractor
            # sent it). The ciphertext digest reveals nothing about the recording.
            "Metadata": {
                META_FORMAT: context.format_version,
                META_CIPHERTEXT_SHA256: ct_hex,
                **attribution,
            },
        }
        multipart = encrypted.ciphertext_bytes >= threshold
        # the multipart path registers handlers on its client, so it gets one of its own
        s3 = session.client("s3") if multipart else shared_client(session, "s3")
        if multipart:
            version_id = _upload_multipart(s3, ciphertext, bucket, key, extra, threshold)
        else:
            with open(ciphertext, "rb") as body:
                response = s3.put_object(
                    Bucket=bucket,
                    Key=key,
                    Body=body,
                    BucketKeyEnabled=True,
                    ChecksumAlgorithm="SHA256",
                    ChecksumSHA256=ct_b64,
                    **extra,
                )
            version_id = response.get("VersionId")
        if gate is not None:
            assert speaker is not None
            pinned = {"VersionId": version_id} if version_id else {}
            fence_write(gate, speaker, admitted_at,
                        lambda: s3.delete_object(Bucket=bucket, Key=key, **pinned),
                        f"s3://{bucket}/{key}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)  # holds ciphertext only
    return UploadResult(
        bucket=bucket,
        key=key,
        version_id=version_id,
        plaintext_sha256=encrypted.plaintext_sha256,
        ciphertext_sha256=ct_hex,
        ciphertext_bytes=encrypted.ciphertext_bytes,
        context=context.as_encryption_context(),
        multipart=multipart,
    )


def download_sample(
    session: boto3.Session,
    envelope: Envelope,
    *,
    bucket: str,
    key: str,
    dst: str | os.PathLike[str],
    expected_context: BindingContext,
    version_id: str | None = None,
    client: Any | None = None,
) -> DecryptResult:
    """Download an uploaded sample and decrypt it into ``dst`` under ``expected_context``.

    Wraps S3 GetObject (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html).
    The ciphertext is streamed into a private (0700) temporary directory, its SHA-256 compared
    with :data:`META_CIPHERTEXT_SHA256` (transfer integrity only: whoever can write the object
    can write its metadata too; authenticity comes from decryption), then decrypted with
    :meth:`Envelope.decrypt_file`, which binds it to ``expected_context`` exactly. A digest
    mismatch, missing metadata or any failure to decrypt raises the one opaque
    :class:`~securepipe.errors.DecryptionError` and leaves nothing at ``dst``. S3 errors (such
    as a missing key or a refused request) propagate unchanged as botocore ``ClientError``.

    ``version_id`` reads that version exactly (a pipeline that lists versions, then deletes
    them, must process the version it listed, not whatever is current by then; ``"null"``, the
    id S3 gives objects written while versioning was off, reads the current object); ``client``
    reuses an S3 client made from ``session`` instead of making one per call.
    """
    _require_session(session)
    if not isinstance(envelope, Envelope):
        raise InvalidParameterError("envelope must be an Envelope")
    if not isinstance(expected_context, SampleContext | BatchContext):
        raise InvalidParameterError("expected_context must be a SampleContext or BatchContext")
    validate_bucket_name(bucket)
    if (
        not isinstance(key, str)
        or not key
        or len(key.encode("utf-8", "surrogatepass")) > _MAX_KEY_BYTES
    ):
        raise InvalidParameterError(f"invalid object key {key!r}")
    if version_id is not None and (not isinstance(version_id, str) or not version_id
                                   or len(version_id) > 1024):
        raise InvalidParameterError(f"invalid version id {version_id!r}")
    dst_path = Path(dst)

    workdir = Path(tempfile.mkdtemp(prefix=_TEMP_PREFIX))
    try:
        ciphertext = workdir / "sample.enc"
        s3 = client if client is not None else shared_client(session, "s3")
        pinned = {"VersionId": version_id} if version_id not in (None, "null") else {}
        response = s3.get_object(Bucket=bucket, Key=key, **pinned)
        metadata = response.get("Metadata") or {}
        digest = hashlib.sha256()
        body = response["Body"]
        try:
            fd = os.open(ciphertext, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                for chunk in body.iter_chunks(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
        finally:
            body.close()
        _check_transfer(metadata, digest.hexdigest(), expected_context)
        return envelope.decrypt_file(ciphertext, dst_path, expected_context)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def open_sample(envelope: Envelope, message: bytes, metadata: Mapping[str, str] | None,
                expected_context: BindingContext) -> bytes:
    """The plaintext of an upload already read into memory (``message``, with the object's
    ``metadata``), after the checks of :func:`download_sample`.

    For a pipeline that bounds the object's size before reading it (S3 GetObject's
    ``ContentLength``, https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html) and
    then needs the whole plaintext anyway: no temporary file, so no plaintext ever reaches a
    disk and no ``fsync`` is paid per sample. The SHA-256 of ``message`` must equal
    :data:`META_CIPHERTEXT_SHA256` and the format :data:`META_FORMAT`, and the message must
    decrypt under exactly ``expected_context`` (:meth:`Envelope.decrypt_bytes`: nothing is
    returned unless all of it authenticates); any failure raises the one opaque
    :class:`~securepipe.errors.DecryptionError`. At most 64 MiB (use :func:`download_sample`
    for more).
    """
    if not isinstance(envelope, Envelope):
        raise InvalidParameterError("envelope must be an Envelope")
    if not isinstance(expected_context, SampleContext | BatchContext):
        raise InvalidParameterError("expected_context must be a SampleContext or BatchContext")
    if not isinstance(message, bytes):
        raise InvalidParameterError("message must be bytes")
    _check_transfer(metadata or {}, hashlib.sha256(message).hexdigest(), expected_context)
    return envelope.decrypt_bytes(message, expected_context)


def _check_transfer(metadata: Mapping[str, str], sha256_hex: str,
                    expected_context: BindingContext) -> None:
    """The ciphertext arrived as uploaded (its recorded digest) in a format this kit reads;
    else the opaque DecryptionError (transfer integrity only: decryption authenticates)."""
    recorded = metadata.get(META_CIPHERTEXT_SHA256)
    if (
        not isinstance(recorded, str)
        or not hmac.compare_digest(recorded.encode(), sha256_hex.encode())
        or metadata.get(META_FORMAT) != expected_context.format_version
    ):
        raise DecryptionError()


# -- internals ---------------------------------------------------------------------------------


def _require_session(session: object) -> None:
    if not isinstance(session, boto3.Session):
        raise InvalidParameterError("session must be a boto3.Session")


def _sha256_file(path: Path) -> tuple[str, str]:
    """Hex and base64 SHA-256 of a file (base64 is the form S3's ``ChecksumSHA256`` takes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest(), base64.b64encode(digest.digest()).decode("ascii")


def _upload_multipart(
    s3: Any, path: Path, bucket: str, key: str, extra: dict[str, Any], threshold: int
) -> str | None:
    """Multipart upload with boto3's ``upload_file``; returns the new object's version id.

    s3transfer refuses ``BucketKeyEnabled`` in ``ExtraArgs`` (boto/s3transfer#355), so a handler
    on this (private) client adds it to CreateMultipartUpload, where S3 takes the encryption
    settings of a multipart upload. ``upload_file`` returns nothing: the version id is read from
    the CompleteMultipartUpload response.
    """
    captured: dict[str, str | None] = {}

    def add_bucket_key(params: dict[str, Any], **_: Any) -> None:
        params["BucketKeyEnabled"] = True

    def keep_version(parsed: dict[str, Any], **_: Any) -> None:
        captured["version_id"] = parsed.get("VersionId")

    events = s3.meta.events
    for operation in ("CreateMultipartUpload", "PutObject"):
        events.register(f"before-parameter-build.s3.{operation}", add_bucket_key)
    for operation in ("CompleteMultipartUpload", "PutObject"):
        events.register(f"after-call.s3.{operation}", keep_version)
    s3.upload_file(
        str(path),
        bucket,
        key,
        ExtraArgs={**extra, "ChecksumAlgorithm": "SHA256"},  # per-part SHA-256, checked by S3
        Config=TransferConfig(multipart_threshold=threshold),
    )
    return captured.get("version_id")
