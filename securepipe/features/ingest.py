"""Step 4: crash-safe ingest that keeps features, not raw recordings.

For each encrypted upload under ``raw/<contractor>/<sample_id>``:

1. **decrypt** it in memory (bound to exactly that contractor and sample; an object larger
   than the audio policy allows is quarantined without being read);
2. **validate** the audio (:mod:`securepipe.features.audio`); a failure sends the ciphertext to
   ``quarantine/<contractor>/<sample_id>`` with its reason, and it is counted, never dropped;
3. **extract** features under a versioned :class:`~securepipe.features.extract.FeatureSpec`;
4. **encrypt** the features under their own context and purpose and **store** them in the
   features bucket (a conditional write: it never replaces features already there unless they
   are not this upload's: made from another raw version, unreadable, or of another spec), then
   **verify** they read back byte for byte;
5. **archive** the original, only when its record demands it (legal hold or compliance flag),
   re-encrypted under the archive key and written by the archive role, in an archival storage
   class, under Object Lock legal hold where the record says so;
6. **delete** the raw object, *every version* (a plain DELETE on a versioned bucket only adds a
   delete marker), and only now: never before the features are stored and verified. What is
   deleted is exactly the versions listed before step 1, and step 1 reads the current one of
   them, so a version uploaded meanwhile is never deleted unprocessed.

A batch lists its raw versions once per contractor prefix; a new sample whose key has one
version then costs five S3 calls (head for the consent gate, read, store, read back, delete; one
delete per version), two DynamoDB calls for the consent gate and one for its re-check, and
its KMS calls (one Decrypt; one GenerateDataKey unless per-speaker keys are used). The raw
bucket must be versioned (:func:`securepipe.encryption.hardening.apply_bucket_hardening` does it): a
sample in an unversioned bucket fails loudly rather than risk deleting an unprocessed upload.

Every step writes an audit record (``securepipe.audit.records`` logger, JSON through
:class:`securepipe.audit.records.JsonAuditFormatter`). The pipeline is idempotent: a re-run after a
crash
at any step skips what is done (verified features are not stored twice, an archived original
is not archived twice) and finishes the rest, leaving exactly one feature object and no raw
version. Batches take any :class:`concurrent.futures.Executor` (threads, processes, or a cluster
engine's executor such as Dask's ``Client.get_executor()``) and a picklable session factory.

Step 5 adds three things. **Consent gates every sample**, in every configuration: before a
sample is read, the consent registry (:attr:`IngestConfig.consent_table`) must admit its
speaker (:meth:`~securepipe.retention.consent.ConsentRegistry.admit`); a speaker who is
unknown, withdrew, is being erased or erased, or whose term has ended is ``refused`` for that
sample alone (reported with the reason, the raw upload left for retention or erasure), and the
rest of the batch goes on. The speaker is the item's, or the one the upload named in its
metadata; an upload naming nobody, or a different speaker than the item, is refused. Every
quarantine copy, feature and archive object names its speaker and sample in its metadata
(:data:`META_SPEAKER`, :data:`META_SAMPLE`), and the registry indexes the sample, so retention
and erasure find everything derived from a speaker. And with
:attr:`IngestConfig.speaker_keys`, features and archive copies are encrypted with the speaker's
own key (:class:`~securepipe.retention.shredding.SpeakerEnvelope`) instead of the shared one, so
shredding that key makes every copy unreadable (:mod:`securepipe.retention.shredding`).

**Fenced against a concurrent erasure.** After its last write for a sample (features, archive
or quarantine copy) and before it deletes the raw upload, ingest re-reads the speaker's consent
(strongly consistent GetItem); if the speaker is no longer admitted (an erasure began after the
gate), it deletes exactly the versions this run wrote and the sample is ``refused``
(``revoked-after-write``). Why the gate before and this re-check after cover every interleaving
with :func:`~securepipe.retention.erasure.erase_speaker`:
:func:`securepipe.encryption.upload.fence_write`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import boto3
from botocore.exceptions import ClientError

from securepipe import clock as _clock
from securepipe.encryption.envelope import (
    Envelope,
    EnvelopeConfig,
    SampleContext,
    botocore_session_of,
)
from securepipe.encryption.hardening import sse_kms_put_args
from securepipe.encryption.upload import (
    META_SAMPLE,
    META_SPEAKER,
    fence_write,
    open_sample,
    sample_key,
)
from securepipe.errors import (
    ConsentError,
    DecryptionError,
    EncryptionError,
    IngestError,
    InvalidAudioError,
    InvalidParameterError,
)
from securepipe.features.audio import AudioPolicy, validate_wav
from securepipe.features.extract import (
    MEL_SPEC,
    FeatureSpec,
    extract,
    from_bytes,
    one_blas_thread,
    to_bytes,
)
from securepipe.ids import (
    check_int,
    check_session_factory,
    validate_contractor_id,
    validate_purpose,
    validate_sample_id,
    validate_speaker_id,
)
from securepipe.retention.consent import DEFAULT_TABLE, ConsentRegistry
from securepipe.retention.shredding import SpeakerKeyConfig, SpeakerKeys

AUDIT = logging.getLogger("securepipe.audit.records")
STEPS = ("decrypt", "validate", "extract", "store", "verify", "archive", "fence", "delete")
QUARANTINE_PREFIX = "quarantine"
FEATURES_PREFIX = "features"
ARCHIVE_PREFIX = "archive"
META_REASON = "securepipe-quarantine-reason"
#: Object metadata with the SHA-256 of the stored ciphertext (features, archive copies).
META_CIPHERTEXT_SHA256 = "securepipe-ciphertext-sha256"
#: Feature-object metadata naming the raw object version the features were extracted from.
META_SOURCE_VERSION = "securepipe-source-version"


@dataclass(frozen=True)
class IngestItem:
    """One upload to ingest, with what its record demands (from the manifest or a registry)."""

    contractor: str
    sample_id: str
    legal_hold: bool = False
    archive_required: bool = False
    speaker: str | None = None

    def __post_init__(self) -> None:
        validate_contractor_id(self.contractor)
        validate_sample_id(self.sample_id)
        if self.speaker is not None:
            validate_speaker_id(self.speaker)


def items_from_manifest(manifest: Any) -> list[IngestItem]:
    """An :class:`IngestItem` per utterance of a :class:`~securepipe.data.dataset.Manifest`."""
    return [IngestItem(u.contractor, u.sample_id, bool(u.legal_hold), bool(u.archive_required),
                       speaker=u.speaker)
            for u in manifest.utterances]


@dataclass(frozen=True)
class IngestConfig:
    """Where things live and what is accepted; checked when built.

    The archive uses its own KMS key (``archive_key_arn``); pass an archive-role session to
    :func:`ingest_sample` so the pipeline's own role never writes there.

    ``speaker_keys`` (optional): where per-speaker keys live. When given, every item must name
    its speaker, and its features and archive copy are encrypted with that speaker's
    :class:`~securepipe.retention.shredding.SpeakerEnvelope` (key material is created on first use,
    only
    while consent is active) instead of ``key_arn`` / ``archive_key_arn``. The S3 server-side
    encryption headers stay as they are (the bucket policies pin those keys).

    ``anchor_bucket`` (the kit's audit bucket; pass it): the consent gate also refuses a
    speaker whose erasure is anchored there, even if a restored registry item says ``active``
    (:class:`~securepipe.retention.consent.ConsentRegistry`). ``speaker_keys`` must name the
    same bucket (refused otherwise). Optional only so that a deployment whose erasure anchors
    live elsewhere can still ingest; without it a registry restore readmits an erased speaker.
    """

    raw_bucket: str
    features_bucket: str
    archive_bucket: str
    key_arn: str
    archive_key_arn: str
    spec: FeatureSpec = MEL_SPEC
    audio: AudioPolicy = field(default_factory=AudioPolicy)
    upload_purpose: str = "speech-model-training"
    features_purpose: str = "speech-features"
    archive_purpose: str = "legal-archive"
    archive_storage_class: str = "DEEP_ARCHIVE"
    speaker_keys: SpeakerKeyConfig | None = None
    consent_table: str = DEFAULT_TABLE
    anchor_bucket: str | None = None

    def __post_init__(self) -> None:
        for name in ("upload_purpose", "features_purpose", "archive_purpose"):
            validate_purpose(getattr(self, name))
        if self.archive_storage_class not in ("GLACIER", "DEEP_ARCHIVE", "GLACIER_IR"):
            raise InvalidParameterError("archive_storage_class must be an archival class")
        if not isinstance(self.spec, FeatureSpec):
            raise InvalidParameterError("spec must be a FeatureSpec")
        if self.speaker_keys is not None and not isinstance(self.speaker_keys, SpeakerKeyConfig):
            raise InvalidParameterError("speaker_keys must be a SpeakerKeyConfig or None")
        if (self.speaker_keys is not None and self.anchor_bucket is not None
                and self.speaker_keys.anchor_bucket != self.anchor_bucket):
            # key creation would then skip the anchors the consent gate reads
            raise InvalidParameterError(
                "speaker_keys.anchor_bucket must be the config's anchor_bucket "
                f"({self.anchor_bucket!r}), got {self.speaker_keys.anchor_bucket!r}")
        if not isinstance(self.audio, AudioPolicy):
            raise InvalidParameterError("audio must be an AudioPolicy")
        # A policy that contradicts the spec would fail on every upload: refuse it here.
        if self.audio.sample_rate != self.spec.sample_rate:
            raise InvalidParameterError(
                f"audio policy accepts {self.audio.sample_rate} Hz but the feature spec needs "
                f"{self.spec.sample_rate} Hz (add the rate to resample_from instead)")
        if self.audio.min_duration_s * self.audio.sample_rate < self.spec.n_fft:
            raise InvalidParameterError(
                f"min_duration_s {self.audio.min_duration_s} s is shorter than one FFT window "
                f"({self.spec.n_fft} samples at {self.spec.sample_rate} Hz)")

    def features_key(self, item: IngestItem) -> str:
        return (f"{FEATURES_PREFIX}/{item.contractor}/{item.sample_id}/"
                f"{self.spec.kind}-{self.spec.version}")

    def archive_key(self, item: IngestItem) -> str:
        return f"{ARCHIVE_PREFIX}/{item.contractor}/{item.sample_id}"


Status = Literal["processed", "quarantined", "missing", "failed", "refused"]


@dataclass(frozen=True)
class SampleOutcome:
    """What happened to one sample in this run."""

    item: IngestItem
    status: Status
    reason: str | None = None
    archived: bool = False
    features_key: str | None = None
    raw_versions_deleted: int = 0
    resumed: bool = False


@dataclass(frozen=True)
class RunReport:
    """Counts for a batch, and every outcome (nothing is dropped silently)."""

    outcomes: tuple[SampleOutcome, ...]

    def count(self, status: Status) -> int:
        return sum(o.status == status for o in self.outcomes)

    @property
    def quarantine_reasons(self) -> dict[str, int]:
        return dict(Counter(o.reason or "?" for o in self.outcomes if o.status == "quarantined"))

    def summary(self) -> dict[str, int]:
        return {
            "samples": len(self.outcomes),
            "processed": self.count("processed"),
            "quarantined": self.count("quarantined"),
            "archived": sum(o.archived for o in self.outcomes),
            "missing": self.count("missing"),
            "failed": self.count("failed"),
            "refused": self.count("refused"),
        }


class _Clients:
    """The session's clients and envelopes, made once per session."""

    def __init__(self, session: boto3.Session, archive_session: boto3.Session | None,
                 config: IngestConfig) -> None:
        self.session = session
        self.s3 = session.client("s3")
        self.envelope = Envelope(session, EnvelopeConfig(key_arns=config.key_arn))
        archive = archive_session or session
        self.archive_s3 = archive.client("s3")
        self.archive_envelope = Envelope(archive, EnvelopeConfig(key_arns=config.archive_key_arn))
        self._speaker_keys: SpeakerKeys | None = None
        self._archive_speaker_keys: SpeakerKeys | None = None
        if config.speaker_keys is not None:
            self._speaker_keys = config.speaker_keys.keys(session)
            self._archive_speaker_keys = config.speaker_keys.keys(archive)
        self.registry = ConsentRegistry(session, config.consent_table, create=False,
                                        anchor_bucket=config.anchor_bucket)
        self._envelopes: dict[tuple[str, str], Envelope] = {}
        self._ensured: set[tuple[str, str]] = set()

    def features_envelope(self, item: IngestItem, *, create: bool = False) -> Envelope:
        """The shared envelope, or the item's speaker envelope under ``speaker_keys``."""
        return self._speaker_envelope("features", self._speaker_keys, item, create,
                                      self.envelope)

    def archive_envelope_for(self, item: IngestItem) -> Envelope:
        return self._speaker_envelope("archive", self._archive_speaker_keys, item, True,
                                      self.archive_envelope)

    def _speaker_envelope(self, role: str, keys: SpeakerKeys | None, item: IngestItem,
                          create: bool, shared: Envelope) -> Envelope:
        if keys is None:
            return shared
        if item.speaker is None:   # only a resumed check can get here: it cannot verify
            raise InvalidParameterError(f"{item.sample_id}: no speaker, no speaker key")
        slot = (role, item.speaker)
        if create and slot not in self._ensured:
            # Key material is created only to encrypt; a read with no key just fails to decrypt.
            keys.ensure(item.speaker)
            self._ensured.add(slot)
        if slot not in self._envelopes:
            self._envelopes[slot] = keys.envelope(item.speaker)
        return self._envelopes[slot]


class _Fence:
    """What one ingest attempt wrote for its speaker, and when consent admitted it: checked
    again after the writes (:func:`~securepipe.encryption.upload.fence_write`)."""

    def __init__(self) -> None:
        self.at = _clock.now()
        self.writes: list[tuple[Any, str, str, str | None]] = []

    def wrote(self, s3: Any, bucket: str, key: str, response: Any) -> None:
        version = response.get("VersionId") if isinstance(response, dict) else None
        self.writes.append((s3, bucket, key, version))

    def check(self, clients: _Clients, item: IngestItem) -> None:
        """Raise ConsentError (``revoked-after-write``) after deleting this run's writes if
        the speaker is no longer admitted."""
        if item.speaker is None or not self.writes:
            return

        def delete() -> None:
            for s3, bucket, key, version in self.writes:
                s3.delete_object(Bucket=bucket, Key=key,
                                 **({"VersionId": version} if version else {}))
                _audit("ingest.fence-delete", bucket, key, "denied", item,
                       reason="consent refused the sample after it was written")

        fence_write(clients.registry, item.speaker, self.at, delete,
                    ", ".join(f"s3://{b}/{k}" for _, b, k, _ in self.writes))

    def before_lock(self, clients: _Clients, item: IngestItem) -> None:
        """Re-check consent immediately before a write under S3 Object Lock (a legal hold):
        the fence's delete cannot remove a locked version, so an erasure or withdrawal that
        landed since the gate refuses the write here (``ConsentError``, after deleting this
        run's earlier writes). Object Lock:
        https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-lock.html"""
        if item.speaker is None:
            return
        if self.writes:
            self.check(clients, item)
        else:
            clients.registry.check_consent(item.speaker, self.at)


@dataclass(frozen=True)
class RawVersion:
    """One entry of ListObjectVersions for a raw key: a version or a delete marker."""

    version_id: str
    is_latest: bool
    delete_marker: bool = False


def ingest_sample(
    session: boto3.Session,
    config: IngestConfig,
    item: IngestItem,
    *,
    archive_session: boto3.Session | None = None,
    after_step: Callable[[str, IngestItem], None] | None = None,
    listed: Sequence[RawVersion] | None = None,
    _clients: _Clients | None = None,
) -> SampleOutcome:
    """Ingest one upload; safe to call again after a crash at any point.

    ``after_step(step, item)`` is called after each step in :data:`STEPS` completes (tests use
    it to inject crashes). Failures that leave nothing lost (an S3 error, say) raise
    :class:`~securepipe.errors.IngestError`; the raw object is then still there.

    The raw key's versions are listed once (or passed in as ``listed``, from a batch's single
    listing). The pipeline reads exactly the current one of those versions and, once its
    features are stored and verified, deletes exactly those versions: a version uploaded while
    the sample was being processed is never deleted unprocessed; the next run picks it up.
    Each feature object records the raw version it came from, so a re-run after a crash keeps
    features that match the raw upload and replaces features of an older upload.

    Two runs of one sample at once (a queue delivering an event twice, a batch beside a worker)
    are harmless: when a step fails because the raw versions changed since they were listed
    (the other run finished and deleted them), the sample starts over from a fresh listing, up
    to :data:`RESTARTS` times, and ends as the other run left it.
    """
    clients = _clients or _Clients(session, archive_session, config)
    raw_key = sample_key(item.contractor, item.sample_id)
    for attempt in range(RESTARTS + 1):
        seen: list[Sequence[RawVersion]] = []
        try:
            return _ingest_attempt(clients, config, item, after_step, listed, seen)
        except IngestError as failure:
            if attempt == RESTARTS or not seen:
                raise
            try:
                fresh = _versions(clients.s3, config.raw_bucket, raw_key)
            except ClientError:
                raise failure from None
            if set(fresh) == set(seen[0]):
                raise   # nothing moved under this run: the failure is its own
            listed = fresh
    raise AssertionError("unreachable")


RESTARTS = 2


def _ingest_attempt(clients: _Clients, config: IngestConfig, item: IngestItem,
                    after_step: Callable[[str, IngestItem], None] | None,
                    listed: Sequence[RawVersion] | None,
                    seen: list[Sequence[RawVersion]]) -> SampleOutcome:
    """One pass of :func:`ingest_sample` over one listing of the raw key (put in ``seen``)."""
    done = after_step or (lambda step, it: None)
    raw_key = sample_key(item.contractor, item.sample_id)
    feat_key = config.features_key(item)
    try:
        versions = (list(listed) if listed is not None
                    else _versions(clients.s3, config.raw_bucket, raw_key))
        seen.append(versions)
        if not versions:
            if _features_verified(clients, config, item, feat_key):
                return SampleOutcome(item, "processed", features_key=feat_key, resumed=True,
                                     archived=_archived(clients, config, item))
            quarantined = _quarantine_reason(clients, config, item)
            if quarantined is not None:   # an earlier run quarantined it: say so again
                return SampleOutcome(item, "quarantined", reason=quarantined, resumed=True)
            _audit("ingest.missing", config.raw_bucket, raw_key, "missing", item)
            return SampleOutcome(item, "missing", reason="no raw upload and no features")
        current = next((v for v in versions if v.is_latest), None)
        if current is None or current.delete_marker:
            raise IngestError(f"{raw_key}: its current version is a delete marker, so there is "
                              "nothing current to ingest; older versions were left in place "
                              "(erase or restore them, then re-run)")
        if current.version_id == "null":
            raise IngestError(f"{raw_key}: the raw bucket is not versioned, so one upload of "
                              "this sample cannot be told from the next; nothing was read or "
                              "deleted (apply_bucket_hardening enables versioning)")
        fence = _Fence()
        gated = _consent_gate(clients, config, item, raw_key, current, fence.at)
        if isinstance(gated, SampleOutcome):
            return gated
        item = gated
        needs_archive = item.legal_hold or item.archive_required
        archived = needs_archive and _archived(clients, config, item)
        resumed = False
        try:
            data = _read_raw(clients, config, item, raw_key, current.version_id)
        except DecryptionError:
            return _quarantine(clients, config, item, raw_key, versions, current, fence,
                               "decrypt-failed")
        if data is None:   # larger than any upload the policy accepts: never read
            return _quarantine(clients, config, item, raw_key, versions, current, fence,
                               "too-large")
        done("decrypt", item)
        try:
            audio = validate_wav(data, config.audio)
        except InvalidAudioError as exc:
            return _quarantine(clients, config, item, raw_key, versions, current, fence,
                               exc.reason)
        done("validate", item)
        try:
            matrix = extract(audio.samples, audio.sample_rate, config.spec)
            blob = to_bytes(matrix, config.spec)
        except Exception as exc:
            # Extraction is a function of the bytes alone: what fails once fails on every
            # re-run, so the upload is quarantined rather than left to jam each batch.
            return _quarantine(clients, config, item, raw_key, versions, current, fence,
                               f"extract-failed: {type(exc).__name__}")
        del audio, matrix   # only the plaintext (for an archive) and the blob are kept
        done("extract", item)
        context = SampleContext(item.contractor, item.sample_id, config.features_purpose)
        message = clients.features_envelope(item, create=True).encrypt_bytes(blob, context)
        stored = _put_features(clients, config, item, feat_key, message, current,
                               {"IfNoneMatch": "*"}, fence)
        if not stored:
            # Something is already there: this sample's features from a run that crashed
            # before its delete (keep them: one feature object, not two), or features that
            # are not this upload's (another raw version, unreadable, another spec):
            # replace exactly the object just checked, never one written meanwhile.
            resumed, etag = _features_check(clients, config, item, feat_key,
                                            source_version=current.version_id)
            if not resumed:
                condition = {"IfMatch": etag} if etag else {"IfNoneMatch": "*"}
                if not _put_features(clients, config, item, feat_key, message, current,
                                     condition, fence):
                    raise IngestError(f"{feat_key}: changed while this run checked it (is "
                                      "another run ingesting this sample?); nothing was "
                                      "deleted; re-run to resume")
                stored = True
        if stored:
            done("store", item)
            body = clients.s3.get_object(Bucket=config.features_bucket,
                                         Key=feat_key)["Body"].read()
            if not hmac.compare_digest(body, message):
                raise IngestError(f"{feat_key}: stored features did not read back byte "
                                  "for byte")
            done("verify", item)
        if needs_archive and not archived:
            _archive(clients, config, item, data, fence)
            archived = True
            done("archive", item)
        fence.check(clients, item)   # after every write of this run, before the raw goes
        done("fence", item)
        deleted = _delete_listed(clients.s3, config.raw_bucket, raw_key, versions)
        _audit("ingest.delete-raw", config.raw_bucket, raw_key, "ok", item, None,
               reason=f"{deleted} versions")
        done("delete", item)
        return SampleOutcome(item, "processed", archived=archived, features_key=feat_key,
                             raw_versions_deleted=deleted, resumed=resumed)
    except ClientError as exc:
        _audit("ingest.error", config.raw_bucket, raw_key, "error", item)
        raise IngestError(f"{raw_key}: {exc.response.get('Error', {}).get('Code')}; nothing "
                          "was deleted that is not safely stored; re-run to resume") from exc
    except ConsentError as exc:   # consent changed between the gate and a key's creation
        _audit("ingest.refused", config.raw_bucket, raw_key, "denied", item, reason=exc.reason)
        return SampleOutcome(item, "refused", reason=str(exc))
    except EncryptionError as exc:
        _audit("ingest.error", config.raw_bucket, raw_key, "error", item)
        raise IngestError(f"{raw_key}: could not encrypt ({exc}); nothing was deleted that is "
                          "not safely stored") from exc
    except IngestError:
        _audit("ingest.error", config.raw_bucket, raw_key, "error", item)
        raise


def _consent_gate(clients: _Clients, config: IngestConfig, item: IngestItem, raw_key: str,
                  current: RawVersion, at: Any) -> IngestItem | SampleOutcome:
    """The item with its speaker if consent admits the sample now; else a ``refused`` outcome.

    The speaker is the item's or the one the upload's metadata names (HeadObject on exactly the
    listed version); nobody named, or two different speakers, is refused.
    """
    head = clients.s3.head_object(Bucket=config.raw_bucket, Key=raw_key,
                                  VersionId=current.version_id)
    meta = {k.lower(): v for k, v in (head.get("Metadata") or {}).items()}
    named = meta.get(META_SPEAKER)
    speaker = item.speaker or named
    reason: str | None = None
    if speaker is None:
        reason = "unknown: neither the item nor the upload names a speaker"
    elif named is not None and named != speaker:
        reason = f"conflict: the item names {speaker!r}, the upload {named!r}"
    if reason is None:
        assert speaker is not None
        try:
            clients.registry.admit(speaker, item.sample_id, contractor=item.contractor,
                                   at=at)   # the index names exactly the key's sample
        except (ConsentError, InvalidParameterError) as exc:
            reason = str(exc)
    if reason is not None:
        _audit("ingest.refused", config.raw_bucket, raw_key, "denied", item, reason=reason)
        return SampleOutcome(item, "refused", reason=reason)
    if item.speaker is None:
        item = IngestItem(item.contractor, item.sample_id, item.legal_hold,
                          item.archive_required, speaker=speaker)
    return item


def _put_features(clients: _Clients, config: IngestConfig, item: IngestItem, key: str,
                  message: bytes, source: RawVersion, condition: dict[str, str],
                  fence: _Fence) -> bool:
    """PutObject the encrypted features as a conditional write (``If-None-Match: *``: only if
    nothing is there; ``If-Match: <etag>``: only over that object); False if the condition
    failed. https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html
    """
    try:
        response = clients.s3.put_object(
            Bucket=config.features_bucket, Key=key, Body=message, ChecksumAlgorithm="SHA256",
            Metadata={"securepipe-feature-spec": f"{config.spec.kind}-{config.spec.version}",
                      META_SOURCE_VERSION: source.version_id,
                      # no plaintext digest here: it would let anyone who holds the
                      # recording confirm it is in the bucket
                      **_object_metadata(item, message)},
            **sse_kms_put_args(config.key_arn), **condition)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed",
                                                          "ConditionalRequestConflict"):
            return False
        raise
    fence.wrote(clients.s3, config.features_bucket, key, response)
    _audit("ingest.store-features", config.features_bucket, key, "ok", item, len(message))
    return True


