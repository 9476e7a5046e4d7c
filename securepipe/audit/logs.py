"""Read the log files a CloudTrail trail delivers to S3, to feed the detector on a real account.

A trail writes its events as gzipped JSON objects, ``{"Records": [event, ...]}``, under

``<prefix>/AWSLogs/<account>/CloudTrail/<region>/YYYY/MM/DD/<account>_CloudTrail_<region>_YYYYMMDDTHHmmZ_<unique>.json.gz``

(https://docs.aws.amazon.com/awscloudtrail/latest/userguide/get-and-view-cloudtrail-log-files.html).
:func:`read_log_files` lists only the days asked for (and the day after: a file delivered just
after midnight holds the last minutes of the day before), reads each file and returns the
records whose ``eventTime`` falls on those days: give them to
:meth:`securepipe.audit.detector.Detector.detect_events`. A file it cannot read (not gzip, not JSON,
no ``Records`` list, anything after the gzip stream, or larger than :data:`MAX_LOG_BYTES`) is
never skipped silently: by default it raises :class:`~securepipe.errors.LogFileError` naming
the key; with ``strict=False`` it is reported in :attr:`LogRead.unreadable` (a missing log file
is missing evidence, so it must show).

In the sandbox no trail delivers anything (moto records no events), so
:func:`deliver_log_files` is the sandbox's stand-in for CloudTrail's delivery: it writes events
recorded by :class:`securepipe.sandbox.cloudtrail.CloudTrailRecorder` as the log files a trail
would. It is an
emulation for lessons and tests; on a real account the trail writes them.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import os
import uuid
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import msgspec
import numpy as np

from securepipe.audit.events import EventBatch, Normaliser, NormaliseStats
from securepipe.errors import InvalidParameterError, LogFileError, MalformedEventError
from securepipe.ids import validate_bucket_name

#: ISA-L's inflate behind the zlib API (the same decompressobj, eof, unused_data), or zlib
_INFLATE: Any
try:
    from isal import isal_zlib

    _INFLATE = isal_zlib
except ImportError:  # pragma: no cover - isal is a dependency; zlib is the fallback
    _INFLATE = zlib

#: Decompressed size above which a log file is refused (CloudTrail's own files are far smaller;
#: this bounds memory against a hostile or corrupt object).
MAX_LOG_BYTES = 256 * 1024 * 1024
#: CloudTrail delivers a file about every five minutes; the stand-in groups events the same way.
DELIVERY_MINUTES = 5


@dataclass
class LogRead:
    """What :func:`read_log_files` read: the records, the files, and any it could not read."""

    records: list[dict[str, Any]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    unreadable: list[tuple[str, str]] = field(default_factory=list)


def log_prefix(account_id: str, region: str, day: dt.date, prefix: str = "",
               organization_id: str | None = None) -> str:
    """The key prefix of one day's log files for one account and Region.

    An organization trail writes under ``AWSLogs/<organization id>/<account>/...``
    (https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-find-log-files.html);
    pass ``organization_id`` (``o-`` and 10 to 32 lowercase letters or digits) for those.
    """
    if not (isinstance(account_id, str) and account_id.isdigit() and len(account_id) == 12):
        raise InvalidParameterError(f"invalid account id {account_id!r}")
    if not (isinstance(region, str) and region and all(c.isalnum() or c == "-" for c in region)):
        raise InvalidParameterError(f"invalid region {region!r}")
    org = ""
    if organization_id is not None:
        if not (isinstance(organization_id, str) and organization_id.startswith("o-")
                and 12 <= len(organization_id) <= 34
                and all(c.isdigit() or "a" <= c <= "z" for c in organization_id[2:])):
            raise InvalidParameterError(f"invalid organization id {organization_id!r}")
        org = f"{organization_id}/"
    head = f"{prefix.strip('/')}/" if prefix and prefix.strip("/") else ""
    return f"{head}AWSLogs/{org}{account_id}/CloudTrail/{region}/{day:%Y/%m/%d}/"


def log_file_key(account_id: str, region: str, delivered: dt.datetime, prefix: str = "",
                 unique: str | None = None, organization_id: str | None = None) -> str:
    """The key CloudTrail gives a log file delivered at ``delivered`` (UTC)."""
    when = delivered.astimezone(dt.UTC)
    unique = unique or uuid.uuid4().hex[:16]
    head = log_prefix(account_id, region, when.date(), prefix, organization_id)
    return (f"{head}{account_id}_CloudTrail_"
            f"{region}_{when:%Y%m%dT%H%MZ}_{unique}.json.gz")


def read_log_files(session: boto3.Session, bucket: str, *, account_id: str, region: str,
                   start: dt.date, end: dt.date, prefix: str = "",
                   strict: bool = True, organization_id: str | None = None) -> LogRead:
    """Every record of the days ``start`` to ``end`` (inclusive, UTC) in the trail's log files.

    Wraps S3 ListObjectsV2 and GetObject
    (https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html). The folders of
    ``start`` to the day after ``end`` are read, in key order (delivery time), and records are
    kept when their ``eventTime`` falls in the range; a record without a readable
    ``eventTime`` is kept if its file's folder does (the detector rejects and counts it).
    """
    validate_bucket_name(bucket)
    if not isinstance(start, dt.date) or not isinstance(end, dt.date) or end < start:
        raise InvalidParameterError("need dates with start <= end")
    if (end - start).days > 366:
        raise InvalidParameterError("read at most a year of log files at a time")
    s3 = session.client("s3")
    out = LogRead()
    day = start
    while day <= end + dt.timedelta(days=1):
        for key in _keys(s3, bucket, log_prefix(account_id, region, day, prefix,
                                                organization_id)):
            try:
                records = _read_one(s3, bucket, key)
            except LogFileError as exc:
                if strict:
                    raise
                out.unreadable.append((key, exc.reason))
                continue
            out.files.append(key)
            for record in records:
                when = _event_day(record)
                if start <= (when or day) <= end:
                    out.records.append(record)
        day += dt.timedelta(days=1)
    return out


def _read_one(s3: Any, bucket: str, key: str) -> list[dict[str, Any]]:
    response = s3.get_object(Bucket=bucket, Key=key)
    body = response["Body"]
    try:
        if int(response.get("ContentLength") or 0) > MAX_LOG_BYTES:
            raise LogFileError(key, f"its ContentLength is over {MAX_LOG_BYTES} bytes")
        data = body.read(MAX_LOG_BYTES + 1)
    finally:
        body.close()
    if len(data) > MAX_LOG_BYTES:
        raise LogFileError(key, f"larger than {MAX_LOG_BYTES} bytes")
    try:
        return parse_log_file(data)
    except LogFileError as exc:
        raise LogFileError(key, exc.reason) from None


def days_spanned(events: Iterable[Mapping[str, Any]]) -> tuple[dt.date, dt.date]:
    """The first and last UTC day of the events' ``eventTime``: the range to read them back.

    InvalidParameterError if no event has a readable ``eventTime``.
    """
    days = [day for day in map(_event_day, events) if day is not None]
    if not days:
        raise InvalidParameterError("no event with a readable eventTime")
    return min(days), max(days)


def _event_day(record: Mapping[str, Any]) -> dt.date | None:
    """The UTC day of the record's ``eventTime``, read as the detector reads it."""
    from securepipe.audit.events import parse_time_ms

    ms = parse_time_ms(record.get("eventTime"))
    return None if ms is None else dt.datetime.fromtimestamp(ms / 1000, dt.UTC).date()


