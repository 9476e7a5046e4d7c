"""CloudTrail S3 data events -> normalised columns: every read and probe path, every identity shape.

The fleet detector (:mod:`securepipe.audit.fleet`) does not read raw CloudTrail dicts; it reads
:class:`EventBatch`, parallel numpy arrays with one entry per S3 data event. This module makes
them, tolerantly and fast:

* **every read and probe path** is an event, with its :data:`KINDS` code: ``GetObject`` (whole or
  ranged), ``HeadObject`` and the object-metadata reads, ``List*``, ``CopyObject`` and
  ``UploadPartCopy`` (a read of the *source* object; the destination bucket and its owner are
  kept), ``SelectObjectContent``, ``RestoreObject``; writes (``PutObject``,
  ``CompleteMultipartUpload``) are kept only so the detector can follow a growing dataset.
  Refused requests (any ``errorCode``) are kept, flagged ``denied``;
* **identities as fleets use them**: an ``AssumedRole`` is normalised to its role
  (``sessionContext.sessionIssuer.arn``), the session name becomes an attribute; ``IAMUser`` and
  ``Root`` keep their ARN; ``AWSService`` becomes ``service:<invokedBy>``; another account
  (``AWSAccount``) becomes ``account:<accountId>``; an unauthenticated request becomes
  ``anonymous``. None of these is rejected for lacking ``userIdentity.arn``;
* **source attributes** the detector checks for novelty per role: the network (the VPC endpoint,
  or the source address's /16 or /48, or ``aws`` for a service), the user-agent family (its first
  token: ``boto3``, ``aws-cli``, ``curl``...) and the authentication method (``AuthHeader``, or
  ``QueryString`` for presigned URLs; ``additionalEventData.AuthenticationMethod``);
* **tolerant numbers**: ``bytesTransferredOut`` may be an int, a float such as ``2143.0`` (as in
  published S3 events) or a numeric string.

Field meanings follow the CloudTrail record reference
(https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-event-reference-record-contents.html,
``userIdentity`` types:
https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-event-reference-user-identity.html)
and the S3 data-event list
(https://docs.aws.amazon.com/AmazonS3/latest/userguide/cloudtrail-logging-s3-info.html).

Records are decoded with msgspec into typed structs that name only the fields used (the rest of
each record is skipped by the decoder, never built as dicts). A record that does not fit is
**rejected and counted by reason** in :class:`NormaliseStats` (or raises
:class:`~securepipe.errors.MalformedEventError` in strict mode); one bad record never stops the
rest. Objects and prefixes are coded by a 64-bit hash of ``bucket/key`` (Python's ``hash`` of a
``str``, stable within one process), so no per-object table grows with the dataset.
"""

from __future__ import annotations

import array
import collections
import datetime as dt
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

import msgspec
import numpy as np

from securepipe.errors import MalformedEventError

#: Event kinds (``EventBatch.kind`` codes). ``decrypt`` is a KMS data-key release (below).
GET, HEAD, LIST, COPY, SELECT, RESTORE, WRITE, DECRYPT = range(8)
KINDS: tuple[str, ...] = ("get", "head", "list", "copy", "select", "restore", "write",
                          "decrypt")
#: Kinds that move object data out of the bucket (to the caller or, for a copy, elsewhere).
READ_KINDS = (GET, COPY, SELECT)
#: Kinds that learn about objects without reading them.
PROBE_KINDS = (HEAD, LIST)

_KIND_OF_EVENT: dict[str, int] = {
    "GetObject": GET, "GetObjectTorrent": GET,
    "HeadObject": HEAD, "GetObjectAttributes": HEAD, "GetObjectTagging": HEAD,
    "GetObjectAcl": HEAD,
    "ListObjects": LIST, "ListObjectsV2": LIST, "ListObjectVersions": LIST,
    "ListMultipartUploads": LIST, "ListParts": LIST,
    "CopyObject": COPY, "UploadPartCopy": COPY,
    "SelectObjectContent": SELECT,
    "RestoreObject": RESTORE,
    "PutObject": WRITE, "CompleteMultipartUpload": WRITE,
}
AUTH_METHODS: tuple[str, ...] = ("AuthHeader", "QueryString", "none")
#: The event sources whose object reads are S3 reads: general purpose buckets and directory
#: buckets (S3 Express One Zone logs its data events as ``s3express.amazonaws.com``:
#: https://docs.aws.amazon.com/AmazonS3/latest/userguide/s3-express-one-zone-logging.html).
S3_SOURCES = frozenset({"s3.amazonaws.com", "s3express.amazonaws.com"})
#: KMS calls that hand plaintext key material to the caller: ``Decrypt`` (a data key of an
#: envelope-encrypted object) and ``GenerateDataKey``. CloudTrail logs them as management events
#: of ``kms.amazonaws.com``; the key is the record's ``resources`` entry (its ARN), the ciphertext
#: and plaintext are never logged, the encryption context is in ``requestParameters``:
#: https://docs.aws.amazon.com/kms/latest/developerguide/ct-decrypt.html and
#: https://docs.aws.amazon.com/kms/latest/developerguide/ct-generatedatakey.html. They are
#: events of kind ``decrypt`` whose ``bucket`` column is the KMS key's ARN (no object, no
#: bytes): a burst of Decrypts opens ciphertext taken by any path, even one outside the trail.
KMS_SOURCE = "kms.amazonaws.com"
KMS_DATA_EVENTS = frozenset({"Decrypt", "GenerateDataKey"})


