"""The retention sweeper: attribute every version to a speaker and a consent record, and delete
what is past its retention date, with an audit record per deletion.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import boto3
from botocore.exceptions import ClientError

from securepipe import clock as _clock
from securepipe.clients import shared_client
from securepipe.encryption.upload import META_SAMPLE
from securepipe.errors import ConsentRecordError, InvalidParameterError, RetentionError
from securepipe.ids import describe_value, validate_bucket_name, validate_speaker_id
from securepipe.retention.consent import BIPA_MAX_DAYS, ConsentRecord, ConsentRegistry
from securepipe.retention.lifecycle import AUDIT, META_SPEAKER, RAW_EXPIRY_DAYS


def sample_speakers(manifest: Any) -> dict[str, str]:
    """The mapping ``<contractor>/<sample_id> -> speaker`` of a
    :class:`~securepipe.data.dataset.Manifest`."""
    return {f"{u.contractor}/{u.sample_id}": u.speaker for u in manifest.utterances}


def _sample_of(key: str) -> tuple[str, str] | None:
    """``(contractor, sample_id)`` a kit key names (``<prefix>/<contractor>/<sample_id>[/...]``)."""
    parts = key.split("/")
    return (parts[1], parts[2]) if len(parts) >= 3 and parts[1] and parts[2] else None


_Mapping = dict[tuple[str, str], set[str]]


def _mapping(registry: ConsentRegistry | None, extra: Mapping[str, str] | None) -> _Mapping:
    """``(contractor, sample_id) -> speakers``: the registry's index of admitted samples, plus
    any caller's (keys ``<contractor>/<sample_id>``; a bare sample id in a caller's mapping is
    refused, since sample ids are unique only per contractor)."""
    out: _Mapping = {}
    if registry is not None:
        for ident, speakers in registry.sample_index().items():
            out.setdefault(ident, set()).update(speakers)
    for name, spk in (extra or {}).items():
        contractor, _, sid = str(name).rpartition("/")
        if not contractor or not sid:
            raise InvalidParameterError(
                f"sample_speakers keys must be '<contractor>/<sample_id>', got {name!r}")
        out.setdefault((contractor, sid), set()).add(spk)
    return out


def _speakers_of(mapping: _Mapping, key: str, sample_id: str | None) -> set[str]:
    """Speakers the index names for an object key (its contractor, and the sample id in its
    metadata or its key)."""
    where = _sample_of(key)
    if where is None:
        return set()
    contractor, key_sid = where
    out: set[str] = set()
    for sid in {s for s in (sample_id, key_sid) if s}:
        out |= mapping.get((contractor, sid), set())
    return out


@dataclass(frozen=True)
class AttributedVersion:
    """One object version or delete marker, the speaker it belongs to, and its lock state.

    ``speaker`` is ``None`` when nothing attributes it; ``conflict`` names a disagreement
    between sources, and ``candidates`` every speaker any source names (neither erasure nor the
    sweeper ever deletes a version whose sources conflict: it is reported unattributed). Sources:
    the object's metadata (``securepipe-speaker``, written by the kit at upload, quarantine,
    ingest and archive), the registry's index of each speaker's samples (by the contractor in
    the key and the sample id in the metadata or the key), a caller's mapping, and for a
    delete marker the versions of its key. ``metadata_sha256`` is the ciphertext digest the
    writer put in the metadata (a claim).
    """

    bucket: str
    key: str
    version_id: str
    kind: Literal["version", "delete-marker"]
    speaker: str | None
    source: str
    conflict: str | None
    candidates: tuple[str, ...]
    size: int | None
    storage_class: str | None
    legal_hold: bool
    lock_mode: str | None
    lock_until: dt.datetime | None
    metadata_sha256: str | None

    def lock_reason(self, at: dt.datetime) -> str | None:
        """Why S3 Object Lock keeps this version at ``at`` (``None`` if nothing does)."""
        if self.legal_hold:
            return "S3 Object Lock legal hold is ON"
        if self.lock_mode and self.lock_until is not None and self.lock_until > at:
            return (f"S3 Object Lock {self.lock_mode} retention until "
                    f"{self.lock_until.isoformat()}")
        return None


def _metadata_problem(by_meta: str | None, known: frozenset[str] | None) -> str | None:
    """Why the metadata's speaker cannot be taken as it is (``None``: it can, or is absent)."""
    if by_meta is None:
        return None
    try:
        validate_speaker_id(by_meta)
    except InvalidParameterError:
        return f"metadata names {describe_value(by_meta)}, not a valid speaker id"
    if known is not None and by_meta not in known:
        return f"metadata names {by_meta!r}, which the registry does not know"
    return None