def gunzip_log(body: bytes, name: str | None = None) -> bytes:
    """The decompressed JSON of one gzipped log file; LogFileError (naming it) if it is not one
    whole gzip stream of at most :data:`MAX_LOG_BYTES`.

    Inflates with ISA-L (the ``isal`` package's ``isal_zlib``, the zlib API with a faster
    inflate: https://python-isal.readthedocs.io/) when installed, else with zlib."""
    if body[:2] != b"\x1f\x8b"[: len(body)]:  # RFC 1952 ID1 ID2 (ISA-L would wait for more)
        raise LogFileError(name, "not a gzip file (no gzip header)")
    inflate = _INFLATE.decompressobj(wbits=16 + zlib.MAX_WBITS)   # gzip framing
    try:
        data = inflate.decompress(body, MAX_LOG_BYTES + 1)
    except (zlib.error, _INFLATE.error) as exc:
        raise LogFileError(name, f"not a gzip file ({exc})") from None
    if len(data) > MAX_LOG_BYTES or inflate.unconsumed_tail:
        raise LogFileError(name, f"larger than {MAX_LOG_BYTES} bytes decompressed")
    if not inflate.eof:
        raise LogFileError(name, "truncated gzip file")
    if inflate.unused_data:
        raise LogFileError(name, "data after the gzip stream")
    return data


#: output per inflate step when inflating into a reused buffer: small enough that malloc serves
#: it from the heap (below its 128 KiB mmap threshold), so no step maps fresh pages
_INFLATE_STEP = 64 * 1024