# -- the record shape (only the fields the detector reads) ----------------------------------------


class _Issuer(msgspec.Struct, gc=False):
    arn: str | None = None
    type: str | None = None


class _SessionContext(msgspec.Struct, gc=False):
    sessionIssuer: _Issuer | None = None


class _Identity(msgspec.Struct, gc=False):
    type: str | None = None
    arn: str | None = None
    accountId: str | None = None
    principalId: str | None = None
    invokedBy: str | None = None
    sessionContext: _SessionContext | None = None


class _Params(msgspec.Struct, gc=False):
    bucketName: str | None = None
    key: str | None = None
    versionId: str | None = None
    keyId: str | None = None  # KMS: the key as the caller named it (id, ARN or alias)
    copy_source: str | None = msgspec.field(name="x-amz-copy-source", default=None)


class _Extra(msgspec.Struct, gc=False):
    bytesTransferredOut: int | float | str | None = None
    AuthenticationMethod: str | None = None


class _Resource(msgspec.Struct, gc=False):
    type: str | None = None
    ARN: str | None = None
    accountId: str | None = None


_NO_RAW = msgspec.Raw()


class Record(msgspec.Struct, gc=False):
    """The fields of one CloudTrail record the detector uses (everything else is skipped).

    ``userIdentity`` and ``resources`` stay raw JSON: the same identity recurs record after
    record, so it is decoded once per distinct identity (keyed by its bytes), and resources
    are decoded only for the few records that need them (copies, access points, KMS)."""

    eventTime: str | None = None
    eventName: str | None = None
    eventSource: str | None = None
    userIdentity: msgspec.Raw = _NO_RAW  # raw JSON; empty when absent
    sourceIPAddress: str | None = None
    userAgent: str | None = None
    vpcEndpointId: str | None = None
    vpcEndpointAccountId: str | None = None
    errorCode: str | None = None
    requestParameters: _Params | None = None
    additionalEventData: _Extra | None = None
    resources: msgspec.Raw = _NO_RAW
    recipientAccountId: str | None = None


class LogFile(msgspec.Struct, gc=False):
    """A CloudTrail log file: ``{"Records": [...]}``."""

    Records: list[Record]


_DECODE_FILE = msgspec.json.Decoder(LogFile)
_DECODE_ANY = msgspec.json.Decoder()
_DECODE_RECORDS = msgspec.json.Decoder(list[Record])
_DECODE_RECORD = msgspec.json.Decoder(Record)
_DECODE_IDENTITY = msgspec.json.Decoder(_Identity | None)
_DECODE_RESOURCES = msgspec.json.Decoder(list[_Resource] | None)
_ENCODE = msgspec.json.Encoder()


# -- columns ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventBatch:
    """S3 data events as parallel arrays. String-valued columns are codes into a shared
    :class:`Vocab`; ``obj`` and ``prefix`` are 64-bit hashes of ``bucket/key`` and
    ``bucket/prefix``; ``dest`` is the copy destination bucket's code (-1 if not a copy)."""

    time_ms: np.ndarray  # int64
    principal: np.ndarray  # int32: the role, user, service, account or "anonymous"
    session: np.ndarray  # int32: principal + session name
    kind: np.ndarray  # int8: KINDS
    denied: np.ndarray  # bool: the request was refused (errorCode present)
    bytes: np.ndarray  # int64: bytesTransferredOut
    bucket: np.ndarray  # int32
    obj: np.ndarray  # int64 hash, 0 for bucket-level requests (List*)
    prefix: np.ndarray  # int64 hash
    dest: np.ndarray  # int32 bucket code of a copy's destination, or -1
    foreign: np.ndarray  # bool: a copy whose destination bucket another account owns
    network: np.ndarray  # int32
    agent: np.ndarray  # int32 (user-agent family)
    auth: np.ndarray  # int8: AUTH_METHODS
    versioned: np.ndarray  # bool: the request names a versionId (an older version, maybe)

    def __len__(self) -> int:
        return int(self.time_ms.shape[0])

    def take(self, index: np.ndarray) -> EventBatch:
        return EventBatch(*(getattr(self, f)[index] for f in _FIELDS))

    @staticmethod
    def concat(parts: Sequence[EventBatch]) -> EventBatch:
        """One batch from several made with the same :class:`Vocab`."""
        if not parts:
            return empty_batch()
        return EventBatch(*(np.concatenate([getattr(p, f) for p in parts]) for f in _FIELDS))