def _attribute(by_meta: str | None, by_index: set[str], where: str,
               known: frozenset[str] | None = None
               ) -> tuple[str | None, str, str | None, tuple[str, ...]]:
    """(speaker, source, conflict, candidates) from the metadata and the index.

    Metadata that is not a valid, registered speaker id (another spelling, padding, an encoded
    word) attributes the version to nobody: it is reported, never matched loosely."""
    problem = _metadata_problem(by_meta, known)
    if problem is not None:
        return None, "conflict", f"{where}: {problem}", tuple(sorted(by_index))
    names = set(by_index) | ({by_meta} if by_meta else set())
    candidates = tuple(sorted(names))
    if len(names) > 1:
        said = ([f"metadata names {by_meta!r}"] if by_meta else []) + (
            [f"the registry index (or mapping) names {', '.join(map(repr, sorted(by_index)))}"]
            if by_index else [])
        return None, "conflict", f"{where}: {'; '.join(said)}", candidates
    if not names:
        return None, "none", None, ()
    return candidates[0], "metadata" if by_meta else "registry-index", None, candidates


#: S3 error codes of a version that is no longer there: HeadObject answers a bare ``404`` /
#: ``Not Found`` (a HEAD has no body: https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html),
#: GetObject ``NoSuchKey`` or ``NoSuchVersion``.
GONE_CODES = frozenset({"NoSuchVersion", "NoSuchKey", "404", "NotFound", "Not Found"})


def attributed_versions(
    session: boto3.Session, bucket: str, sample_speakers: Mapping[str, str] | None = None,
    *, prefix: str = "", registry: ConsentRegistry | None = None,
) -> Iterator[AttributedVersion]:
    """Every version and delete marker in ``bucket``, attributed to a speaker.

    With ``registry``, its index of each speaker's samples attributes objects whose metadata
    names no speaker; ``sample_speakers`` (optional) adds a caller's mapping.
    ListObjectVersions, then HeadObject per version (metadata, Object Lock state):
    https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html. At very large scale,
    S3 Inventory reports give the same fields without a request per version.
    A version deleted between the listing and its HeadObject (ingest retires raw versions
    all the time) is gone, not an error: it is skipped. Any other HeadObject failure raises
    :class:`~securepipe.errors.RetentionError` naming the bucket, key and version.
    The registry is read after the listing, so every listed version's index entry, written
    before its object (:meth:`~securepipe.retention.consent.ConsentRegistry.admit`), is in it.
    """
    validate_bucket_name(bucket)
    s3 = shared_client(session, "s3")
    listing = _list_versions(s3, bucket, prefix)
    yield from _attributed(s3, listing, _read_index(registry, sample_speakers))


@dataclass(frozen=True)
class _Index:
    """What attribution reads from the registry: its sample index (plus a caller's mapping)
    and the speakers it has an item for (``None``: no registry)."""

    mapping: _Mapping
    known: frozenset[str] | None


def _read_index(registry: ConsentRegistry | None,
                sample_speakers: Mapping[str, str] | None) -> _Index:
    return _Index(_mapping(registry, sample_speakers),
                  registry.known_speakers() if registry is not None else None)


@dataclass(frozen=True)
class _Listing:
    bucket: str
    versions: list[dict[str, Any]]
    markers: list[dict[str, Any]]


def _list_versions(s3: Any, bucket: str, prefix: str = "") -> _Listing:
    listing = _Listing(bucket, [], [])
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
        listing.versions.extend(page.get("Versions", []))
        listing.markers.extend(page.get("DeleteMarkers", []))
    return listing