def gunzip_into(body: bytes, name: str | None, buffer: bytearray) -> int:
    """:func:`gunzip_log` into ``buffer`` (grown as needed, never shrunk); returns the length.

    One reused buffer instead of a new 10 MiB ``bytes`` per file: a fresh allocation that size
    is mapped from the kernel and faulted in page by page each time (about 1 us of system time
    per event in ``python -m benchmarks logs``); the same checks and errors as
    :func:`gunzip_log`."""
    if body[:2] != b"\x1f\x8b"[: len(body)]:
        raise LogFileError(name, "not a gzip file (no gzip header)")
    inflate = _INFLATE.decompressobj(wbits=16 + zlib.MAX_WBITS)
    size = 0
    data = body
    try:
        while True:
            chunk = inflate.decompress(data, _INFLATE_STEP)
            got = len(chunk)
            if size + got > MAX_LOG_BYTES:
                raise LogFileError(name, f"larger than {MAX_LOG_BYTES} bytes decompressed")
            buffer[size:size + got] = chunk
            size += got
            data = inflate.unconsumed_tail
            if not data and got < _INFLATE_STEP:
                break
    except (zlib.error, _INFLATE.error) as exc:
        raise LogFileError(name, f"not a gzip file ({exc})") from None
    if not inflate.eof:
        raise LogFileError(name, "truncated gzip file")
    if inflate.unused_data:
        raise LogFileError(name, "data after the gzip stream")
    return size


def parse_log_file(body: bytes) -> list[dict[str, Any]]:
    """The ``Records`` of one gzipped CloudTrail log file; LogFileError if unreadable."""
    data = gunzip_log(body)
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LogFileError(None, f"not JSON ({exc.__class__.__name__})") from None
    records = document.get("Records") if isinstance(document, dict) else None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise LogFileError(None, "no Records list of events")
    return records


def deliver_log_files(session: boto3.Session, bucket: str, events: Iterable[Mapping[str, Any]],
                      *, prefix: str = "", kms_key_arn: str | None = None) -> list[str]:
    """SANDBOX STAND-IN for CloudTrail's delivery: write ``events`` as the trail's log files.

    Events are grouped by account, Region and five-minute delivery interval (from their
    ``recipientAccountId``, ``awsRegion`` and ``eventTime``), one gzipped file per group, with
    SSE-KMS when ``kms_key_arn`` is given. Returns the keys written.
    """
    validate_bucket_name(bucket)
    groups: dict[tuple[str, str, dt.datetime], list[Mapping[str, Any]]] = {}
    for index, event in enumerate(events):
        try:
            when = dt.datetime.strptime(str(event["eventTime"]), "%Y-%m-%dT%H:%M:%SZ")
            account, region = str(event["recipientAccountId"]), str(event["awsRegion"])
        except (KeyError, ValueError) as exc:
            raise MalformedEventError(index, f"cannot place it in a log file ({exc})") from None
        slot = when.replace(minute=when.minute - when.minute % DELIVERY_MINUTES, second=0,
                            tzinfo=dt.UTC)
        groups.setdefault((account, region, slot), []).append(event)
    s3 = session.client("s3")
    extra: dict[str, Any] = {}
    if kms_key_arn:
        extra = {"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": kms_key_arn}
    keys = []
    for (account, region, slot), batch in sorted(groups.items()):
        delivered = slot + dt.timedelta(minutes=DELIVERY_MINUTES)
        key = log_file_key(account, region, delivered, prefix)
        body = gzip.compress(json.dumps({"Records": list(batch)}, sort_keys=True).encode(),
                             mtime=0)
        s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json",
                      ContentEncoding="gzip", **extra)
        keys.append(key)
    return keys


def _keys(s3: Any, bucket: str, prefix: str) -> Iterator[str]:
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for entry in page.get("Contents", []):
            if entry["Key"].endswith(".json.gz"):
                yield entry["Key"]


# -- streaming into the fleet detector ----------------------------------------------------------


@dataclass
class TrailStream:
    """What :func:`stream_log_files` / :func:`stream_bucket_logs` did: files read, files that
    could not be read (with the reason), and the normaliser's counts by reason."""

    normaliser: Normaliser
    files: int = 0
    unreadable: list[tuple[str, str]] = field(default_factory=list)
    #: the decompressed file being normalised, reused from file to file (:func:`gunzip_into`)
    _buffer: bytearray = field(default_factory=bytearray, repr=False)

    def normalise(self, body: bytes, name: str) -> EventBatch:
        """One gzipped log file -> its batch (LogFileError if it cannot be read)."""
        size = gunzip_into(body, name, self._buffer)
        view = memoryview(self._buffer)[:size]
        try:
            return self.normaliser.log_file(view, name)
        finally:
            try:
                view.release()
            except BufferError:
                # something still holds part of this file (a decoded record's raw JSON, kept
                # by a traceback): never overwrite it, the next file gets a buffer of its own
                self._buffer = bytearray()

    @property
    def stats(self) -> NormaliseStats:
        return self.normaliser.stats