_FIELDS = ("time_ms", "principal", "session", "kind", "denied", "bytes", "bucket", "obj",
           "prefix", "dest", "foreign", "network", "agent", "auth", "versioned")
_DTYPES = (np.int64, np.int32, np.int32, np.int8, bool, np.int64, np.int32, np.int64, np.int64,
           np.int32, bool, np.int32, np.int32, np.int8, bool)
#: the columns as they are built: typed machine arrays (no Python int per cell kept), viewed by
#: numpy without a copy; booleans as int8
_CODES = ("q", "i", "i", "b", "b", "q", "i", "q", "q", "i", "b", "i", "i", "b", "b")


def empty_batch() -> EventBatch:
    return EventBatch(*(np.zeros(0, d) for d in _DTYPES))


@dataclass
class Vocab:
    """String -> code tables, shared across batches so codes stay stable in a stream. Sizes
    grow with principals, sessions, buckets and source attributes, never with objects."""

    principals: dict[str, int] = field(default_factory=dict)
    sessions: dict[str, int] = field(default_factory=dict)
    buckets: dict[str, int] = field(default_factory=dict)
    networks: dict[str, int] = field(default_factory=dict)
    agents: dict[str, int] = field(default_factory=dict)

    @staticmethod
    def code(table: dict[str, int], value: str) -> int:
        got = table.get(value)
        if got is None:
            got = table[value] = len(table)
        return got

    @staticmethod
    def names(table: dict[str, int]) -> list[str]:
        out = [""] * len(table)
        for name, code in table.items():
            out[code] = name
        return out


@dataclass
class NormaliseStats:
    """Counts of what the normaliser did: accepted, ignored (not an S3 data event it reads) and
    rejected by reason."""

    accepted: int = 0
    ignored: int = 0
    rejected: int = 0
    reasons: collections.Counter[str] = field(default_factory=collections.Counter)

    def reject(self, reason: str, count: int = 1) -> None:
        self.rejected += count
        self.reasons[reason] += count

    def merge(self, other: NormaliseStats) -> None:
        self.accepted += other.accepted
        self.ignored += other.ignored
        self.rejected += other.rejected
        self.reasons.update(other.reasons)


# -- helpers ------------------------------------------------------------------------------------

_time_cache: dict[str, int] = {}
_day_cache: dict[str, int] = {}
_minute_cache: dict[str, int] = {}  # "2026-01-12T10:00" -> its first millisecond
#: distinct eventTime strings kept (then the cache starts over): a bounded few MiB; a miss
#: costs only the seconds once the minute is known
_TIME_CACHE_MAX = 20_000


def reset_time_caches() -> None:
    """Forget the parsed ``eventTime`` strings, minutes and days (for measuring a cold run)."""
    _time_cache.clear()
    _minute_cache.clear()
    _day_cache.clear()


def parse_time_ms(value: Any) -> int | None:
    """Milliseconds since the epoch of a CloudTrail ``eventTime`` (ISO-8601 UTC), or None."""
    if not isinstance(value, str):
        return None
    got = _time_cache.get(value)
    if got is not None:
        return got
    if len(value) == 20 and value[10] == "T" and value[19] == "Z" and value[13] == ":" \
            and value[16] == ":":
        # CloudTrail's own form, 2026-01-12T10:00:00Z: the minute once, then the seconds
        minute = _minute_cache.get(value[:16])
        ss = value[17:19]
        if minute is not None and ss.isascii() and ss.isdigit() and ss < "60":
            ms = minute + int(ss) * 1000
            if len(_time_cache) > _TIME_CACHE_MAX:
                _time_cache.clear()
            _time_cache[value] = ms
            return ms
        day = _day_cache.get(value[:10])
        if day is None:
            try:
                day = int(dt.datetime.fromisoformat(value[:10] + "T00:00:00+00:00")
                          .timestamp()) * 1000
            except ValueError:
                return None
            if len(_day_cache) > 10_000:
                _day_cache.clear()
            _day_cache[value[:10]] = day
        hh, mm, ss = value[11:13], value[14:16], value[17:19]
        stamp = hh + mm + ss
        if not (stamp.isascii() and stamp.isdigit()):
            return None
        h, m, sec = int(hh), int(mm), int(ss)
        if h > 23 or m > 59 or sec > 59 or day < 0:
            return None
        ms = day + (h * 3600 + m * 60 + sec) * 1000
        if len(_time_cache) > _TIME_CACHE_MAX:
            _time_cache.clear()
        _time_cache[value] = ms
        if len(_minute_cache) > 100_000:
            _minute_cache.clear()
        _minute_cache[value[:16]] = ms - sec * 1000
        return ms
    if len(value) > 40:
        return None
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    ms = int(moment.timestamp() * 1000)
    if ms < 0:
        return None
    if len(_time_cache) > _TIME_CACHE_MAX:
        _time_cache.clear()
    _time_cache[value] = ms
    return ms