def _attributed(s3: Any, listing: _Listing, index: _Index) -> Iterator[AttributedVersion]:
    """Each listed version (HeadObject as it is reached) and delete marker, attributed."""
    bucket, versions, markers = listing.bucket, listing.versions, listing.markers
    mapping, known = index.mapping, index.known
    by_key: dict[str, set[str]] = {}
    for entry in versions:
        key, vid = entry["Key"], entry["VersionId"]
        try:
            head = s3.head_object(Bucket=bucket, Key=key, VersionId=vid)
        except ClientError as exc:
            code = str(exc.response.get("Error", {}).get("Code", ""))
            if code in GONE_CODES:
                continue     # deleted since the listing (ingest retires raw versions): not there
            raise RetentionError(f"HeadObject of s3://{bucket}/{key}?versionId={vid} failed "
                                 f"({code or 'no code'})") from exc
        meta = {k.lower(): v for k, v in (head.get("Metadata") or {}).items()}
        by_meta = meta.get(META_SPEAKER)
        by_index = _speakers_of(mapping, key, meta.get(META_SAMPLE))
        speaker, source, conflict, candidates = _attribute(by_meta, by_index, key, known)
        by_key.setdefault(key, set()).update(candidates)
        yield AttributedVersion(
            bucket=bucket, key=key, version_id=vid, kind="version", speaker=speaker,
            source=source, conflict=conflict, candidates=candidates,
            size=int(entry.get("Size", 0)),
            storage_class=head.get("StorageClass", entry.get("StorageClass")),
            legal_hold=head.get("ObjectLockLegalHoldStatus") == "ON",
            lock_mode=head.get("ObjectLockMode"),
            lock_until=head.get("ObjectLockRetainUntilDate"),
            metadata_sha256=meta.get("securepipe-ciphertext-sha256"),
        )
    for entry in markers:
        key, vid = entry["Key"], entry["VersionId"]
        names = _speakers_of(mapping, key, None) | by_key.get(key, set())
        candidates = tuple(sorted(names))
        speaker = candidates[0] if len(names) == 1 else None
        conflict = f"{key}: sources name {', '.join(candidates)}" if len(names) > 1 else None
        yield AttributedVersion(
            bucket=bucket, key=key, version_id=vid, kind="delete-marker", speaker=speaker,
            source="registry-index/versions" if speaker else ("conflict" if conflict
                                                              else "none"),
            conflict=conflict, candidates=candidates,
            size=None, storage_class=None, legal_hold=False, lock_mode=None,
            lock_until=None, metadata_sha256=None)


@dataclass(frozen=True)
class PendingUpload:
    """An unfinished multipart upload: its parts are stored (and can still be completed into
    the whole object) until it is aborted. ``candidates``: speakers the registry's index names
    for the sample id in its key (an unfinished upload has no readable metadata)."""

    bucket: str
    key: str
    upload_id: str
    initiated: dt.datetime | None
    candidates: tuple[str, ...]

    def older_than(self, at: dt.datetime, days: int) -> bool:
        """True if initiated more than ``days`` before ``at`` (unknown: True, fail closed)."""
        return self.initiated is None or at - self.initiated > dt.timedelta(days=days)


def pending_uploads(session: boto3.Session, bucket: str,
                    sample_speakers: Mapping[str, str] | None = None, *,
                    registry: ConsentRegistry | None = None) -> list[PendingUpload]:
    """Every unfinished multipart upload in ``bucket``, attributed through the registry's index
    (read after the listing).

    ListMultipartUploads: https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListMultipartUploads.html
    (moto answers every upload with the same fixed ``Initiated``, 2010-11-10, so in the sandbox
    every unfinished upload looks years old.)
    """
    validate_bucket_name(bucket)
    s3 = shared_client(session, "s3")
    uploads = _list_uploads(s3, bucket)
    return _pending(bucket, uploads, _read_index(registry, sample_speakers))


def _list_uploads(s3: Any, bucket: str) -> list[dict[str, Any]]:
    return [up for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket)
            for up in page.get("Uploads", [])]


