"""Voice data wherever it is: recognise biometric content by its bytes, in every bucket.

The kit's checks used to look only at buckets named the kit's way
(``securepipe-<role>-<account>-<region>``). A shadow copy (``voice-exports-<acct>`` holding a
plaintext WAV) was invisible. :func:`discover_voice_buckets` samples objects in every bucket the
caller can list and read, and :func:`recognise` names what the first bytes are:

* audio: RIFF/WAVE, FLAC (``fLaC``), Ogg (``OggS``; Opus when the first page carries
  ``OpusHead``), MP3 (an ``ID3`` tag, or an MPEG audio frame sync: 11 set bits);
* features: NumPy ``.npy`` (``\\x93NUMPY``) and the kit's own container
  (:data:`securepipe.features.extract.FORMAT_MAGIC`);
* AWS Encryption SDK messages (version 1 or 2 header with a known algorithm suite,
  https://docs.aws.amazon.com/encryption-sdk/latest/developer-guide/message-format.html): the
  kit's client-side format, so a bucket of them holds (encrypted) voice data.

A bucket where any of these is found is added to the checks' configuration as a
``discovered`` bucket and checked like a kit data bucket: encryption, TLS, lifecycle, access,
client-side encryption, trail coverage. Every sample is bounded (stated in
:data:`DISCOVERY_BOUNDS`), so an account with huge buckets costs a fixed number of calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import boto3

from securepipe.checks._base import (
    DISCOVERED,
    EVALUATION_ERRORS,
    Check,
    CheckContext,
    ResourceResult,
    Status,
    could_not_evaluate,
)
from securepipe.clients import shared_client
from securepipe.features.extract import FORMAT_MAGIC

#: Bytes read from the start of each sampled object (GetObject with ``Range``).
HEAD_BYTES = 64
#: Per bucket: at most this many ListObjectVersions pages (1,000 entries each) and GETs.
LIST_PAGES = 1
OBJECTS_PER_BUCKET = 8
#: At most this many buckets outside the kit's naming are sampled.
MAX_BUCKETS = 100
DISCOVERY_BOUNDS = (f"discovery samples at most {MAX_BUCKETS} buckets, each with "
                    f"{LIST_PAGES} ListObjectVersions page(s) and {OBJECTS_PER_BUCKET} ranged "
                    f"GETs of {HEAD_BYTES} bytes")

_ARCHIVAL = frozenset({"GLACIER", "DEEP_ARCHIVE"})


@dataclass(frozen=True)
class Content:
    """What the first bytes of an object are: ``kind`` names it; ``voice`` is biometric
    content (audio or features) in the clear; ``esdk`` an AWS Encryption SDK message."""

    kind: str
    voice: bool = False
    esdk: bool = False

    @property
    def biometric(self) -> bool:
        """Voice data, in the clear or client-side encrypted."""
        return self.voice or self.esdk


def _suite(raw: bytes) -> str | None:
    from aws_encryption_sdk.identifiers import Algorithm

    if len(raw) < 2:
        return None
    try:
        return str(Algorithm.get_by_id(int.from_bytes(raw[:2], "big")).name)
    except (KeyError, ValueError):
        return None


def _mpeg_frame(head: bytes) -> bool:
    """An MPEG-1/2/2.5 audio frame header: 11-bit sync, a valid version, layer III, a bitrate
    index other than 0/15 and a sample-rate index other than 3 (ISO/IEC 11172-3 frame header)."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return False
    version, layer = (head[1] >> 3) & 0x3, (head[1] >> 1) & 0x3
    bitrate, rate = head[2] >> 4, (head[2] >> 2) & 0x3
    return version != 1 and layer == 1 and bitrate not in (0, 15) and rate != 3