def key_prefix(key: str) -> str:
    """``raw/c01/s0001.wav`` -> ``raw/c01/``: the first two components of an object key."""
    first = key.find("/")
    if first < 0:
        return ""
    second = key.find("/", first + 1)
    return key[: second + 1] if second >= 0 else key[: first + 1]


def _bytes(value: int | float | str | None) -> int | None:
    if value is None:
        return 0
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value >= 0 else None
    try:
        number = float(value)
    except ValueError:
        return None
    return int(number) if math.isfinite(number) and number >= 0 else None


def _principal(ident: _Identity) -> tuple[str, str] | str:
    """(principal, session) or a rejection reason."""
    kind = ident.type
    arn = ident.arn
    if kind == "AssumedRole":
        issuer = ident.sessionContext.sessionIssuer if ident.sessionContext else None
        session = arn.rsplit("/", 1)[-1] if arn else (ident.principalId or "").split(":")[-1]
        if issuer is not None and issuer.arn:
            return issuer.arn, session
        if arn and ":assumed-role/" in arn:
            head, rest = arn.split(":assumed-role/", 1)
            owner = head.rsplit(":", 1)[-1]
            return f"arn:aws:iam::{owner}:role/{rest.rsplit('/', 1)[0]}", session
        return "userIdentity of an AssumedRole names no role"
    if kind == "AWSService":
        return f"service:{ident.invokedBy or 'unknown'}", ""
    account = ident.accountId
    if kind in ("Anonymous", "Unknown") or account in ("anonymous", "ANONYMOUS_PRINCIPAL"):
        return "anonymous", ""
    if arn:
        return arn, ""
    if kind == "AWSAccount":
        return f"account:{account or ident.principalId or 'unknown'}", ""
    if kind:
        return f"{kind}:{ident.principalId or 'unknown'}", ""
    return "userIdentity has neither a type nor an arn"


def network_of(source_ip: str | None, vpce: str | None, vpce_account: str | None = None,
               own_account: str | None = None) -> str:
    """The network a request came from: its VPC endpoint, the /16 (IPv4) or /48 (IPv6) of its
    source address, or ``aws`` when an AWS service made it.

    A VPC endpoint owned by another account than the one receiving the request
    (``vpcEndpointAccountId``, which CloudTrail records for requests through a VPC endpoint:
    https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-event-reference-record-contents.html)
    is ``vpce-foreign:<owner>:<id>``: the detector never treats it as familiar."""
    if vpce:
        if vpce_account and own_account and vpce_account != own_account:
            return f"vpce-foreign:{vpce_account}:{vpce}"
        return f"vpce:{vpce}"
    if not source_ip:
        return "unknown"
    if source_ip[0].isdigit() and source_ip.count(".") == 3:
        first, second, _ = source_ip.split(".", 2)
        return f"ip:{first}.{second}"
    if ":" in source_ip:
        return "ip6:" + ":".join(source_ip.split(":")[:3])
    return "aws"  # e.g. "s3.amazonaws.com" or "AWS Internal"


def agent_family(agent: str | None) -> str:
    """``[Boto3/1.35.2 md/Botocore#1.35.2 ...]`` -> ``boto3``; ``curl/8.5.0`` -> ``curl``."""
    if not agent:
        return "none"
    text = agent.lstrip("[").lstrip()
    end = len(text)
    for stop in ("/", " ", "]", ","):
        at = text.find(stop)
        if 0 <= at < end:
            end = at
    return text[:end].lower()[:40] or "none"


# -- normalising ---------------------------------------------------------------------------------