def _pending(bucket: str, uploads: list[dict[str, Any]], index: _Index) -> list[PendingUpload]:
    out: list[PendingUpload] = []
    for up in uploads:
        key = str(up["Key"])
        initiated = up.get("Initiated")
        out.append(PendingUpload(
            bucket, key, str(up["UploadId"]),
            initiated if isinstance(initiated, dt.datetime) else None,
            tuple(sorted(_speakers_of(index.mapping, key, None)))))
    return out


def abort_upload(s3: Any, up: PendingUpload) -> bool:
    """Abort an unfinished multipart upload (AbortMultipartUpload:
    https://docs.aws.amazon.com/AmazonS3/latest/API/API_AbortMultipartUpload.html); ``False``
    if it is no longer there (``NoSuchUpload``: completed, or aborted by another run, since it
    was listed; a completed one is an object the next listing finds)."""
    try:
        s3.abort_multipart_upload(Bucket=up.bucket, Key=up.key, UploadId=up.upload_id)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "NoSuchUpload":
            raise
        return False
    return True


@dataclass(frozen=True)
class BucketPass:
    """One bucket of :func:`attribute_buckets`: its unfinished uploads, and its versions
    (an iterator, read once: each version's HeadObject is made as it is reached)."""

    bucket: str
    uploads: list[PendingUpload]
    versions: Iterator[AttributedVersion]


def attribute_buckets(session: boto3.Session, buckets: Sequence[str],
                      sample_speakers: Mapping[str, str] | None = None, *,
                      registry: ConsentRegistry | None = None) -> list[BucketPass]:
    """:func:`pending_uploads` and :func:`attributed_versions` of every bucket, with the registry
    read once, after every listing (ListMultipartUploads and ListObjectVersions per bucket,
    then one Scan of the index and one of the speakers), so every listed version's index entry
    is in it; the per-bucket functions read it once per bucket and per function."""
    buckets = list(buckets)
    for bucket in buckets:
        validate_bucket_name(bucket)
    s3 = shared_client(session, "s3")
    listed = [(_list_uploads(s3, b), _list_versions(s3, b)) for b in buckets]
    index = _read_index(registry, sample_speakers)
    return [BucketPass(listing.bucket, _pending(listing.bucket, uploads, index),
                       _attributed(s3, listing, index))
            for uploads, listing in listed]


Action = Literal["deleted", "would-delete", "kept", "unattributed", "aborted", "would-abort"]


@dataclass(frozen=True)
class SweepEntry:
    """What the sweeper did (or would do) with one expired or unattributable version."""

    bucket: str
    key: str
    version_id: str
    kind: str
    speaker: str | None
    retain_until: dt.date | None
    action: Action
    reason: str


@dataclass(frozen=True)
class SweepReport:
    """The outcome of one :func:`sweep`: every expired, kept or unattributed version."""

    at: dt.datetime
    dry_run: bool
    entries: tuple[SweepEntry, ...]
    retained: int
    registry_errors: tuple[str, ...] = ()

    def _with(self, action: Action) -> list[SweepEntry]:
        return [e for e in self.entries if e.action == action]

    @property
    def deleted(self) -> list[SweepEntry]:
        return self._with("deleted")

    @property
    def would_delete(self) -> list[SweepEntry]:
        return self._with("would-delete")

    @property
    def kept(self) -> list[SweepEntry]:
        return self._with("kept")

    @property
    def unattributed(self) -> list[SweepEntry]:
        return self._with("unattributed")

    @property
    def aborted(self) -> list[SweepEntry]:
        """Unfinished multipart uploads aborted (or, in a dry run, that would be)."""
        return self._with("aborted") + self._with("would-abort")

    def speakers(self) -> list[str]:
        """Speakers with at least one version deleted (or, in a dry run, that would be)."""
        return sorted({e.speaker for e in self.deleted + self.would_delete if e.speaker})

    def summary(self) -> dict[str, Any]:
        return {"at": self.at.astimezone(dt.UTC).date().isoformat(), "dry_run": self.dry_run,
                "deleted": len(self.deleted), "would_delete": len(self.would_delete),
                "kept": len(self.kept), "unattributed": len(self.unattributed),
                "uploads_aborted": len(self.aborted),
                "retained": self.retained, "registry_errors": len(self.registry_errors)}

    def rows(self) -> list[dict[str, Any]]:
        """One row per entry, for :func:`securepipe.report.format_table`."""
        return [{"action": e.action, "bucket": short_bucket(e.bucket), "key": e.key,
                 "kind": e.kind,
                 "speaker": e.speaker or "?",
                 "retain until": e.retain_until.isoformat() if e.retain_until else "",
                 "reason": e.reason} for e in self.entries]