def recognise(head: bytes) -> Content:
    """Name the content that starts with ``head`` (see the module docstring)."""
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE":
        return Content("a plaintext WAV recording", voice=True)
    if head.startswith(b"RIFF"):
        return Content("a plaintext RIFF file (WAV?)", voice=True)
    if head.startswith(b"fLaC"):
        return Content("a plaintext FLAC recording", voice=True)
    if head.startswith(b"OggS"):
        codec = "Opus" if b"OpusHead" in head else "Vorbis" if b"vorbis" in head else "Ogg"
        return Content(f"a plaintext Ogg/{codec} recording", voice=True)
    if head.startswith(b"ID3") or _mpeg_frame(head):
        return Content("a plaintext MP3 recording", voice=True)
    if head.startswith(b"\x93NUMPY"):
        return Content("a plaintext NumPy .npy array", voice=True)
    if head.startswith(FORMAT_MAGIC):
        return Content("a plaintext securepipe feature matrix", voice=True)
    if head[:1] == b"\x02" and (name := _suite(head[1:3])):
        return Content(f"ESDK message v2, {name}", esdk=True)
    if head[:2] == b"\x01\x80" and (name := _suite(head[2:4])):
        return Content(f"ESDK message v1, {name}", esdk=True)
    if head.startswith(b"gAAAAA"):
        return Content("a Fernet token (one shared key, bound to no contractor or sample)")
    return Content(f"unrecognised (starts {head[:8]!r})")


@dataclass(frozen=True)
class Sighting:
    """What sampling one bucket outside the kit's naming found.

    ``status``: ``fail`` voice data found (the bucket is then checked like a data bucket),
    ``pass`` none in the sample, ``unverifiable`` the bucket could not be listed or read.
    """

    bucket: str
    status: Status
    evidence: str
    found: tuple[str, ...] = ()


def list_versions(s3: Any, bucket: str, pages: int) -> tuple[list[dict[str, Any]], bool]:
    """Up to ``pages`` ListObjectVersions pages (current and noncurrent versions; delete
    markers carry no content and are left out); ``True`` if more remain.
    (https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectVersions.html)"""
    versions: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"Bucket": bucket, "MaxKeys": 1000}
    for _ in range(pages):
        page = s3.list_object_versions(**kwargs)
        versions.extend(page.get("Versions", []))
        if not page.get("IsTruncated"):
            return versions, False
        kwargs["KeyMarker"] = page.get("NextKeyMarker")
        if page.get("NextVersionIdMarker"):
            kwargs["VersionIdMarker"] = page["NextVersionIdMarker"]
    return versions, True


