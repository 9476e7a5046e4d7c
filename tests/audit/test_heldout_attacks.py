"""Held-out attacks on the fleet detector, written without reading the scenario library.

The traffic here is the test's own: a fleet (a trainer re-reading the features bucket every
epoch under a new session name, an extractor reading each new recording and re-reading the raw
bucket every Sunday, contractors uploading their own prefixes, a QA analyst sampling a few
recordings, a Glue crawler listing the features weekly, a nightly backup copy to the
organisation's DR account) and exfiltration attempts, all as CloudTrail S3 data events in the
record shape AWS documents:
https://docs.aws.amazon.com/AmazonS3/latest/userguide/cloudtrail-logging-understanding-s3-entries.html
and https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-event-reference-record-contents.html
(``userIdentity`` types: .../cloudtrail-event-reference-user-identity.html). They go through the
detector's public API only (:class:`Normaliser`, :meth:`FleetBaseline.fit`,
:func:`detect_fleet`, :class:`FleetDetector`), as a user would.

An attack is *caught* when an alert that the same normal days alone do not raise comes at or
after its start. Each normal shape must raise at most one alert per simulated day.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from securepipe.audit.events import EventBatch, Normaliser, Vocab
from securepipe.audit.fleet import FleetAlert, FleetBaseline, FleetDetector, detect_fleet

ACCT = "210987654321"
DR_ACCT = "210987650000"  # the organisation's backup account (a known copy destination)
EVIL_ACCT = "666677778888"
REGION = "eu-central-1"
KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"
RAW = f"voice-raw-{ACCT}"
FEAT = f"voice-features-{ACCT}"
DR_BUCKET = f"voice-dr-{DR_ACCT}"
CONTRACTORS = 20
PER_CONTRACTOR = 100  # objects per contractor prefix at the start
RAW_BYTES = 180_000
FEAT_BYTES = 24_000
START = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)  # a Sunday
DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MIN_MS = 60_000
BASE_DAYS = 14
EVAL_DAYS = 3
EVAL_MS = int(START.timestamp() * 1000) + BASE_DAYS * DAY_MS  # a Sunday: Sunday, Monday, Tuesday
ATTACK_MS = EVAL_MS + DAY_MS + 9 * HOUR_MS  # Monday 09:00 of the evaluated days
SUNDAY_MS = EVAL_MS + 2 * HOUR_MS + 10 * MIN_MS  # ten minutes into the weekly full re-read
TRAINER_VPCE = "vpce-0a1b2c3d4e5f60718"
OFFICE = "198.51.100."
BOTO = "[Boto3/1.34.69 md/Botocore#1.34.69 ua/2.0 os/linux#5.10 md/arch#x86_64 lang/python#3.11]"
CLI = "[aws-cli/2.15.30 md/awscrt#0.19.19 ua/2.0 os/macos#23.4.0 md/arch#arm64 lang/python#3.11]"
JAVA = "[aws-sdk-java/1.12.600 Linux/5.10 OpenJDK_64-Bit_Server_VM/17 java/17 vendor/Amazon]"


def raw_key(c: int, s: int) -> str:
    return f"raw/c{c:02d}/s{s:05d}.wav"


def feat_key(c: int, s: int) -> str:
    return f"features/c{c:02d}/s{s:05d}.npz"


def role(name: str, session: str, *, arn: bool = True) -> dict[str, Any]:
    ident: dict[str, Any] = {
        "type": "AssumedRole",
        "principalId": f"AROAXYZ{zlib.crc32(name.encode()) % 10**9:09d}:{session}",
        "arn": f"arn:aws:sts::{ACCT}:assumed-role/{name}/{session}",
        "accountId": ACCT,
        "accessKeyId": "ASIA" + uuid.uuid5(uuid.NAMESPACE_DNS, session).hex[:16].upper(),
        "sessionContext": {
            "sessionIssuer": {
                "type": "Role",
                "principalId": f"AROAXYZ{zlib.crc32(name.encode()) % 10**9:09d}",
                "arn": f"arn:aws:iam::{ACCT}:role/{name}",
                "accountId": ACCT,
                "userName": name,
            },
            "attributes": {"creationDate": "2026-03-01T00:00:00Z", "mfaAuthenticated": "false"},
        },
    }
    if not arn:
        ident["arn"] = None
    return ident


def user(name: str) -> dict[str, Any]:
    return {
        "type": "IAMUser",
        "principalId": "AIDAEXAMPLE" + name.upper()[:8],
        "arn": f"arn:aws:iam::{ACCT}:user/{name}",
        "accountId": ACCT,
        "accessKeyId": "AKIAEXAMPLE" + name.upper()[:8],
        "userName": name,
    }


def federated(name: str) -> dict[str, Any]:
    # GetFederationToken: the issuer is the IAM user that called it
    return {
        "type": "FederatedUser",
        "principalId": f"{ACCT}:{name}",
        "arn": f"arn:aws:sts::{ACCT}:federated-user/{name}",
        "accountId": ACCT,
        "accessKeyId": "ASIAFEDERATED" + name.upper()[:6],
        "sessionContext": {
            "sessionIssuer": {
                "type": "IAMUser",
                "principalId": "AIDABROKER",
                "arn": f"arn:aws:iam::{ACCT}:user/token-broker",
                "accountId": ACCT,
                "userName": "token-broker",
            },
            "attributes": {"creationDate": "2026-03-03T08:00:00Z", "mfaAuthenticated": "false"},
        },
    }


def service(invoked_by: str) -> dict[str, Any]:
    return {"type": "AWSService", "invokedBy": invoked_by}


@dataclass
class Trail:
    """Makes CloudTrail S3 data-event records in the documented shape."""

    out: list[dict[str, Any]] = field(default_factory=list)
    n: int = 0

    def emit(
        self,
        t_ms: int,
        name: str,
        ident: dict[str, Any],
        bucket: str,
        key: str | None,
        *,
        ip: str,
        agent: str,
        nbytes: int | float | str | None = 0,
        vpce: str | None = None,
        auth: str = "AuthHeader",
        error: str | None = None,
        params: dict[str, Any] | None = None,
        resources: list[dict[str, Any]] | None = None,
        extra: bool = True,
    ) -> None:
        self.n += 1
        when = dt.datetime.fromtimestamp(t_ms / 1000, dt.UTC)
        request: dict[str, Any] = {
            "bucketName": bucket,
            "Host": f"{bucket}.s3.{REGION}.amazonaws.com",
        }
        if key is not None:
            request["key"] = key
        request.update(params or {})
        if resources is None:
            resources = [
                {
                    "type": "AWS::S3::Bucket",
                    "ARN": f"arn:aws:s3:::{bucket}",
                    "accountId": ACCT if not bucket.endswith(EVIL_ACCT) else EVIL_ACCT,
                }
            ]
            if key is not None:
                resources.insert(
                    0, {"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{key}"}
                )
        rec: dict[str, Any] = {
            "eventVersion": "1.10",
            "userIdentity": ident,
            "eventTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "eventSource": "s3.amazonaws.com",
            "eventName": name,
            "awsRegion": REGION,
            "sourceIPAddress": ip,
            "userAgent": agent,
            "requestParameters": request,
            "responseElements": None,
            "requestID": f"{self.n:016X}",
            "eventID": str(uuid.UUID(int=self.n)),
            "readOnly": name
            not in (
                "PutObject",
                "CopyObject",
                "UploadPartCopy",
                "CompleteMultipartUpload",
                "RestoreObject",
            ),
            "resources": resources,
            "eventType": "AwsApiCall",
            "managementEvent": False,
            "recipientAccountId": ACCT,
            "eventCategory": "Data",
            "tlsDetails": {
                "tlsVersion": "TLSv1.3",
                "cipherSuite": "TLS_AES_128_GCM_SHA256",
                "clientProvidedHostHeader": request["Host"],
            },
        }
        if extra:
            rec["additionalEventData"] = {
                "SignatureVersion": "SigV4",
                "CipherSuite": "TLS_AES_128_GCM_SHA256",
                "bytesTransferredIn": 0,
                "AuthenticationMethod": auth,
                "x-amz-id-2": "EXAMPLEid2",
                "bytesTransferredOut": nbytes,
            }
        if vpce:
            rec["vpcEndpointId"] = vpce
        if error:
            rec["errorCode"], rec["errorMessage"] = error, "Access Denied"
            rec["responseElements"] = None
        self.out.append(rec)

    def kms(self, t_ms: int, ident: dict[str, Any], ip: str, agent: str) -> None:
        """A KMS Decrypt (a management event, kms.amazonaws.com)."""
        self.n += 1
        when = dt.datetime.fromtimestamp(t_ms / 1000, dt.UTC)
        self.out.append(
            {
                "eventVersion": "1.08",
                "userIdentity": ident,
                "eventTime": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "eventSource": "kms.amazonaws.com",
                "eventName": "Decrypt",
                "awsRegion": REGION,
                "sourceIPAddress": ip,
                "userAgent": agent,
                "requestParameters": {
                    "encryptionAlgorithm": "SYMMETRIC_DEFAULT",
                    "encryptionContext": {"aws-crypto-public-key": "A1b2"},
                },
                "responseElements": None,
                "requestID": str(uuid.UUID(int=self.n)),
                "eventID": str(uuid.UUID(int=10**12 + self.n)),
                "readOnly": True,
                "resources": [
                    {
                        "accountId": ACCT,
                        "type": "AWS::KMS::Key",
                        "ARN": f"arn:aws:kms:{REGION}:{ACCT}:key/{KEY_ID}",
                    }
                ],
                "eventType": "AwsApiCall",
                "managementEvent": True,
                "recipientAccountId": ACCT,
                "eventCategory": "Management",
            }
        )


# ---------------------------------------------------------------------------------------------
# the fleet at work


@dataclass
class Fleet:
    """The dataset as it grows: how many samples each contractor prefix holds."""

    counts: list[int] = field(default_factory=lambda: [PER_CONTRACTOR] * CONTRACTORS)

    def all(self) -> list[tuple[int, int]]:
        return [(c, s) for c in range(CONTRACTORS) for s in range(self.counts[c])]


def epoch(
    tr: Trail,
    t0: int,
    fleet: Fleet,
    rng: np.random.Generator,
    *,
    ranged: int = 1,
    vpce: str | None = TRAINER_VPCE,
    ip: str = "10.20.3.44",
    minutes: int = 50,
) -> None:
    """One training epoch: every feature object, in shuffled order, over about ``minutes``,
    under a new session name (a new ECS task); ``ranged`` parts per object (s3transfer)."""
    sess = f"train-{uuid.UUID(int=int(rng.integers(2**62))).hex[:12]}"
    items = fleet.all()
    order = rng.permutation(len(items))
    step = minutes * MIN_MS / len(items)
    for j, i in enumerate(order):
        c, s = items[int(i)]
        for part in range(ranged):
            size = FEAT_BYTES // ranged
            tr.emit(
                int(t0 + j * step) + part,
                "GetObject",
                role("ml-training", sess),
                FEAT,
                feat_key(c, s),
                ip=ip,
                agent=BOTO,
                nbytes=float(size),
                vpce=vpce,
                params={"Range": f"bytes={part * size}-{(part + 1) * size - 1}"}
                if ranged > 1
                else None,
            )


def ingest_day(
    tr: Trail, day_ms: int, fleet: Fleet, rng: np.random.Generator, new: int
) -> list[tuple[int, int]]:
    """Contractors upload ``new`` recordings in working hours; the extractor reads each and
    writes its features a minute later."""
    uploaded: list[tuple[int, int]] = []
    for _ in range(new):
        c = int(rng.integers(CONTRACTORS))
        s = fleet.counts[c]
        fleet.counts[c] += 1
        uploaded.append((c, s))
        t = day_ms + 8 * HOUR_MS + int(rng.integers(10 * HOUR_MS))
        ip = f"203.0.{100 + c}.{10 + c}"
        tr.emit(
            t,
            "PutObject",
            role(f"contractor-c{c:02d}", f"c{c:02d}-upload"),
            RAW,
            raw_key(c, s),
            ip=ip,
            agent=BOTO,
            nbytes=0,
        )
        if rng.random() < 0.3:  # the upload tool checks it landed
            tr.emit(
                t + 2000,
                "HeadObject",
                role(f"contractor-c{c:02d}", f"c{c:02d}-upload"),
                RAW,
                raw_key(c, s),
                ip=ip,
                agent=BOTO,
                nbytes=0,
            )
        sess = f"extract-{t // HOUR_MS}"
        tr.emit(
            t + MIN_MS,
            "GetObject",
            role("feature-extractor", sess),
            RAW,
            raw_key(c, s),
            ip="10.20.7.9",
            agent=BOTO,
            nbytes=RAW_BYTES,
            vpce=TRAINER_VPCE,
        )
        # the extractor decrypts the recording's data key (envelope encryption)
        tr.kms(t + MIN_MS + 1000, role("feature-extractor", sess), "10.20.7.9", BOTO)
        tr.emit(
            t + MIN_MS + 4000,
            "PutObject",
            role("feature-extractor", sess),
            FEAT,
            feat_key(c, s),
            ip="10.20.7.9",
            agent=BOTO,
            nbytes=0,
            vpce=TRAINER_VPCE,
        )
    return uploaded


def onboard(tr: Trail, day_ms: int, c: int, *, first: bool) -> None:
    """A contractor who joined today: a new role (its own, as every contractor has), from a home
    network and with an upload tool nobody used, uploads 40 recordings the first day and 10 a
    day after, and plays five of them back; the extractor reads each and writes its features."""
    ident = role(f"contractor-c{c:02d}", f"c{c:02d}-upload")
    ip, agent = f"187.45.{c}.9", "Cyberduck/8.8.2.41480 (Windows 10/10.0) (x86-64)"
    n = 40 if first else 10
    base = (day_ms // DAY_MS) * 100
    for j in range(n):
        t = day_ms + 11 * HOUR_MS + j * 4 * MIN_MS
        key = raw_key(c, base + j)
        tr.emit(t, "PutObject", ident, RAW, key, ip=ip, agent=agent)
        if j < 5:
            tr.emit(t + 30_000, "GetObject", ident, RAW, key, ip=ip, agent=agent,
                    nbytes=RAW_BYTES)
        sess = f"extract-{t // HOUR_MS}"
        tr.emit(t + MIN_MS, "GetObject", role("feature-extractor", sess), RAW, key,
                ip="10.20.7.9", agent=BOTO, nbytes=RAW_BYTES, vpce=TRAINER_VPCE)
        tr.kms(t + MIN_MS + 1000, role("feature-extractor", sess), "10.20.7.9", BOTO)
        tr.emit(t + MIN_MS + 4000, "PutObject", role("feature-extractor", sess), FEAT,
                feat_key(c, base + j), ip="10.20.7.9", agent=BOTO, vpce=TRAINER_VPCE)


def weekly_reextract(tr: Trail, t0: int, fleet: Fleet, rng: np.random.Generator) -> None:
    """Sunday 02:00: the extractor re-reads the whole raw bucket over about three hours."""
    sess = f"reextract-{t0 // DAY_MS}"
    items = fleet.all()
    step = 3 * HOUR_MS / len(items)
    for j, (c, s) in enumerate(items):
        tr.emit(
            int(t0 + j * step),
            "GetObject",
            role("feature-extractor", sess),
            RAW,
            raw_key(c, s),
            ip="10.20.7.9",
            agent=BOTO,
            nbytes=RAW_BYTES,
            vpce=TRAINER_VPCE,
        )


def crawler(tr: Trail, t0: int, fleet: Fleet) -> None:
    """Saturday 01:00: a Glue crawler lists the features bucket and reads a few headers."""
    sess = "AWS-Crawler"
    for c in range(CONTRACTORS):
        tr.emit(
            t0 + c * 1000,
            "ListObjects",
            role("glue-crawler", sess),
            FEAT,
            None,
            ip="glue.amazonaws.com",
            agent="aws-internal/3 aws-sdk-java/1.12",
            nbytes=0,
            params={"prefix": f"features/c{c:02d}/", "list-type": "2"},
        )
    for c in range(CONTRACTORS):
        tr.emit(
            t0 + 60_000 + c * 1000,
            "GetObject",
            role("glue-crawler", sess),
            FEAT,
            feat_key(c, 0),
            ip="glue.amazonaws.com",
            agent="aws-internal/3 aws-sdk-java/1.12",
            nbytes=4096,
            params={"Range": "bytes=0-4095"},
        )


def qa(tr: Trail, day_ms: int, fleet: Fleet, rng: np.random.Generator, n: int = 12) -> None:
    """The QA analyst listens to a dozen random recordings from the office."""
    items = fleet.all()
    for i in rng.choice(len(items), n, replace=False):
        c, s = items[int(i)]
        t = day_ms + 10 * HOUR_MS + int(rng.integers(6 * HOUR_MS))
        tr.emit(
            t,
            "HeadObject",
            user("qa-analyst"),
            RAW,
            raw_key(c, s),
            ip=OFFICE + "23",
            agent=CLI,
            nbytes=0,
        )
        tr.emit(
            t + 3000,
            "GetObject",
            user("qa-analyst"),
            RAW,
            raw_key(c, s),
            ip=OFFICE + "23",
            agent=CLI,
            nbytes=RAW_BYTES,
        )


def backup(tr: Trail, day_ms: int, items: list[tuple[int, int]]) -> None:
    """Nightly 23:30: the backup role copies the day's new recordings to the DR account."""
    for j, (c, s) in enumerate(items):
        src = f"{RAW}/{raw_key(c, s)}"
        tr.emit(
            day_ms + 23 * HOUR_MS + 30 * MIN_MS + j * 500,
            "CopyObject",
            role("dr-backup", f"backup-{day_ms // DAY_MS}"),
            DR_BUCKET,
            raw_key(c, s),
            ip="10.20.9.1",
            agent=BOTO,
            nbytes=0,
            vpce=TRAINER_VPCE,
            params={"x-amz-copy-source": src},
            resources=[
                {"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{DR_BUCKET}/{raw_key(c, s)}"},
                {
                    "type": "AWS::S3::Bucket",
                    "ARN": f"arn:aws:s3:::{DR_BUCKET}",
                    "accountId": DR_ACCT,
                },
                {"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{src}"},
                {"type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{RAW}", "accountId": ACCT},
            ],
        )