def _object_metadata(item: IngestItem, message: bytes) -> dict[str, str]:
    """Metadata every derived object carries: its speaker and its ciphertext digest."""
    meta = {META_CIPHERTEXT_SHA256: hashlib.sha256(message).hexdigest(),
            META_SAMPLE: item.sample_id}
    if item.speaker is not None:
        meta[META_SPEAKER] = item.speaker
    return meta


def _versions(s3: Any, bucket: str, key: str) -> list[RawVersion]:
    """Every version and delete marker of exactly ``key`` (ListObjectVersions)."""
    return list_raw_versions(s3, bucket, [key]).get(key, [])


def list_raw_versions(s3: Any, bucket: str, keys: Iterable[str]) -> dict[str, list[RawVersion]]:
    """Every version and delete marker of each key, listed once per common prefix.

    One ListObjectVersions page per 1,000 entries under each ``raw/<contractor>/`` prefix
    (https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectVersions.html), not one
    call per sample: the raw prefix only holds uploads still waiting for ingest. A prefix with
    a single wanted key is listed as that key alone.
    """
    wanted = set(keys)
    by_prefix: dict[str, list[str]] = {}
    for key in wanted:
        by_prefix.setdefault(key.rsplit("/", 1)[0] + "/" if "/" in key else key, []).append(key)
    # a lone key is listed on its own, not with everything else under its prefix
    targets = sorted(p if len(ks) > 1 else ks[0] for p, ks in by_prefix.items())
    found: dict[str, list[RawVersion]] = {}
    for prefix in targets:
        pages = s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix)
        for page in pages:
            for marker, entries in ((False, page.get("Versions", [])),
                                    (True, page.get("DeleteMarkers", []))):
                for entry in entries:
                    if entry["Key"] in wanted:
                        found.setdefault(entry["Key"], []).append(RawVersion(
                            str(entry["VersionId"]), bool(entry.get("IsLatest")), marker))
    return found