class Normaliser:
    """Turns records into :class:`EventBatch` es with one shared :class:`Vocab` and counts."""

    def __init__(self, *, strict: bool = False, vocab: Vocab | None = None) -> None:
        self.strict = strict
        self.vocab = vocab if vocab is not None else Vocab()
        self.stats = NormaliseStats()
        self._who_cache: dict[bytes, tuple[int, int] | str] = {}
        self._ctx_cache: dict[tuple[Any, ...], int] = {}
        self._ctx_rows: list[tuple[int, ...]] = []
        self._ctx_table: np.ndarray | None = None
        #: bucket -> key -> (obj, prefix) hashes
        self._obj_cache: dict[str, dict[str | None, tuple[int, int]]] = {}
        #: off: every record takes the record-by-record path (:meth:`_one`); for tests
        self._fast = True

    # -- entry points --

    def records(self, records: Iterable[Record]) -> EventBatch:
        """Normalise decoded :class:`Record` structs."""
        return self._build(records)

    def dicts(self, events: Iterable[Any]) -> EventBatch:
        """Normalise CloudTrail records given as dicts (one bad record is rejected alone).

        The dicts are encoded to JSON and decoded as a log file's records are (one code path)."""
        events = list(events)
        try:
            return self._build(_DECODE_RECORDS.decode(_ENCODE.encode(events)))
        except (msgspec.ValidationError, TypeError, OverflowError):
            pass
        decoded: list[Record] = []
        for index, event in enumerate(events):
            try:
                decoded.append(_DECODE_RECORD.decode(_ENCODE.encode(event)))
            except msgspec.ValidationError as exc:
                self._reject(index, f"wrong type: {_where(exc)}")
            except (TypeError, OverflowError):
                self._reject(index, "wrong type: a value that is not JSON")
        return self._build(decoded)

    def log_file(self, data: bytes | memoryview, name: str | None = None) -> EventBatch:
        """Normalise one decompressed log file (``{"Records": [...]}``): typed decoding, and
        record-by-record decoding with reasons if any record does not fit the typed shape."""
        try:
            return self._build(_DECODE_FILE.decode(data).Records)
        except msgspec.ValidationError:
            pass
        except msgspec.DecodeError as exc:
            from securepipe.errors import LogFileError

            raise LogFileError(name, f"not JSON ({exc})") from None
        document = _DECODE_ANY.decode(data)
        records = document.get("Records") if isinstance(document, dict) else None
        if not isinstance(records, list):
            from securepipe.errors import LogFileError

            raise LogFileError(name, "no Records list of events")
        return self.dicts(records)

    # -- core --

    def _reject(self, index: int | None, reason: str) -> None:
        if self.strict:
            raise MalformedEventError(index, reason)
        self.stats.reject(reason)

    def _who(self, raw: msgspec.Raw) -> tuple[int, int] | str:
        """(principal code, session code) of a raw ``userIdentity``, or why it is rejected:
        decided once per distinct identity (keyed by its JSON bytes)."""
        key = bytes(raw)
        who = self._who_cache.get(key)
        if who is None:
            try:
                ident = _DECODE_IDENTITY.decode(key) if key else None
            except msgspec.ValidationError as exc:
                at = str(exc).rpartition("`$")[2].rstrip("`")
                who = f"wrong type: userIdentity{at if '- at `$' in str(exc) else ''}"
            else:
                named = "userIdentity missing" if ident is None else _principal(ident)
                if isinstance(named, str):
                    who = named
                else:
                    v = self.vocab
                    who = (Vocab.code(v.principals, named[0]),
                           Vocab.code(v.sessions, f"{named[0]}\x00{named[1]}"))
            self._who_cache[key] = who
        return who

    def _context(self, who: tuple[int, int], kind: int, denied: bool, bucket: str,
                 rec: Record, method: str | None) -> int:
        """The code of an event's context: everything but its time, object and size
        (principal, session, kind, denied, bucket, network, agent family, authentication).
        Fleets repeat a few contexts for many events, so each is worked out once."""
        key = (who, kind, denied, bucket, rec.sourceIPAddress, rec.vpcEndpointId,
               rec.vpcEndpointAccountId, rec.recipientAccountId, rec.userAgent, method)
        code = self._ctx_cache.get(key)
        if code is None:
            v = self.vocab
            # codes are handed out in the order the per-record path always used
            bcode = Vocab.code(v.buckets, bucket)
            ncode = Vocab.code(v.networks, network_of(*key[4:8]))
            acode = Vocab.code(v.agents, agent_family(rec.userAgent))
            auth = 0 if method == "AuthHeader" else 1 if method == "QueryString" else 2
            code = self._ctx_cache[key] = len(self._ctx_rows)
            self._ctx_rows.append((who[0], who[1], kind, denied, bcode, ncode, acode, auth))
        return code

    def _build(self, records: Iterable[Record]) -> EventBatch:
        """Records -> columns. The common S3 read (no copy, no access point) takes the fast
        loop below: dict look-ups only, on the context (:meth:`_context`) and the identity (the
        previous record's, else :meth:`_who`); times are parsed for the whole batch at once
        (:func:`parse_times_ms`). Every other record, and every record when ``_fast`` is off, takes
        :meth:`_one`, the same rules record by record; a test holds the two to the same output."""
        records = list(records)  # a copy of the references only: a few ns per record
        if len(self._who_cache) > 100_000:
            self._who_cache.clear()
        if len(self._ctx_cache) > 100_000:
            self._ctx_cache.clear()
            self._ctx_rows.clear()
            self._ctx_table = None
        times = parse_times_ms([rec.eventTime for rec in records])
        bad_times = set(np.flatnonzero(times < 0).tolist())
        out = _Columns()
        kept, ctxs, sizes = out.kept.append, out.ctx.append, out.size.append
        objs, prefixes, versioned = out.obj.append, out.prefix.append, out.versioned.append
        kinds, s3, ctx_get, context = _KIND_OF_EVENT, S3_SOURCES, self._ctx_cache.get, \
            self._context
        fast = self._fast
        obj_cache = self._obj_cache
        if sum(map(len, obj_cache.values())) > _OBJECT_CACHE_MAX:
            obj_cache.clear()
        last_ctx_key: tuple[Any, ...] = ()
        ctx = 0
        objects: dict[str | None, tuple[int, int]] = {}
        last_raw: msgspec.Raw | None = None
        last_who: tuple[int, int] | str = ""
        ignored = 0
        for index, rec in enumerate(records):
            kind = kinds.get(rec.eventName)  # type: ignore[arg-type]  # None -> no kind
            if kind is None or kind == COPY or not fast or rec.eventSource not in s3:
                ignored += self._one(index, rec, kind, index not in bad_times, out)
                continue
            if bad_times and index in bad_times:
                self._reject(index, "eventTime missing or not an ISO-8601 UTC time")
                continue
            # runs of one session's requests are the rule: compare with the last identity
            raw = rec.userIdentity
            if raw != last_raw:
                last_raw, last_who = raw, self._who(raw)
            who = last_who
            if who.__class__ is str:
                self._reject(index, who)
                continue
            params = rec.requestParameters
            bucket = params.bucketName if params is not None else None
            if not bucket:
                self._reject(index, "requestParameters.bucketName missing")
                continue
            key = params.key  # type: ignore[union-attr]
            if not key and kind != LIST:
                self._reject(index, "requestParameters.key missing")
                continue
            if bucket.endswith("-s3alias") or bucket.startswith("arn:"):
                bucket = _through_access_point(rec, bucket)
            extra = rec.additionalEventData
            method = None
            size = 0
            if extra is not None:
                got = extra.bytesTransferredOut
                if got.__class__ is not int or got < 0:
                    got = _bytes(got)
                    if got is None:
                        self._reject(index, "bytesTransferredOut is not a non-negative number")
                        continue
                size = got
                method = extra.AuthenticationMethod
            # the same context as the last record's: compared, not hashed (hashing each
            # record's fresh strings costs more than comparing them)
            ctx_key = (who, kind, rec.errorCode is not None, bucket, rec.sourceIPAddress,
                       rec.vpcEndpointId, rec.vpcEndpointAccountId, rec.recipientAccountId,
                       rec.userAgent, method)
            if ctx_key != last_ctx_key:
                last_ctx_key = ctx_key
                got_ctx = ctx_get(ctx_key)
                ctx = got_ctx if got_ctx is not None else context(
                    who, kind, rec.errorCode is not None, bucket, rec, method)  # type: ignore[arg-type]
                got_objects = obj_cache.get(bucket)
                if got_objects is None:
                    got_objects = obj_cache[bucket] = {}
                objects = got_objects
            if params.versionId:  # type: ignore[union-attr]
                versioned(len(out.kept))
            kept(index)
            ctxs(ctx)
            sizes(size)
            # a dataset's objects are read again and again (epochs): hash each once
            hashed = objects.get(key)
            if hashed is None:
                hashed = objects[key] = _object_hashes(bucket, key)
            objs(hashed[0])
            prefixes(hashed[1])
        self.stats.ignored += ignored
        self.stats.accepted += len(out.kept)
        return self._batch(out, times)

    def _one(self, index: int, rec: Record, kind: int | None, timed: bool,
             out: _Columns) -> int:
        """One record by the full rules (KMS, copies, anything unusual); returns 1 if it is
        ignored (not an event the detector reads), else 0 (kept, or rejected and counted)."""
        if kind is None or rec.eventSource not in S3_SOURCES:
            if rec.eventSource == KMS_SOURCE and rec.eventName in KMS_DATA_EVENTS:
                kind = DECRYPT
            elif rec.eventName is None:
                self._reject(index, "eventName missing")
                return 0
            else:
                return 1
        if not timed:
            self._reject(index, "eventTime missing or not an ISO-8601 UTC time")
            return 0
        who = self._who(rec.userIdentity)
        if isinstance(who, str):
            self._reject(index, who)
            return 0
        params = rec.requestParameters
        if kind == DECRYPT:
            # the KMS key stands where a bucket would: the rules group by role and key
            bucket = _kms_key(rec)
            if not bucket:
                self._reject(index, "the KMS key is not named")
                return 0
            out.add(index, self._context(who, DECRYPT, rec.errorCode is not None, bucket, rec,
                                         None), 0, "", None, False, -1, False)
            return 0
        bucket = params.bucketName if params is not None else None
        if not bucket:
            self._reject(index, "requestParameters.bucketName missing")
            return 0
        key = params.key if params is not None else None
        dest = -1
        foreign = False
        versioned = params is not None and bool(params.versionId)
        if kind == COPY:
            source = params.copy_source if params is not None else None
            if not source:
                self._reject(index, "a copy without x-amz-copy-source")
                return 0
            versioned = "versionId=" in source  # the copy reads that version of its source
            source = unquote(source.split("?", 1)[0]).lstrip("/")
            if "/" not in source:
                self._reject(index, "x-amz-copy-source is not bucket/key")
                return 0
            dest = Vocab.code(self.vocab.buckets, bucket)
            foreign = _owner(rec, bucket) not in (None, rec.recipientAccountId)
            bucket, key = source.split("/", 1)
        elif kind != LIST and not key:
            self._reject(index, "requestParameters.key missing")
            return 0
        elif bucket.endswith("-s3alias") or bucket.startswith("arn:"):
            bucket = _through_access_point(rec, bucket)
        extra = rec.additionalEventData
        size = 0
        method = None
        if extra is not None:
            got = extra.bytesTransferredOut
            if type(got) is not int or got < 0:
                got = _bytes(got)
                if got is None:
                    self._reject(index, "bytesTransferredOut is not a non-negative number")
                    return 0
            size = got
            method = extra.AuthenticationMethod
        out.add(index, self._context(who, kind, rec.errorCode is not None, bucket, rec, method),
                size, bucket, key, versioned, dest, foreign)
        return 0

    def _batch(self, out: _Columns, times: np.ndarray) -> EventBatch:
        n = len(out.kept)
        if not n:
            return empty_batch()
        rows = self._ctx_rows
        table = self._ctx_table
        if table is None or table.shape[0] < len(rows):
            have = 0 if table is None else table.shape[0]
            more = np.array(rows[have:], dtype=np.int64).reshape(-1, 8)
            table = self._ctx_table = more if table is None else np.concatenate([table, more])
        ctx = table[np.frombuffer(out.ctx, dtype=np.int32)]
        dest = np.full(n, -1, np.int32)
        foreign = np.zeros(n, bool)
        versioned = np.zeros(n, bool)
        versioned[out.versioned] = True
        for at, code, other in out.copies:
            dest[at] = code
            foreign[at] = other
        return EventBatch(
            times[np.frombuffer(out.kept, dtype=np.int64)], ctx[:, 0].astype(np.int32),
            ctx[:, 1].astype(np.int32), ctx[:, 2].astype(np.int8), ctx[:, 3].astype(bool),
            np.frombuffer(out.size, dtype=np.int64).copy(), ctx[:, 4].astype(np.int32),
            np.frombuffer(out.obj, dtype=np.int64).copy(),
            np.frombuffer(out.prefix, dtype=np.int64).copy(), dest, foreign,
            ctx[:, 5].astype(np.int32), ctx[:, 6].astype(np.int32), ctx[:, 7].astype(np.int8),
            versioned)