def short_bucket(bucket: str) -> str:
    """``securepipe-<role>-<account>-<region>`` shown as ``<role>``; other names unchanged."""
    parts = bucket.split("-")
    return parts[1] if bucket.startswith("securepipe-") and len(parts) > 2 else bucket


def _aware_now(clock: Callable[[], dt.datetime]) -> dt.datetime:
    if not callable(clock):
        raise InvalidParameterError("clock must be a callable returning an aware datetime")
    moment = clock()
    if not isinstance(moment, dt.datetime) or moment.tzinfo is None:
        raise InvalidParameterError("clock must return a timezone-aware datetime")
    return moment


def sweep(
    session: boto3.Session,
    *,
    buckets: Sequence[str],
    registry: ConsentRegistry,
    clock: Callable[[], dt.datetime] | None = None,
    dry_run: bool = True,
    sample_speakers: Mapping[str, str] | None = None,
) -> SweepReport:
    """Delete every object version whose speaker's retention date has passed.

    For each version in ``buckets``: attribute it to a speaker (see the module docstring), read
    the speaker's record from ``registry`` and their retain-until date (min of consent + term,
    withdrawal, last interaction + 3 years, ...); if ``clock()`` has reached it, the version is
    expired. A dry run (the default) only lists what would go. A real run deletes each expired
    version by version id (DeleteObject with ``VersionId``, the only delete that removes data
    from a versioned bucket:
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/DeletingObjectVersions.html), delete
    markers included, and writes an audit record per version (``securepipe.audit.records`` logger).

    Never deleted, always reported: versions under an Object Lock legal hold or retention
    (``kept``, with the reason; S3 would refuse anyway, and a refusal is reported the same way),
    and versions with no attribution, conflicting attribution or no (or a malformed) consent
    record (``unattributed``). ``clock`` is a callable returning an aware datetime (default
    :func:`securepipe.clock.now`, which the sandbox can move).

    Attribution needs no mapping: object metadata and the registry's index of each speaker's
    samples (``sample_speakers`` may add a caller's). Unfinished multipart uploads are listed
    too and aborted (AbortMultipartUpload) when their speaker's retention has passed or they
    are older than the ingest window (:data:`~securepipe.retention.lifecycle.RAW_EXPIRY_DAYS`).
    Malformed consent items are reported in ``registry_errors`` and the sweep goes on.

    An erased speaker's retention ended on their erasure day, so a version whose metadata
    names them is deleted whenever it was written: this is how a write that landed after the
    erasure, whose writer stopped before its consent re-check
    (:func:`securepipe.encryption.upload.fence_write`), is removed; its entry says so.
    """
    buckets = list(buckets)
    if not buckets:
        raise InvalidParameterError("buckets must name at least one bucket")
    for bucket in buckets:
        validate_bucket_name(bucket)
    if not isinstance(registry, ConsentRegistry):
        raise InvalidParameterError("registry must be a ConsentRegistry")
    if not isinstance(dry_run, bool):
        raise InvalidParameterError("dry_run must be a bool")
    at = _aware_now(clock or _clock.now)
    s3 = shared_client(session, "s3")
    records: dict[str, ConsentRecord | str | None] = {}
    entries: list[SweepEntry] = []
    retained = 0
    _, errors = registry.scan()

    def record_of(speaker: str) -> ConsentRecord | str | None:
        if speaker not in records:
            try:
                records[speaker] = registry.find(speaker)
            except (ConsentRecordError, InvalidParameterError) as exc:
                records[speaker] = str(exc)
        return records[speaker]

    for listed in attribute_buckets(session, buckets, sample_speakers, registry=registry):
        for up in listed.uploads:
            why: str | None = None
            if up.older_than(at, RAW_EXPIRY_DAYS):
                why = f"unfinished for more than the {RAW_EXPIRY_DAYS}-day ingest window"
            elif len(up.candidates) == 1:
                rec = record_of(up.candidates[0])
                if isinstance(rec, ConsentRecord) and rec.expired(at):
                    why = _why_expired(rec, rec.retain_until())
            if why is None:
                entries.append(SweepEntry(up.bucket, up.key, up.upload_id, "multipart-upload",
                                          up.candidates[0] if len(up.candidates) == 1 else None,
                                          None, "unattributed" if len(up.candidates) != 1
                                          else "kept", "unfinished upload, within the window"))
                continue
            if not dry_run and not abort_upload(s3, up):
                continue            # completed or aborted since the listing: not there now
            entries.append(SweepEntry(up.bucket, up.key, up.upload_id, "multipart-upload",
                                      up.candidates[0] if len(up.candidates) == 1 else None,
                                      None, "would-abort" if dry_run else "aborted", why))
        for v in listed.versions:
            def entry(action: Action, reason: str, until: dt.date | None = None,
                      v: AttributedVersion = v) -> SweepEntry:
                return SweepEntry(v.bucket, v.key, v.version_id, v.kind, v.speaker, until,
                                  action, reason)

            if v.conflict or v.speaker is None:
                entries.append(entry("unattributed", v.conflict or "no speaker metadata, and the "
                                     "registry index does not know this sample"))
                continue
            record = record_of(v.speaker)
            if record is None or isinstance(record, str):
                entries.append(entry("unattributed", record or
                                     f"no consent record for {v.speaker!r}"))
                continue
            until = record.retain_until()
            if not record.expired(at):
                retained += 1
                continue
            why = _why_expired(record, until)
            if record.erased_at is not None and v.source == "metadata":
                why += (" (attributed by the speaker its writer recorded at write time: a "
                        "write its writer did not remove after the erasure)")
            lock = v.lock_reason(at)
            if lock:
                entries.append(entry("kept", f"expired ({why}) but {lock}", until))
                _audit("retention.kept", v, "denied", at, lock)
                continue
            if dry_run:
                entries.append(entry("would-delete", why, until))
                continue
            try:
                s3.delete_object(Bucket=v.bucket, Key=v.key, VersionId=v.version_id)
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code")
                reason = f"refused by S3 ({code}); Object Lock or a policy keeps it"
                entries.append(entry("kept", reason, until))
                _audit("retention.kept", v, "denied", at, reason)
                continue
            entries.append(entry("deleted", why, until))
            _audit("retention.delete-version", v, "allowed", at, why)
    report = SweepReport(at, dry_run, tuple(entries), retained,
                         tuple(str(e) for e in errors))
    counts = " ".join(f"{k}={v}" for k, v in report.summary().items() if k != "at")
    AUDIT.info(f"retention.sweep {counts}", extra={
        "principal": "securepipe-retention", "action": "retention.sweep", "outcome": "allowed",
        "purpose": "retention", "when": at})
    return report


def _why_expired(record: ConsentRecord, until: dt.date) -> str:
    if record.erased_at is not None and record.erased_at.astimezone(dt.UTC).date() == until:
        return f"speaker erased on {until}"
    if record.withdrawn is not None and record.withdrawn == until:
        return f"consent withdrawn on {until}"
    if record.last_interaction + dt.timedelta(days=BIPA_MAX_DAYS) == until:
        return f"3 years after the last interaction ({until})"
    return f"consent term ended {until}"


def _audit(action: str, v: AttributedVersion, outcome: str, at: dt.datetime, why: str) -> None:
    AUDIT.info(action, extra={"principal": "securepipe-retention", "action": action,
                              "bucket": v.bucket, "key": v.key, "version_id": v.version_id,
                              "outcome": outcome, "purpose": "retention", "when": at,
                              "bytes": v.size, "speaker": v.speaker, "reason": why})