def _delete_listed(s3: Any, bucket: str, key: str, versions: Sequence[RawVersion]) -> int:
    """Delete exactly the listed versions and delete markers of ``key``; returns how many.

    The current version goes last: a crash part-way leaves it current, so a re-run resumes on
    the same upload (an older version or a delete marker never becomes current meanwhile).
    """
    for version in sorted(versions, key=lambda v: v.is_latest):
        s3.delete_object(Bucket=bucket, Key=key, VersionId=version.version_id)
    return len(versions)


def ciphertext_limit(policy: AudioPolicy) -> int:
    """The largest raw object ingest reads: the policy's byte limit plus the Encryption SDK's
    message overhead (a header of at most 64 KiB, and 32 bytes per frame of 2 KiB or more).
    https://docs.aws.amazon.com/encryption-sdk/latest/developer-guide/message-format.html"""
    return policy.byte_limit + policy.byte_limit // 64 + 65_536


def _read_raw(clients: _Clients, config: IngestConfig, item: IngestItem, key: str,
              version_id: str) -> bytes | None:
    """The plaintext of exactly ``version_id`` of the upload, decrypted in memory under the
    sample's context (:func:`~securepipe.encryption.upload.open_sample`); None, without reading
    the body, if the object is larger than :func:`ciphertext_limit` allows.

    In memory, not through a file: the whole plaintext is validated and extracted anyway, it is
    bounded by the policy, and a temporary file cost a flush and an ``fsync`` per sample (about
    13 ms here, six times the extraction) for bytes deleted a moment later."""
    response = clients.s3.get_object(Bucket=config.raw_bucket, Key=key, VersionId=version_id)
    body = response["Body"]
    limit = ciphertext_limit(config.audio)
    try:
        if int(response.get("ContentLength", 0)) > limit:
            return None
        message = body.read(limit + 1)
    finally:
        body.close()
    if len(message) > limit:   # the length header lied
        return None
    context = SampleContext(item.contractor, item.sample_id, config.upload_purpose)
    data = open_sample(clients.envelope, message, response.get("Metadata"), context)
    _audit("ingest.read-raw", config.raw_bucket, key, "ok", item, len(data))
    return data