class _Columns:
    """The columns of one batch as they are built (typed machine arrays, no Python int per
    cell kept); the per-context columns are looked up from the context code at the end."""

    __slots__ = ("copies", "ctx", "kept", "obj", "prefix", "size", "versioned")

    def __init__(self) -> None:
        self.kept = array.array("q")  # the record's index (its time, parsed for the batch)
        self.ctx = array.array("i")
        self.size = array.array("q")
        self.obj = array.array("q")
        self.prefix = array.array("q")
        self.versioned: list[int] = []  # positions of events naming a version
        self.copies: list[tuple[int, int, bool]] = []  # (position, destination, foreign)

    def add(self, index: int, ctx: int, size: int, bucket: str, key: str | None,
            versioned: bool, dest: int, foreign: bool) -> None:
        at = len(self.kept)
        if versioned:
            self.versioned.append(at)
        if dest >= 0:
            self.copies.append((at, dest, foreign))
        self.kept.append(index)
        self.ctx.append(ctx)
        self.size.append(size)
        obj, prefix = _object_hashes(bucket, key)
        self.obj.append(obj)
        self.prefix.append(prefix)


#: distinct (bucket, key) pairs whose hashes are kept (then the cache starts over): ~300 bytes
#: each (the key, two hashes, the entry), so at most ~30 MiB
_OBJECT_CACHE_MAX = 100_000