def stream_log_files(paths: Iterable[str | Path], stream: TrailStream, *,
                     strict: bool = False) -> Iterator[EventBatch]:
    """One :class:`EventBatch` per local gzipped log file (e.g. synced from the trail bucket).

    Each file is read, gunzipped and decoded on its own, so memory is one file at a time. A file
    that cannot be read raises :class:`LogFileError` naming it when ``strict``, else is listed in
    ``stream.unreadable``; a malformed record is counted by reason (or raises, in strict mode).
    """
    for path in paths:
        name = str(path)
        try:
            with open(path, "rb") as handle:
                # size first: read(MAX_LOG_BYTES + 1) would allocate that much for every file
                if os.fstat(handle.fileno()).st_size > MAX_LOG_BYTES:
                    raise LogFileError(name, f"larger than {MAX_LOG_BYTES} bytes")
                body = handle.read()
            batch = stream.normalise(body, name)
        except OSError as exc:
            if strict:
                raise LogFileError(name, f"cannot be read ({exc.strerror})") from None
            stream.unreadable.append((name, f"cannot be read ({exc.strerror})"))
            continue
        except LogFileError as exc:
            if strict:
                raise
            stream.unreadable.append((name, exc.reason))
            continue
        stream.files += 1
        yield batch


def stream_bucket_logs(session: boto3.Session, bucket: str, stream: TrailStream, *,
                       account_id: str, region: str, start: dt.date, end: dt.date,
                       prefix: str = "", organization_id: str | None = None,
                       strict: bool = False) -> Iterator[EventBatch]:
    """One :class:`EventBatch` per log file of the days ``start`` to ``end`` in the trail bucket
    (the folders of ``start`` to the day after ``end``: a file delivered after midnight holds
    the last minutes of the day before; events outside the days are dropped).

    Wraps S3 ListObjectsV2 and GetObject, as :func:`read_log_files`, one file in memory at a time.
    """
    validate_bucket_name(bucket)
    if not isinstance(start, dt.date) or not isinstance(end, dt.date) or end < start:
        raise InvalidParameterError("need dates with start <= end")
    lo = int(dt.datetime.combine(start, dt.time(), dt.UTC).timestamp() * 1000)
    hi = int(dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), dt.UTC).timestamp()
             * 1000)
    s3 = session.client("s3")
    day = start
    while day <= end + dt.timedelta(days=1):
        for key in _keys(s3, bucket, log_prefix(account_id, region, day, prefix,
                                                organization_id)):
            try:
                response = s3.get_object(Bucket=bucket, Key=key)
                body = response["Body"]
                try:
                    if int(response.get("ContentLength") or 0) > MAX_LOG_BYTES:
                        raise LogFileError(key, f"larger than {MAX_LOG_BYTES} bytes")
                    data = body.read()  # botocore checks the length against ContentLength
                finally:
                    body.close()
                batch = stream.normalise(data, key)
            except LogFileError as exc:
                if strict:
                    raise
                stream.unreadable.append((key, exc.reason))
                continue
            stream.files += 1
            keep = (batch.time_ms >= lo) & (batch.time_ms < hi)
            yield batch if keep.all() else batch.take(np.flatnonzero(keep))
        day += dt.timedelta(days=1)


def write_log_files(directory: str | Path, events: Iterable[Mapping[str, Any]], *,
                    account_id: str, region: str, organization_id: str | None = None,
                    per_file: int | None = None) -> list[Path]:
    """Write events as a trail's gzipped log files under ``directory`` (the key layout of
    :func:`log_file_key`), grouped by five-minute delivery interval, or ``per_file`` records at
    a time in the order given. For tests, lessons and the benchmark; a trail writes them on AWS.
    """
    root = Path(directory)
    groups: dict[Any, list[Mapping[str, Any]]] = {}
    for index, event in enumerate(events):
        if per_file:
            groups.setdefault(index // per_file, []).append(event)
            continue
        try:
            when = dt.datetime.strptime(str(event["eventTime"]), "%Y-%m-%dT%H:%M:%SZ")
        except (KeyError, ValueError) as exc:
            raise MalformedEventError(index, f"cannot place it in a log file ({exc})") from None
        groups.setdefault(when.replace(minute=when.minute - when.minute % DELIVERY_MINUTES,
                                       second=0), []).append(event)
    out = []
    for n, (slot, batch) in enumerate(sorted(groups.items(), key=lambda kv: kv[0])):
        first = batch[0]
        when = slot if isinstance(slot, dt.datetime) else dt.datetime.strptime(
            str(first["eventTime"]), "%Y-%m-%dT%H:%M:%SZ")
        delivered = when.replace(tzinfo=dt.UTC) + dt.timedelta(minutes=DELIVERY_MINUTES)
        key = log_file_key(account_id, region, delivered, "", f"{n:016x}", organization_id)
        path = root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress(msgspec.json.encode({"Records": batch}), mtime=0,
                                       compresslevel=6))
        out.append(path)
    return out