def _features_verified(clients: _Clients, config: IngestConfig, item: IngestItem,
                       key: str) -> bool:
    """True if the feature object exists, decrypts under its context and parses as the spec."""
    return _features_check(clients, config, item, key)[0]


def _features_check(clients: _Clients, config: IngestConfig, item: IngestItem, key: str,
                    source_version: str | None = None) -> tuple[bool, str | None]:
    """``(verified, etag)``: whether the feature object decrypts under its context, parses as
    the spec (and, given ``source_version``, was made from that raw version); and the ETag of
    the object checked (None if there is none)."""
    try:
        response = clients.s3.get_object(Bucket=config.features_bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return False, None
        raise
    etag = response.get("ETag")
    body = response["Body"].read()
    if (source_version is not None
            and (response.get("Metadata") or {}).get(META_SOURCE_VERSION) != source_version):
        return False, etag
    context = SampleContext(item.contractor, item.sample_id, config.features_purpose)
    try:
        blob = clients.features_envelope(item).decrypt_bytes(body, context)
        _, spec = from_bytes(blob)
    except (DecryptionError, InvalidParameterError):
        return False, etag
    return spec == config.spec, etag


def _quarantine_reason(clients: _Clients, config: IngestConfig,
                       item: IngestItem) -> str | None:
    """The reason recorded on this sample's quarantine copy, or None if there is none."""
    try:
        head = clients.s3.head_object(
            Bucket=config.raw_bucket, Key=f"{QUARANTINE_PREFIX}/{item.contractor}/{item.sample_id}")
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return None
        raise
    return str((head.get("Metadata") or {}).get(META_REASON, "unknown"))


def _archived(clients: _Clients, config: IngestConfig, item: IngestItem) -> bool:
    try:
        clients.archive_s3.head_object(Bucket=config.archive_bucket, Key=config.archive_key(item))
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


def _archive(clients: _Clients, config: IngestConfig, item: IngestItem, wav: bytes,
             fence: _Fence) -> None:
    """Re-encrypt the original under the archive key, write it in an archival class."""
    context = SampleContext(item.contractor, item.sample_id, config.archive_purpose)
    message = clients.archive_envelope_for(item).encrypt_bytes(wav, context)
    key = config.archive_key(item)
    extra: dict[str, Any] = {}
    if item.legal_hold:
        extra["ObjectLockLegalHoldStatus"] = "ON"
        fence.before_lock(clients, item)    # a locked version cannot be fenced away after
    response = clients.archive_s3.put_object(
        Bucket=config.archive_bucket, Key=key, Body=message,
        StorageClass=config.archive_storage_class, ChecksumAlgorithm="SHA256",
        Metadata={"securepipe-reason": "legal-hold" if item.legal_hold else "compliance",
                  **_object_metadata(item, message)},
        **sse_kms_put_args(config.archive_key_arn), **extra)
    fence.wrote(clients.archive_s3, config.archive_bucket, key, response)
    _audit("ingest.archive", config.archive_bucket, key, "ok", item, len(message))


def _quarantine(clients: _Clients, config: IngestConfig, item: IngestItem, raw_key: str,
                versions: Sequence[RawVersion], current: RawVersion, fence: _Fence,
                reason: str) -> SampleOutcome:
    """Copy the ciphertext that failed to ``quarantine/`` with its reason, then remove the
    listed raw versions."""
    target = f"{QUARANTINE_PREFIX}/{item.contractor}/{item.sample_id}"
    source = {"Bucket": config.raw_bucket, "Key": raw_key}
    if current.version_id != "null":
        source["VersionId"] = current.version_id
    response = clients.s3.copy_object(
        Bucket=config.raw_bucket, Key=target, CopySource=source,
        Metadata={META_REASON: reason, META_SAMPLE: item.sample_id,
                  **({META_SPEAKER: item.speaker} if item.speaker else {})},
        MetadataDirective="REPLACE",
        **sse_kms_put_args(config.key_arn))
    fence.wrote(clients.s3, config.raw_bucket, target, response)
    clients.s3.head_object(Bucket=config.raw_bucket, Key=target)  # it is there before we delete
    fence.check(clients, item)   # the speaker is still admitted: only now does the raw go
    deleted = _delete_listed(clients.s3, config.raw_bucket, raw_key, versions)
    _audit("ingest.quarantine", config.raw_bucket, target, "quarantined", item, None,
           reason=reason)
    return SampleOutcome(item, "quarantined", reason=reason, raw_versions_deleted=deleted)


def _audit(action: str, bucket: str, key: str, outcome: str, item: IngestItem,
           size: int | None = None, reason: str | None = None) -> None:
    """One audit record per step, in :data:`securepipe.audit.records.AUDIT_FIELDS` terms."""
    AUDIT.info(action, extra={
        "principal": "securepipe-ingest", "action": action, "bucket": bucket, "key": key,
        "outcome": {"ok": "allowed", "quarantined": "allowed", "missing": "error"}.get(
            outcome, outcome),
        "purpose": "ingest", "contractor": item.contractor, "sample_id": item.sample_id,
        "bytes": size, "reason": reason})


# -- batches --------------------------------------------------------------------------------

_shared_lock = threading.Lock()
_shared: dict[str, tuple[Any, _Clients]] = {}


def _task(session_factory: Callable[[], boto3.Session],
          archive_factory: Callable[[], boto3.Session] | None,
          config: IngestConfig, item: IngestItem,
          listed: tuple[RawVersion, ...] | None = None,
          pool: int | None = None) -> SampleOutcome:
    """One sample in a worker: clients are made once per worker thread or process."""
    try:
        clients = _worker_clients(session_factory, archive_factory, config, pool)
        return ingest_sample(clients.session, config, item, listed=listed, _clients=clients)
    except IngestError as exc:
        return SampleOutcome(item, "failed", reason=str(exc))
    except Exception as exc:   # anything else is this sample's outcome, never the batch's
        _audit("ingest.error", config.raw_bucket, sample_key(item.contractor, item.sample_id),
               "error", item, reason=type(exc).__name__)
        return SampleOutcome(item, "failed", reason=f"{type(exc).__name__}: {exc}")


def ingest_one(item: IngestItem, config: IngestConfig,
               session_factory: Callable[[], boto3.Session], *,
               archive_session_factory: Callable[[], boto3.Session] | None = None,
               max_pool_connections: int | None = None) -> SampleOutcome:
    """Ingest one upload with clients made once per process; never raises for the sample.

    What :func:`ingest_batch` runs per sample, for callers that schedule samples themselves
    (the event-driven worker, :mod:`securepipe.features.worker`). ``max_pool_connections``:
    see :func:`prepare_clients`.
    """
    return _task(session_factory, archive_session_factory, config, item,
                 pool=max_pool_connections)


def prepare_clients(config: IngestConfig, session_factory: Callable[[], boto3.Session], *,
                    archive_session_factory: Callable[[], boto3.Session] | None = None,
                    max_pool_connections: int | None = None) -> None:
    """Make the process's shared ingest clients now (a worker does it at start-up, so a bad
    profile or key fails before the first message, not on it) rather than on the first sample.

    ``max_pool_connections``: the HTTP connections each client keeps (botocore's
    ``Config(max_pool_connections=...)``, default 10:
    https://docs.aws.amazon.com/botocore/latest/reference/config.html). Give it at least the
    number of threads sharing the clients: with more threads than pooled connections, botocore
    opens a connection for each extra request and closes it after, a TCP and TLS handshake per
    call (https://github.com/boto/botocore/pull/1026). Calls with the same arguments reuse the
    clients (:func:`ingest_one` with the same ``max_pool_connections``).
    """
    _worker_clients(session_factory, archive_session_factory, config, max_pool_connections)


def _worker_clients(session_factory: Callable[[], boto3.Session],
                    archive_factory: Callable[[], boto3.Session] | None,
                    config: IngestConfig, pool: int | None = None) -> _Clients:
    # Compared by equality, not id: a process pool unpickles a new (equal) factory per task,
    # and clients (with their envelopes) are worth making once per worker process. Made once
    # and shared by the process's threads: boto3 clients are thread-safe once made
    # (https://boto3.amazonaws.com/v1/documentation/api/latest/guide/clients.html, "Multithreading
    # or multiprocessing with clients"), the Encryption SDK provider makes its KMS clients in
    # its constructor, and making a set costs about 0.5 s of CPU: once per thread, a worker
    # with 32 samples in flight spent more time making clients than ingesting.
    key = (session_factory, archive_factory, config, pool)
    with _shared_lock:
        cache = _shared.get("clients")
        if cache is None or cache[0] != key:
            session = session_factory()
            archive = archive_factory() if archive_factory else None
            with _pooled(session, pool), _pooled(archive, pool):
                clients = _Clients(session, archive, config)
            _shared["clients"] = cache = (key, clients)
    return cache[1]


@contextmanager
def _pooled(session: boto3.Session | None, pool: int | None) -> Iterator[None]:
    """While the body makes its clients, every client made from ``session`` keeps ``pool``
    connections (the session's default client configuration, which the consent registry's
    clients and the Encryption SDK's KMS clients pick up too); restored after, since a factory
    may hand out a session its caller still uses."""
    if session is None or pool is None:
        yield
        return
    from botocore.config import Config

    check_int(pool, "max_pool_connections", 1, 1024)
    inner = botocore_session_of(session)
    previous = inner.get_default_client_config()
    wanted = Config(max_pool_connections=max(10, pool))
    inner.set_default_client_config(previous.merge(wanted) if previous else wanted)
    try:
        yield
    finally:
        inner.set_default_client_config(previous)


def _list_batch(items: Sequence[IngestItem], config: IngestConfig,
                s3: Any) -> dict[str, list[RawVersion]] | None:
    """The batch's raw versions in one listing per contractor prefix; None if that fails (each
    sample then lists its own key, and reports its own failure)."""
    try:
        return list_raw_versions(s3, config.raw_bucket,
                                 [sample_key(i.contractor, i.sample_id) for i in items])
    except ClientError:
        return None


def ingest_batch(
    items: Iterable[IngestItem],
    config: IngestConfig,
    session_factory: Callable[[], boto3.Session],
    *,
    archive_session_factory: Callable[[], boto3.Session] | None = None,
    executor: Executor | None = None,
    progress: bool = False,
) -> RunReport:
    """Ingest many uploads, optionally spread over an executor; returns every outcome.

    ``session_factory`` (and ``archive_session_factory``) are called once per worker; for a
    process pool or a cluster they must be picklable, e.g. :class:`ProfileSessionFactory`.
    A sample that fails is reported as ``failed`` with the reason and left in place.
    """
    check_session_factory(session_factory)
    if archive_session_factory is not None:
        check_session_factory(archive_session_factory, "archive_session_factory")
    if not isinstance(config, IngestConfig):
        raise InvalidParameterError(f"config must be an IngestConfig, got {type(config).__name__}")
    if isinstance(items, str | bytes) or not isinstance(items, Iterable):
        raise InvalidParameterError("items must be an iterable of IngestItem")
    items = list(items)
    if not all(isinstance(i, IngestItem) for i in items):
        raise InvalidParameterError("items must be an iterable of IngestItem")
    bar = _progress(len(items)) if progress else None
    outcomes: list[SampleOutcome] = []
    try:
        # one BLAS thread: the samples themselves are the parallelism (a process pool's workers
        # keep their own setting)
        with one_blas_thread():
            _run_batch(items, config, session_factory, archive_session_factory, executor, bar,
                       outcomes)
    finally:
        if bar:
            bar.close()
    order = {(i.contractor, i.sample_id): n for n, i in enumerate(items)}
    outcomes.sort(key=lambda o: order[(o.item.contractor, o.item.sample_id)])
    return RunReport(tuple(outcomes))


def _run_batch(items: list[IngestItem], config: IngestConfig,
               session_factory: Callable[[], boto3.Session],
               archive_session_factory: Callable[[], boto3.Session] | None,
               executor: Executor | None, bar: Any, outcomes: list[SampleOutcome]) -> None:
    if executor is None:
        s3 = _worker_clients(session_factory, archive_session_factory, config).s3
    else:
        s3 = session_factory().client("s3")
    listing = _list_batch(items, config, s3)

    def listed(item: IngestItem) -> tuple[RawVersion, ...] | None:
        if listing is None:
            return None
        return tuple(listing.get(sample_key(item.contractor, item.sample_id), ()))

    if executor is None:
        for item in items:
            outcomes.append(_task(session_factory, archive_session_factory, config, item,
                                  listed(item)))
            if bar:
                bar.update(1)
    else:
        futures = [executor.submit(_task, session_factory, archive_session_factory, config,
                                   item, listed(item)) for item in items]
        for future in as_completed(futures):
            outcomes.append(future.result())
            if bar:
                bar.update(1)


def _progress(total: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="ingest", unit="clip")


@dataclass(frozen=True)
class ProfileSessionFactory:
    """A picklable session factory: an AWS profile (and config file), as a worker would use.

    For the sandbox in server mode: ``ProfileSessionFactory(Sandbox.PROFILE, sb.config_file)``.
    """

    profile: str
    config_file: str | None = None
    ca_bundle: str | None = None

    def __call__(self) -> boto3.Session:
        import botocore.session

        bs = botocore.session.Session()
        if self.config_file:
            bs.set_config_variable("config_file", str(self.config_file))
            bs.set_config_variable("credentials_file", os.devnull)
        bs.set_config_variable("profile", self.profile)
        if self.ca_bundle:
            bs.set_config_variable("ca_bundle", str(self.ca_bundle))
        return boto3.Session(botocore_session=bs)


def raw_left(session: boto3.Session, bucket: str) -> int:
    """How many raw object versions (and delete markers) remain under ``raw/``."""
    s3 = session.client("s3")
    total = 0
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix="raw/"):
        total += len(page.get("Versions", [])) + len(page.get("DeleteMarkers", []))
    return total