def _object_hashes(bucket: str, key: str | None) -> tuple[int, int]:
    """(``obj``, ``prefix``) of an event: hashes of ``bucket/key`` (never 0) and of
    ``bucket/`` + :func:`key_prefix`; (0, 0) for a bucket-level request."""
    if not key:
        return 0, 0
    return hash(f"{bucket}/{key}") or 1, hash(f"{bucket}/{key_prefix(key)}")


#: the separators of CloudTrail's own time form, ``2026-01-12T10:00:00Z``
_SEP_AT = np.array([4, 7, 10, 13, 16, 19])
_SEPS = np.frombuffer(b"--T::Z", np.uint8)
_DIGIT_AT = np.array([0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18])


def parse_times_ms(values: list[Any]) -> np.ndarray:
    """:func:`parse_time_ms` of each value (-1 where it gives None), for a whole batch: when
    every value has CloudTrail's 20-character form, with numpy (each distinct day parsed
    once, by the same code); a value that does not fit, and every value of a batch that
    mixes forms, goes through :func:`parse_time_ms` itself."""
    n = len(values)
    out: np.ndarray | None = None
    try:
        blob = "".join(values).encode("ascii")
    except (TypeError, UnicodeEncodeError):
        blob = b""
    if n and len(blob) == 20 * n and set(map(len, values)) == {20}:
        chars = np.frombuffer(blob, np.uint8).reshape(n, 20)
        c = chars - np.uint8(48)  # digits 0-9; anything else above 9 (uint8 wraps)
        fits = (chars[:, _SEP_AT] == _SEPS).all(axis=1) & (c[:, _DIGIT_AT] <= 9).all(axis=1)
        d = [c[:, i].astype(np.int32) for i in range(19)]
        ymd = ((d[0] * 10 + d[1]) * 100 + d[2] * 10 + d[3]) * 10_000 + (d[5] * 10 + d[6]) * 100 \
            + d[8] * 10 + d[9]
        hh, mm, ss = d[11] * 10 + d[12], d[14] * 10 + d[15], d[17] * 10 + d[18]
        fits &= (hh <= 23) & (mm <= 59) & (ss <= 59)
        days, which = np.unique(np.where(fits, ymd, 0), return_inverse=True)
        day_ms = np.array([_day_ms(int(x)) for x in days.tolist()], np.int64)[which]
        fits &= day_ms >= 0
        out = np.where(fits, day_ms + (hh * 3600 + mm * 60 + ss).astype(np.int64) * 1000, -1)
        misfits = np.flatnonzero(~fits).tolist()
    else:
        out = np.empty(n, np.int64)
        misfits = list(range(n))
    for i in misfits:
        ms = parse_time_ms(values[i])
        out[i] = -1 if ms is None else ms
    return out