def spread(items: Sequence[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """``n`` items spread evenly over ``items`` (the first and then every ``len/n``-th)."""
    if n <= 0 or not items:
        return []
    if len(items) <= n:
        return list(items)
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def stratified(versions: Sequence[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """``n`` versions, half current and half noncurrent (either side takes the other's unused
    share): plaintext kept only as an old version is sampled as surely as a current one."""
    current = [v for v in versions if v.get("IsLatest", True)]
    old = [v for v in versions if not v.get("IsLatest", True)]
    take_old = min(len(old), max(n - len(current), n // 2))
    return spread(current, n - take_old) + spread(old, take_old)


def read_head(s3: Any, bucket: str, version: dict[str, Any]) -> bytes:
    """The first :data:`HEAD_BYTES` of one version (GetObject with ``Range`` and ``VersionId``,
    https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html)."""
    kwargs: dict[str, Any] = {"Bucket": bucket, "Key": version["Key"],
                              "Range": f"bytes=0-{HEAD_BYTES - 1}"}
    if version.get("VersionId") not in (None, "null"):
        kwargs["VersionId"] = version["VersionId"]
    return bytes(s3.get_object(**kwargs)["Body"].read())


def _sample_bucket(s3: Any, bucket: str) -> Sighting:
    try:
        versions, more = list_versions(s3, bucket, LIST_PAGES)
    except EVALUATION_ERRORS as exc:
        return Sighting(bucket, "unverifiable", f"not sampled: {could_not_evaluate(exc)}")
    readable = [v for v in versions if v.get("StorageClass") not in _ARCHIVAL
                and int(v.get("Size", 1)) > 0]
    found: list[str] = []
    unread: list[str] = []
    sample = stratified(readable, OBJECTS_PER_BUCKET)
    for v in sample:
        try:
            content = recognise(read_head(s3, bucket, v))
        except EVALUATION_ERRORS as exc:
            unread.append(f"{v['Key']} ({could_not_evaluate(exc)})")
            continue
        if content.biometric:
            old = "" if v.get("IsLatest", True) else " (noncurrent version)"
            found.append(f"{v['Key']}{old}: {content.kind}")
    listed = f"{len(sample)} of {len(versions)}{'+' if more else ''} version(s) sampled"
    if found:
        return Sighting(bucket, "fail", f"voice data outside the kit's buckets: "
                        f"{'; '.join(found[:3])}" + ("; ..." if len(found) > 3 else "")
                        + f" ({listed})", tuple(found))
    if unread:
        return Sighting(bucket, "unverifiable", f"{len(unread)} sampled object(s) unreadable: "
                        f"{'; '.join(unread[:2])} ({listed})")
    return Sighting(bucket, "pass", f"no voice data recognised ({listed})")


def discover_voice_buckets(session: boto3.Session, *, known: Sequence[str] = (),
                           names: Sequence[str] | None = None) -> tuple[list[Sighting], list[str]]:
    """Sample every bucket outside ``known`` (ListBuckets, or ``names``) for voice data.

    Returns the sightings and notes (what could not be listed, the bounds). A bucket that cannot
    be listed or read is an ``unverifiable`` sighting with the reason; the others go on.
    """
    notes: list[str] = []
    s3 = shared_client(session, "s3")
    if names is None:
        try:
            names = [str(b["Name"]) for b in s3.list_buckets().get("Buckets", [])]
        except EVALUATION_ERRORS as exc:
            return [], [f"voice-data discovery: buckets not listed ({could_not_evaluate(exc)})"]
    others = [n for n in names if n not in set(known)]
    if len(others) > MAX_BUCKETS:
        notes.append(f"voice-data discovery: {len(others)} buckets, only the first "
                     f"{MAX_BUCKETS} sampled")
    sightings = [_sample_bucket(s3, name) for name in sorted(others)[:MAX_BUCKETS]]
    notes.append(DISCOVERY_BOUNDS)
    return sightings, notes


def _inventory(ctx: CheckContext) -> list[ResourceResult]:
    """ListBuckets with this run's identity (a failure is an error, never "nothing found"),
    then :func:`discover_voice_buckets` on every bucket outside the kit's configuration."""
    names = [str(b["Name"]) for b in ctx.client("s3").list_buckets().get("Buckets", [])]
    kit = [b.name for b in ctx.config.buckets if b.role != DISCOVERED]
    sightings, _ = ctx.memo("discover_voice_buckets", lambda: discover_voice_buckets(
        ctx.session, known=kit, names=names))
    results = [ResourceResult(s.bucket, s.status, s.evidence) for s in sightings]
    if not results:
        return [ResourceResult("account", "pass", f"all {len(names)} bucket(s) in the account "
                               "are the kit's; none outside to sample")]
    return results


CHECKS: list[Check] = [
    Check(
        id="s3_voice_data_only_in_kit_buckets", title="No voice data outside the kit's buckets "
        "(recognised by its bytes)", severity="high", step=1, checklist_item=5,
        rationale="A shadow copy (an export, a debug dump, a colleague's scratch bucket) is "
        "outside the inventory: erasure, retention and the access review never reach it. "
        "Every bucket the caller can read is sampled; audio (WAV, FLAC, Ogg/Opus, MP3), NumPy "
        "arrays, the kit's feature container and ESDK messages are recognised by their first "
        "bytes, and a bucket holding any is also checked like a kit data bucket.",
        remediation="move the data into the kit's buckets (securepipe.encryption.upload."
        "upload_sample for recordings), erase the copy, every version (securepipe.retention."
        "erasure), or name the bucket with --bucket so it is governed like the others",
        evaluate=_inventory),
]