def fleet_days(
    tr: Trail,
    start_ms: int,
    days: int,
    fleet: Fleet,
    rng: np.random.Generator,
    *,
    epochs: int = 4,
    new_per_day: int = 30,
    ranged: int = 1,
    trainer_vpce: str | None = TRAINER_VPCE,
    epoch_minutes: int = 50,
    parallel: int = 1,
    newcomers: int = 0,
) -> None:
    for d in range(days):
        day = start_ms + d * DAY_MS
        weekday = dt.datetime.fromtimestamp(day / 1000, dt.UTC).weekday()
        weekend = weekday >= 5
        new = int(rng.integers(new_per_day // 2, new_per_day + 1)) if not weekend else 0
        uploaded = ingest_day(tr, day, fleet, rng, new)
        for e in range(epochs if not weekend else 1):
            t_epoch = day + (1 + (24 // epochs) * e) * HOUR_MS + int(rng.integers(20 * MIN_MS))
            for trial in range(parallel):  # a sweep: trials side by side, each a full epoch
                epoch(
                    tr,
                    t_epoch + trial * 3 * MIN_MS,
                    fleet,
                    rng,
                    ranged=ranged,
                    vpce=trainer_vpce,
                    ip="10.20.3.44" if trainer_vpce else "52.28.19.7",
                    minutes=epoch_minutes,
                )
        for n in range(newcomers if not weekend else 0):
            onboard(tr, day, CONTRACTORS + n, first=d == 0)
        if not weekend:
            qa(tr, day, fleet, rng)
        if weekday == 6:
            weekly_reextract(tr, day + 2 * HOUR_MS, fleet, rng)
        if weekday == 5:
            crawler(tr, day + HOUR_MS, fleet)
        backup(tr, day, uploaded)


@dataclass
class World:
    normaliser: Normaliser
    baseline: FleetBaseline
    fleet: Fleet  # the dataset at the start of the evaluated days


@pytest.fixture(scope="module")
def world() -> World:
    tr = Trail()
    fleet = Fleet()
    fleet_days(tr, EVAL_MS - BASE_DAYS * DAY_MS, BASE_DAYS, fleet, np.random.default_rng(7))
    norm = Normaliser()
    batch = norm.dicts(tr.out)
    assert norm.stats.rejected == 0, norm.stats.reasons
    return World(norm, FleetBaseline.fit(batch, norm.vocab), Fleet(list(fleet.counts)))


def normal_eval(world: World, **kw: Any) -> list[dict[str, Any]]:
    tr = Trail()
    tr.n = 10**8
    fleet_days(
        tr, EVAL_MS, EVAL_DAYS, Fleet(list(world.fleet.counts)), np.random.default_rng(11), **kw
    )
    return tr.out


@pytest.fixture(scope="module")
def ordinary(world: World) -> tuple[EventBatch, set[Any]]:
    batch = world.normaliser.dicts(normal_eval(world))
    return batch, {a.key for a in detect_fleet(batch, world.normaliser.vocab, world.baseline)}


# ---------------------------------------------------------------------------------------------
# the attacks (each returns its records; they start at ATTACK_MS)

Attack = Callable[[Trail, Fleet, np.random.Generator], None]


def low_and_slow(tr: Trail, fleet: Fleet, rng: np.random.Generator) -> None:
    """A compromised contractor role reads one *other* contractor's recording every 13 minutes,
    day and night, for three days, from its usual address and tool: 330 recordings (15 %)."""
    items = fleet.all()
    for j, i in enumerate(rng.choice(len(items), 330, replace=False)):
        c, s = items[int(i)]
        tr.emit(
            ATTACK_MS + j * 13 * MIN_MS,
            "GetObject",
            role("contractor-c03", "c03-upload"),
            RAW,
            raw_key(c, s),
            ip="203.0.103.13",
            agent=BOTO,
            nbytes=RAW_BYTES,
        )


def many_roles(tr: Trail, fleet: Fleet, rng: np.random.Generator) -> None:
    """All twenty contractor roles each read 45 recordings of the others in four hours:
    900 recordings (about 40 % of the bucket), none above 45 per role."""
    items = fleet.all()
    picks = rng.permutation(len(items))[:900]
    for j, i in enumerate(picks):
        c, s = items[int(i)]
        me = j % CONTRACTORS
        tr.emit(
            ATTACK_MS + int(j * 4 * HOUR_MS / 900),
            "GetObject",
            role(f"contractor-c{me:02d}", f"c{me:02d}-upload"),
            RAW,
            raw_key(c, s),
            ip=f"203.0.{100 + me}.{10 + me}",
            agent=BOTO,
            nbytes=RAW_BYTES,
        )


def sessions_and_ips(tr: Trail, fleet: Fleet, rng: np.random.Generator) -> None:
    """The extractor's credentials used from 40 sessions on 40 cloud addresses (one /16 each),
    with its own tool: 25 raw recordings each over six hours, 1,000 in all."""
    items = fleet.all()
    picks = rng.permutation(len(items))[:1000]
    for j, i in enumerate(picks):
        c, s = items[int(i)]
        k = j % 40
        tr.emit(
            ATTACK_MS + int(j * 6 * HOUR_MS / 1000),
            "GetObject",
            role("feature-extractor", f"i-0{k:015x}"),
            RAW,
            raw_key(c, s),
            ip=f"3.{120 + k}.44.{k + 1}",
            agent=BOTO,
            nbytes=RAW_BYTES,
        )


def ranged_headers(tr: Trail, fleet: Fleet, rng: np.random.Generator) -> None:
    """The QA analyst reads the first 44 KiB (header and first second of audio) of every
    recording in two hours: ranged GETs, a quarter of the bytes each."""
    items = fleet.all()
    for j, (c, s) in enumerate(items):
        tr.emit(
            ATTACK_MS + int(j * 2 * HOUR_MS / len(items)),
            "GetObject",
            user("qa-analyst"),
            RAW,
            raw_key(c, s),
            ip=OFFICE + "23",
            agent=CLI,
            nbytes=45_056,
            params={"Range": "bytes=0-45055"},
        )


def head_list_then_read(tr: Trail, fleet: Fleet, rng: np.random.Generator) -> None:
    """The QA analyst lists every prefix, HEADs every recording over three hours (spread
    like background), then reads the 60 largest, slowly."""
    items = fleet.all()
    for c in range(CONTRACTORS):
        tr.emit(
            ATTACK_MS + c * 5000,
            "ListObjects",
            user("qa-analyst"),
            RAW,
            None,
            ip=OFFICE + "23",
            agent=CLI,
            params={"prefix": f"raw/c{c:02d}/", "list-type": "2"},
        )
    for j, (c, s) in enumerate(items):
        tr.emit(
            ATTACK_MS + MIN_MS + int(j * 3 * HOUR_MS / len(items)),
            "HeadObject",
            user("qa-analyst"),
            RAW,
            raw_key(c, s),
            ip=OFFICE + "23",
            agent=CLI,
        )
    for j, i in enumerate(rng.choice(len(items), 60, replace=False)):
        c, s = items[int(i)]
        tr.emit(
            ATTACK_MS + 4 * HOUR_MS + j * 4 * MIN_MS,
            "GetObject",
            user("qa-analyst"),
            RAW,
            raw_key(c, s),
            ip=OFFICE + "23",
            agent=CLI,
            nbytes=RAW_BYTES,
        )


def _copy(
    tr: Trail,
    t: int,
    ident: dict[str, Any],
    src_key: str,
    dest: str,
    dest_owner: str | None,
    *,
    name: str = "CopyObject",
    part: int | None = None,
    ip: str = "10.20.9.1",
    agent: str = BOTO,
    vpce: str | None = TRAINER_VPCE,
) -> None:
    src = f"{RAW}/{src_key}"
    params: dict[str, Any] = {"x-amz-copy-source": src}
    if part is not None:
        params.update({"partNumber": str(part), "uploadId": "exampleUploadId"})
    bucket_res: dict[str, Any] = {"type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{dest}"}
    if dest_owner:
        bucket_res["accountId"] = dest_owner
    tr.emit(
        t,
        name,
        ident,
        dest,
        f"loot/{src_key.rsplit('/', 1)[1]}" if part is None else "loot.tar",
        ip=ip,
        agent=agent,
        nbytes=0,
        vpce=vpce,
        params=params,
        resources=[
            {"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{dest}/loot"},
            bucket_res,
            {"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{src}"},
            {"type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{RAW}", "accountId": ACCT},
        ],
    )


def copy_other_account(tr: Trail, fleet: Fleet, rng: np.random.Generator) -> None:
    """The backup role copies 12 recordings to a bucket in an unknown account (owner named)."""
    for j, (c, s) in enumerate(fleet.all()[:12]):
        _copy(
            tr,
            ATTACK_MS + j * 7 * MIN_MS,
            role("dr-backup", "backup-adhoc"),
            raw_key(c, s),
            f"archive-bkp-{EVIL_ACCT}",
            EVIL_ACCT,
        )


def upload_part_copy(tr: Trail, fleet: Fleet, rng: np.random.Generator) -> None:
    """The backup role assembles 40 recordings into one multipart object in another account's
    bucket with UploadPartCopy; the destination bucket resource carries no account id."""
    for j, (c, s) in enumerate(fleet.all()[100:140]):
        _copy(
            tr,
            ATTACK_MS + j * 20_000,
            role("dr-backup", "backup-adhoc"),
            raw_key(c, s),
            "partner-transfer-eu",
            None,
            name="UploadPartCopy",
            part=j + 1,
        )


def select_features(tr: Trail, fleet: Fleet, rng: np.random.Generator) -> None:
    """The QA analyst runs S3 Select over 400 feature files (the speaker embedding column)."""
    items = fleet.all()
    for j, i in enumerate(rng.choice(len(items), 400, replace=False)):
        c, s = items[int(i)]
        tr.emit(
            ATTACK_MS + j * 9000,
            "SelectObjectContent",
            user("qa-analyst"),
            FEAT,
            feat_key(c, s),
            ip=OFFICE + "23",
            agent=CLI,
            nbytes=2_000,
            params={"select-type": "2", "Expression": "SELECT s.embedding FROM S3Object s"},
        )


def restore_then_read(tr: Trail, fleet: Fleet, rng: np.random.Generator) -> None:
    """The extractor restores 15 archived recordings an hour for 8 hours (under any per-hour
    count), then reads them the next day."""
    items = fleet.all()
    picks = rng.choice(len(items), 120, replace=False)
    for j, i in enumerate(picks):
        c, s = items[int(i)]
        tr.emit(
            ATTACK_MS + j * 4 * MIN_MS,
            "RestoreObject",
            role("feature-extractor", "restore"),
            RAW,
            raw_key(c, s),
            ip="10.20.7.9",
            agent=BOTO,
            vpce=TRAINER_VPCE,
            params={"restore": "", "RestoreRequest": {"Days": 1}},
        )
        tr.emit(
            ATTACK_MS + DAY_MS + j * 30_000,
            "GetObject",
            role("feature-extractor", "restore"),
            RAW,
            raw_key(c, s),
            ip="10.20.7.9",
            agent=BOTO,
            vpce=TRAINER_VPCE,
            nbytes=RAW_BYTES,
        )


def presigned(tr: Trail, fleet: Fleet, rng: np.random.Generator) -> None:
    """URLs presigned with the QA analyst's key, fetched with curl from a residential address."""
    items = fleet.all()
    for j, i in enumerate(rng.choice(len(items), 80, replace=False)):
        c, s = items[int(i)]
        tr.emit(
            ATTACK_MS + j * 40_000,
            "GetObject",
            user("qa-analyst"),
            RAW,
            raw_key(c, s),
            ip="81.2.69.142",
            agent="curl/8.4.0",
            auth="QueryString",
            nbytes=RAW_BYTES,
        )


def access_point(tr: Trail, fleet: Fleet, rng: np.random.Generator) -> None:
    """A new role reads 300 recordings through an access point: the request names the access
    point's alias as the bucket, and the resources carry the access point's ARN."""
    ap = "arn:aws:s3:eu-central-1:210987654321:accesspoint/analytics"
    alias = "analytics-q1w2e3r4t5y6u7i8o9p0as-s3alias"
    items = fleet.all()
    for j, i in enumerate(rng.choice(len(items), 300, replace=False)):
        c, s = items[int(i)]
        tr.emit(
            ATTACK_MS + j * 30_000,
            "GetObject",
            role("analytics-ro", "notebook"),
            alias,
            raw_key(c, s),
            ip="10.20.11.5",
            agent=BOTO,
            nbytes=RAW_BYTES,
            vpce=TRAINER_VPCE,
            params={"Host": f"analytics-{ACCT}.s3-accesspoint.{REGION}.amazonaws.com"},
            resources=[
                {"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{RAW}/{raw_key(c, s)}"},
                {"accountId": ACCT, "type": "AWS::S3::AccessPoint", "ARN": ap},
                {"accountId": ACCT, "type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{RAW}"},
            ],
        )


def service_principal(tr: Trail, fleet: Fleet, rng: np.random.Generator) -> None:
    """An AWS service principal (a DataSync task pointed at the raw bucket) reads 1,200
    recordings in three hours."""
    items = fleet.all()
    for j, (c, s) in enumerate(items[:1200]):
        tr.emit(
            ATTACK_MS + j * 9000,
            "GetObject",
            service("datasync.amazonaws.com"),
            RAW,
            raw_key(c, s),
            ip="datasync.amazonaws.com",
            agent="datasync.amazonaws.com",
            nbytes=RAW_BYTES,
        )


def federated_user(tr: Trail, fleet: Fleet, rng: np.random.Generator) -> None:
    """A federated user (GetFederationToken through a token broker) reads 50 recordings an
    hour for ten hours."""
    items = fleet.all()
    for j, i in enumerate(rng.choice(len(items), 500, replace=False)):
        c, s = items[int(i)]
        tr.emit(
            ATTACK_MS + j * 72_000,
            "GetObject",
            federated("vendor-bob"),
            RAW,
            raw_key(c, s),
            ip=OFFICE + "88",
            agent=CLI,
            nbytes=RAW_BYTES,
        )


def odd_fields(tr: Trail, fleet: Fleet, rng: np.random.Generator) -> None:
    """The trainer's role (arn null, sessionIssuer present) reads 700 recordings it never
    reads, with bytesTransferredOut as a string, and half without additionalEventData."""
    items = fleet.all()
    for j, i in enumerate(rng.choice(len(items), 700, replace=False)):
        c, s = items[int(i)]
        tr.emit(
            ATTACK_MS + j * 10_000,
            "GetObject",
            role("ml-training", "train-adhoc", arn=False),
            RAW,
            raw_key(c, s),
            ip="10.20.3.44",
            agent=BOTO,
            vpce=TRAINER_VPCE,
            nbytes=str(RAW_BYTES),
            extra=j % 2 == 0,
        )


def kms_burst(tr: Trail, fleet: Fleet, rng: np.random.Generator) -> None:
    """3,000 KMS Decrypt calls by the extractor in an hour and no S3 read: ciphertext taken
    earlier (or from a copy outside the trail) decrypted in bulk."""
    for j in range(3000):
        tr.kms(ATTACK_MS + j * 1200, role("feature-extractor", "k"), "10.20.7.9", BOTO)


def spike_in_weekly(tr: Trail, fleet: Fleet, rng: np.random.Generator) -> None:
    """Ten minutes into Sunday's full re-read, the extractor role reads the whole raw bucket a
    second time, from a second session on the same network, at a third of the re-read's pace
    (eight hours): the same objects, twice the bytes in the week."""
    items = fleet.all()
    step = 8 * HOUR_MS / len(items)
    for j, (c, s) in enumerate(items):
        tr.emit(
            int(SUNDAY_MS + j * step),
            "GetObject",
            role("feature-extractor", "reextract-2"),
            RAW,
            raw_key(c, s),
            ip="10.20.7.9",
            agent=BOTO,
            nbytes=RAW_BYTES,
            vpce=TRAINER_VPCE,
        )


def trainer_reads_raw(tr: Trail, fleet: Fleet, rng: np.random.Generator) -> None:
    """The trainer, at its usual epoch pace and through its VPC endpoint, reads the *raw*
    bucket instead of the features (a poisoned job config)."""
    items = fleet.all()
    step = 50 * MIN_MS / len(items)
    for j, (c, s) in enumerate(items):
        tr.emit(
            int(ATTACK_MS + j * step),
            "GetObject",
            role("ml-training", "train-raw"),
            RAW,
            raw_key(c, s),
            ip="10.20.3.44",
            agent=BOTO,
            nbytes=RAW_BYTES,
            vpce=TRAINER_VPCE,
        )


def anonymous_public(tr: Trail, fleet: Fleet, rng: np.random.Generator) -> None:
    """The raw bucket made public: 150 anonymous GETs (CloudTrail's anonymous identity)."""
    items = fleet.all()
    for j, i in enumerate(rng.choice(len(items), 150, replace=False)):
        c, s = items[int(i)]
        tr.emit(
            ATTACK_MS + j * 60_000,
            "GetObject",
            {"type": "AWSAccount", "principalId": "", "accountId": "anonymous"},
            RAW,
            raw_key(c, s),
            ip="185.220.101.4",
            agent="Wget/1.21",
            auth="",
            nbytes=RAW_BYTES,
        )


def noncurrent_versions(tr: Trail, fleet: Fleet, rng: np.random.Generator) -> None:
    """A contractor role lists versions and reads noncurrent versions of erased recordings,
    25 an hour for 12 hours (300)."""
    items = fleet.all()
    tr.emit(
        ATTACK_MS,
        "ListObjectVersions",
        role("contractor-c07", "c07-upload"),
        RAW,
        None,
        ip="203.0.107.17",
        agent=BOTO,
        params={"versions": "", "prefix": "raw/"},
    )
    for j, i in enumerate(rng.choice(len(items), 300, replace=False)):
        c, s = items[int(i)]
        tr.emit(
            ATTACK_MS + MIN_MS + j * 144_000,
            "GetObject",
            role("contractor-c07", "c07-upload"),
            RAW,
            raw_key(c, s),
            ip="203.0.107.17",
            agent=BOTO,
            nbytes=RAW_BYTES,
            params={"versionId": f"3sL4kqtJlcpXroDTDmJ.{j:06d}"},
        )


def qa_slow(tr: Trail, fleet: Fleet, rng: np.random.Generator) -> None:
    """The QA analyst's key, in office hours, from the office, with the CLI it always uses:
    30 more recordings a day than usual (under any daily share), for three days."""
    items = fleet.all()
    picks = rng.choice(len(items), 90, replace=False)
    for j, i in enumerate(picks):
        c, s = items[int(i)]
        t = ATTACK_MS + (j // 30) * DAY_MS + 1 * HOUR_MS + (j % 30) * 12 * MIN_MS
        tr.emit(
            t, "HeadObject", user("qa-analyst"), RAW, raw_key(c, s), ip=OFFICE + "23", agent=CLI
        )
        tr.emit(
            t + 3000,
            "GetObject",
            user("qa-analyst"),
            RAW,
            raw_key(c, s),
            ip=OFFICE + "23",
            agent=CLI,
            nbytes=RAW_BYTES,
        )


def trainer_from_outside(tr: Trail, fleet: Fleet, rng: np.random.Generator) -> None:
    """The trainer's credentials, stolen from its task, run one more 'epoch' from a public
    address outside the VPC at 10:00, between epochs, with the same SDK: every feature file
    leaves."""
    items = fleet.all()
    step = 50 * MIN_MS / len(items)
    for j, (c, s) in enumerate(items):
        tr.emit(
            int(ATTACK_MS + HOUR_MS + j * step),
            "GetObject",
            role("ml-training", "train-7f3e9a1c0b2d"),
            FEAT,
            feat_key(c, s),
            ip="45.83.12.200",
            agent=BOTO,
            nbytes=float(FEAT_BYTES),
        )


def inflate_then_read(tr: Trail, fleet: Fleet, rng: np.random.Generator) -> None:
    """The QA analyst's keys first pad the raw bucket: every night, ten empty objects for
    every real one (PutObject), so that the bucket looks ten times larger; then they read the
    real data as qa-slow does, in office hours, from the office, with the usual CLI."""
    items = fleet.all()
    pads = 10 * len(items)
    for day in range(3):
        t0 = ATTACK_MS - 8 * HOUR_MS + day * DAY_MS
        for j in range(pads):
            key = f"raw/p{j % 200:03d}/pad-{j:06d}.wav"  # and ten times the prefixes
            tr.emit(t0 + j * 100, "PutObject", user("qa-analyst"), RAW, key, ip=OFFICE + "23",
                    agent=CLI)
    qa_slow(tr, fleet, rng)


@dataclass(frozen=True)
class Case:
    name: str
    make: Attack
    caught_before: bool  # with the detector as it was when these were written (commit d2353da)
    start_ms: int = ATTACK_MS


CASES = (
    Case("low-and-slow-3-days", low_and_slow, True),
    Case("twenty-roles-under-threshold", many_roles, True),
    Case("forty-sessions-forty-ips", sessions_and_ips, False),
    Case("ranged-headers-of-every-object", ranged_headers, True),
    Case("head-list-then-read", head_list_then_read, True),
    Case("copy-to-unknown-account", copy_other_account, True),
    Case("upload-part-copy-out", upload_part_copy, True),
    Case("select-features", select_features, True),
    Case("restore-then-read", restore_then_read, True),
    Case("presigned-curl-residential", presigned, True),
    Case("access-point-alias", access_point, True),
    Case("aws-service-bulk-read", service_principal, True),
    Case("federated-user", federated_user, True),
    Case("odd-fields", odd_fields, True),
    Case("kms-decrypt-burst", kms_burst, False),
    Case("second-full-read", spike_in_weekly, False, SUNDAY_MS),
    Case("trainer-reads-raw", trainer_reads_raw, True),
    Case("anonymous-public", anonymous_public, True),
    Case("noncurrent-versions", noncurrent_versions, True),
    Case("qa-slow-in-office-hours", qa_slow, True),
    Case("trainer-epoch-from-outside", trainer_from_outside, False),
    Case("inflate-then-read", inflate_then_read, False),
)


def attack_records(world: World, case: Case) -> list[dict[str, Any]]:
    tr = Trail()
    tr.n = 10**9
    case.make(
        tr, Fleet(list(world.fleet.counts)), np.random.default_rng(zlib.crc32(case.name.encode()))
    )
    return tr.out


def new_alerts(
    world: World,
    ordinary: tuple[EventBatch, set[Any]],
    records: list[dict[str, Any]],
    start_ms: int = ATTACK_MS,
) -> list[FleetAlert]:
    steady, steady_keys = ordinary
    batch = EventBatch.concat([steady, world.normaliser.dicts(records)])
    found = detect_fleet(batch, world.normaliser.vocab, world.baseline)
    start = dt.datetime.fromtimestamp(start_ms / 1000, dt.UTC)
    return [a for a in found if a.key not in steady_keys and a.alert_time >= start]


#: The four missed before the fix, and the rule that catches each now: not one rule per attack,
#: but what leaves and how much of the dataset (egress to a place the role never sent data to,
#: a share of the bucket in seven days; the week's bytes relative to the bucket)
FIXED_BY = {
    "forty-sessions-forty-ips": "egress-7d",
    "trainer-epoch-from-outside": "egress-7d",
    "second-full-read": "bytes-7d",
    "kms-decrypt-burst": "decrypt-1h",
    # the padding is empty: the bucket's size counts objects read with at least a share of
    # its typical object's bytes, so the reads cross the same share rule as unpadded
    "inflate-then-read": "fleet-share-7d",
}
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_heldout_attack(world: World, ordinary: tuple[EventBatch, set[Any]], case: Case) -> None:
    found = new_alerts(world, ordinary, attack_records(world, case), case.start_ms)
    print(case.name, sorted({(a.rule, a.principal.split(":")[-1]) for a in found}))
    assert found, f"{case.name}: no alert"
    assert case.caught_before or FIXED_BY[case.name] in {a.rule for a in found}


# ---------------------------------------------------------------------------------------------
# normal shapes a fleet really has: at most one alert per simulated day each

NORMAL_SHAPES: dict[str, dict[str, Any]] = {
    "ordinary": {},
    "s3transfer-ranged-parts": {"ranged": 4},  # the trainer's downloads switch to 4 ranged GETs
    "trainer-via-nat": {"trainer_vpce": None},  # the VPC endpoint removed: reads via a NAT address
    "backfill-3x-uploads": {"new_per_day": 120},  # a recording campaign: four times the uploads
    "more-epochs": {"epochs": 6},  # six epochs a day
    "new-contractor": {"newcomers": 1},  # onboarding: a new contractor role, new ISP and tool
    "sweep-4-trials": {"parallel": 4},  # a hyper-parameter sweep: four trials side by side
    "faster-loader": {"epoch_minutes": 12},  # a faster data loader: an epoch in 12 minutes
}


#: alerts per day on d2353da (before the fix): all above one a day
NOISY_BEFORE = {
    "ordinary": 0.67,  # the nightly copy to the DR account, every weekday
    "trainer-via-nat": 0.67,
    "s3transfer-ranged-parts": 21.33,
    "backfill-3x-uploads": 3.0,
    "more-epochs": 0.67,
}


@pytest.mark.parametrize(
    "shape",
    [s for s in NORMAL_SHAPES],
)
def test_heldout_normal_shape(world: World, shape: str) -> None:
    batch = world.normaliser.dicts(normal_eval(world, **NORMAL_SHAPES[shape]))
    found = detect_fleet(batch, world.normaliser.vocab, world.baseline)
    print(shape, len(found), sorted({(a.rule, a.principal.split(":")[-1]) for a in found}))
    assert len(found) / EVAL_DAYS <= 1.0
    # what is left: the trainer's reads leaving by a public address it never used
    # (indistinguishable in the trail from trainer-epoch-from-outside), once per week-window; and
    # four trials side by side, which in the trail are four undeclared epochs (the library's
    # epoch-overrun attack): one volume alert a day, the hourly and weekly budgets joined
    assert {a.rule for a in found} <= EXPECTED_LEFT.get(shape, set())


#: (and a new contractor's own role, never seen: news once a day while it is new)
EXPECTED_LEFT = {
    "trainer-via-nat": {"egress-7d"},
    "sweep-4-trials": {"bytes-1h", "bytes-7d"},
    "new-contractor": {"new-principal"},
}


def test_out_of_order_delivery_gives_the_same_alerts(world: World) -> None:
    """Records delivered shuffled within five minutes (CloudTrail's typical delivery delay), in
    files of 500, through the streaming detector: the same alerts as in time order."""
    case = next(c for c in CASES if c.name == "presigned-curl-residential")
    records = sorted(
        normal_eval(world)[:20_000] + attack_records(world, case), key=lambda r: r["eventTime"]
    )
    rng = np.random.default_rng(5)
    jitter = rng.integers(0, 290, len(records))  # seconds of delay, each record
    stamps = [
        dt.datetime.strptime(r["eventTime"], "%Y-%m-%dT%H:%M:%SZ").timestamp() for r in records
    ]
    shuffled = [records[i] for i in np.argsort(np.array(stamps) + jitter, kind="stable")]
    assert shuffled != records

    def run(recs: list[dict[str, Any]]) -> set[Any]:
        norm = Normaliser(vocab=world.normaliser.vocab)
        det = FleetDetector(world.baseline, norm.vocab, lag_s=300)
        for i in range(0, len(recs), 500):
            det.feed(norm.dicts(recs[i : i + 500]))
        det.flush()
        assert det.late == 0
        return {a.key for a in det.alerts}

    in_order = run(records)
    assert in_order and run(shuffled) == in_order


def test_the_sql_rules_give_the_same_alerts_on_held_out_traffic(world: World, tmp_path) -> None:
    """The same rules as SQL (DuckDB over the gzipped log files) on a held-out Monday: the
    recording campaign (reads of fresh uploads, the nightly copy to the DR account's bucket),
    the trainer's epoch from outside (egress) and a copy to an unknown account."""
    import duckdb

    from securepipe.audit.lake import duckdb_table, run_duckdb
    from securepipe.audit.logs import write_log_files

    monday, tuesday = EVAL_MS + DAY_MS, EVAL_MS + 2 * DAY_MS + HOUR_MS

    def stamp(r: dict[str, Any]) -> float:
        return dt.datetime.strptime(r["eventTime"], "%Y-%m-%dT%H:%M:%SZ").timestamp() * 1000

    records = [r for r in normal_eval(world, new_per_day=120) if monday <= stamp(r) < tuesday]
    for name in (
        "trainer-epoch-from-outside",
        "copy-to-unknown-account",
        "access-point-alias",
        "kms-decrypt-burst",
    ):
        records += attack_records(world, next(c for c in CASES if c.name == name))
    records.sort(key=lambda r: r["eventTime"])
    norm = Normaliser(vocab=world.normaliser.vocab)
    expected = sorted(
        (*a.key, a.observed, a.threshold)
        for a in detect_fleet(norm.dicts(records), norm.vocab, world.baseline)
    )
    paths = write_log_files(tmp_path, records, account_id=ACCT, region=REGION, per_file=4000)
    con = duckdb.connect()
    assert duckdb_table(con, paths) == len(records)
    alerts, skipped = run_duckdb(con, world.baseline)

    def when(ms: int) -> dt.datetime:
        return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)

    got = sorted(
        (
            a.rule,
            a.principal,
            a.scope,
            when(a.window_start_ms),
            when(a.alert_ms),
            a.observed,
            a.threshold,
        )
        for a in alerts
    )
    assert got == expected and skipped == {}
    # and nothing from the campaign; the access point's reads count against the raw bucket
    assert {e[0] for e in expected} >= {"egress-7d", "copy-out", "new-principal", "decrypt-1h"}
    assert not {e[0] for e in expected} - {
        "egress-7d",
        "copy-out",
        "new-principal",
        "new-source",
        "share-6h",
        "share-24h",
        "fleet-share-6h",
        "fleet-share-7d",  # the access point's and the copy's reads, summed over the week
        "spread-1h",
        "spread-24h",
        "decrypt-1h",
        "decrypt-24h",
        "fleet-decrypt-1h",
    }
    assert all(RAW in e[2] or e[2] == "-" or FEAT in e[2] or KEY_ID in e[2] for e in expected)


def test_fresh_uploads_are_followed_across_files(world: World) -> None:
    """The nightly copy reads uploads written up to 15 hours before, many files earlier: the
    stream keeps the writes of the last two days, so in 500-record files it raises exactly
    what one batch does, and the campaign's copies raise nothing."""
    records = sorted(
        normal_eval(world, new_per_day=120, trainer_vpce=None), key=lambda r: r["eventTime"]
    )
    norm = Normaliser(vocab=world.normaliser.vocab)
    det = FleetDetector(world.baseline, norm.vocab)
    for i in range(0, len(records), 500):
        det.feed(norm.dicts(records[i : i + 500]))
    det.flush()
    at_once = detect_fleet(norm.dicts(records), norm.vocab, world.baseline)
    assert {a.key for a in det.alerts} == {a.key for a in at_once}
    assert {a.rule for a in at_once} == {"egress-7d"}


def test_a_read_through_an_access_point_is_a_read_of_its_bucket(world: World) -> None:
    """The alias in ``bucketName`` is resolved to the bucket in ``resources``: the same bucket
    and object codes as a direct read, so the bucket's size and budgets see both."""
    tr = Trail()
    access_point(tr, Fleet(list(world.fleet.counts)), np.random.default_rng(1))
    via = tr.out[0]
    direct = {
        **via,
        "requestParameters": {"bucketName": RAW, "key": via["requestParameters"]["key"]},
    }
    norm = Normaliser(vocab=Vocab())
    batch = norm.dicts([via, direct])
    assert norm.stats.accepted == 2
    assert batch.bucket[0] == batch.bucket[1] == norm.vocab.buckets[RAW]
    assert batch.obj[0] == batch.obj[1]