def _day_ms(ymd: int) -> int:
    """The first millisecond of day ``yyyymmdd`` (as :func:`parse_time_ms` reads the date of a
    20-character time), or -1 if it is no day since the epoch."""
    date = f"{ymd // 10000:04d}-{ymd // 100 % 100:02d}-{ymd % 100:02d}"
    day = _day_cache.get(date)
    if day is None:
        try:
            day = int(dt.datetime.fromisoformat(date + "T00:00:00+00:00").timestamp()) * 1000
        except ValueError:
            return -1
        if len(_day_cache) > 10_000:
            _day_cache.clear()
        _day_cache[date] = day
    return day if day >= 0 else -1


def _through_access_point(rec: Record, bucket: str) -> str:
    """The bucket behind an access point named by its alias or ARN: the record's
    ``AWS::S3::Bucket`` resource. A request through an access point lists the object, the
    bucket and the access point's ARN in ``resources`` (as AWS documents for access points, e.g.
    https://docs.aws.amazon.com/AmazonS3/latest/userguide/access-points-directory-buckets-monitoring-logging.html),
    so reads through it count against the bucket's size and its readers' thresholds."""
    for res in _resources(rec):
        if res.type == "AWS::S3::Bucket" and res.ARN and res.ARN.startswith("arn:aws:s3:::"):
            return res.ARN[13:]
    return bucket


def _resources(rec: Record) -> list[_Resource]:
    """The record's ``resources``, decoded (an entry of the wrong shape reads as none)."""
    if not rec.resources:
        return []
    try:
        return _DECODE_RESOURCES.decode(rec.resources) or []
    except msgspec.ValidationError:
        return []


def _kms_key(rec: Record) -> str | None:
    """The KMS key of a KMS record: its ``resources`` entry (the key ARN, as AWS logs it),
    else ``requestParameters.keyId``."""
    for res in _resources(rec):
        arn = res.ARN
        if arn and arn.startswith("arn:") and ":kms:" in arn:
            return arn
    params = rec.requestParameters
    return params.keyId if params is not None and params.keyId else None


def _owner(rec: Record, bucket: str) -> str | None:
    """The account owning ``bucket`` according to the record's ``resources`` (None if absent)."""
    for res in _resources(rec):
        if res.type == "AWS::S3::Bucket" and f"arn:aws:s3:::{bucket}" == res.ARN:
            return res.accountId
    return None


def _where(exc: msgspec.ValidationError) -> str:
    text = str(exc)
    at = text.rfind("`$")
    return text[at:].strip("`").replace("$.", "") if at >= 0 else text[:60]


def normalise(events: Iterable[Any], *, strict: bool = False,
              vocab: Vocab | None = None) -> tuple[EventBatch, Normaliser]:
    """Dict records -> (:class:`EventBatch`, the :class:`Normaliser` with vocab and stats)."""
    norm = Normaliser(strict=strict, vocab=vocab)
    return norm.dicts(events), norm
