"""A scenario library for the fleet detector: attacks and normal operation, as CloudTrail records.

Written independently of :mod:`securepipe.audit.traffic`: every event is a CloudTrail S3 data
event as AWS documents the record (``userIdentity`` of type ``AssumedRole`` with
``sessionContext.sessionIssuer``, ``IAMUser``, ``AWSAccount``, ``AWSService``, anonymous;
``additionalEventData.bytesTransferredOut`` sometimes a float such as ``2143.0``;
``AuthenticationMethod`` ``AuthHeader`` or ``QueryString``; ``tlsDetails``; ``errorCode``
``AccessDenied``; ``resources``; ``recipientAccountId``; ``vpcEndpointId``)
(https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-event-reference-record-contents.html).

The fleet: a training role reading every feature object each epoch (a new STS session name per
epoch, as ECS tasks and EKS pods get), an extraction role (a daily ingest read and a weekly full
re-read of the raw bucket), an archiver role copying to the archive bucket nightly, contractor
sessions reviewing their own uploads, a QA analyst and a data scientist (IAM users) in working
hours, and a few refused requests. :func:`library_baseline` fits on one week of it;
:func:`run_library` adds each attack (:data:`ATTACKS`) to three evaluation days and runs each
normal kind (:data:`NORMALS`) alone, and :func:`score_library` says, per scenario, whether and
how fast it was caught and how many false alarms a day each normal kind raised.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from securepipe.audit.events import EventBatch, Normaliser, Vocab
from securepipe.audit.fleet import FleetAlert, FleetBaseline, detect_fleet

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
MINUTE_MS = 60_000


@dataclass(frozen=True)
class World:
    """The account, its buckets and its fleet."""

    seed: int = 15
    account: str = "111122223333"
    region: str = "eu-west-1"
    start: dt.datetime = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)  # a Monday
    baseline_days: int = 7
    eval_days: int = 3
    contractors: int = 12
    samples: int = 100
    epochs_per_day: int = 4
    raw_bytes: int = 96_044
    feature_bytes: int = 20_608

    @property
    def start_ms(self) -> int:
        return int(self.start.timestamp() * 1000)

    @property
    def eval_ms(self) -> int:
        return self.start_ms + self.baseline_days * DAY_MS

    def bucket(self, name: str) -> str:
        return f"securepipe-{name}-{self.account}"

    def role(self, name: str) -> str:
        return f"arn:aws:iam::{self.account}:role/{name}"

    def user(self, name: str) -> str:
        return f"arn:aws:iam::{self.account}:user/{name}"


# -- records in AWS's shape ---------------------------------------------------------------------


def assumed_role(account: str, role: str, session: str) -> dict[str, Any]:
    return {"type": "AssumedRole", "principalId": f"AROAEXAMPLE{len(role):04d}:{session}",
            "arn": f"arn:aws:sts::{account}:assumed-role/{role}/{session}",
            "accountId": account, "accessKeyId": "ASIAEXAMPLE",
            "sessionContext": {
                "sessionIssuer": {"type": "Role", "principalId": f"AROAEXAMPLE{len(role):04d}",
                                  "arn": f"arn:aws:iam::{account}:role/{role}",
                                  "accountId": account, "userName": role},
                "attributes": {"creationDate": "2026-01-05T00:00:00Z",
                               "mfaAuthenticated": "false"}}}


def iam_user(account: str, name: str) -> dict[str, Any]:
    return {"type": "IAMUser", "principalId": "AIDAEXAMPLE", "arn":
            f"arn:aws:iam::{account}:user/{name}", "accountId": account,
            "accessKeyId": "AKIAEXAMPLE", "userName": name}


def other_account(account: str) -> dict[str, Any]:
    """A principal of another account, granted by a bucket policy: CloudTrail names only the
    account in the bucket owner's copy of the event."""
    return {"type": "AWSAccount", "principalId": "AIDAOTHEREXAMPLE", "accountId": account}


ANONYMOUS: dict[str, Any] = {"type": "AWSAccount", "principalId": "", "accountId": "anonymous"}


class Emitter:
    """Builds CloudTrail S3 data-event records (:meth:`emit`) into :attr:`out`."""

    def __init__(self, world: World) -> None:
        self.w = world
        self.out: list[dict[str, Any]] = []
        self.n = 0
        self._stamps: dict[int, str] = {}

    def stamp(self, ms: int) -> str:
        got = self._stamps.get(ms // 1000)
        if got is None:
            got = self._stamps[ms // 1000] = dt.datetime.fromtimestamp(
                ms // 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return got

    def emit(self, ms: int, name: str, identity: dict[str, Any], bucket: str, key: str | None,
             *, ip: str, agent: str, out_bytes: int | float = 0,
             auth: str | None = "AuthHeader",
             error: str | None = None, vpce: str | None = None,
             copy_from: str | None = None, dest_owner: str | None = None) -> None:
        w = self.w
        self.n += 1
        params: dict[str, Any] = {"bucketName": bucket,
                                  "Host": f"{bucket}.s3.{w.region}.amazonaws.com"}
        resources: list[dict[str, Any]] = []
        if key is not None:
            params["key"] = key
            resources.append({"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{key}"})
        else:
            params["list-type"] = "2"
            params["prefix"] = ""
        resources.append({"type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}",
                          "accountId": dest_owner or w.account})
        if copy_from is not None:
            params["x-amz-copy-source"] = copy_from
            src_bucket, src_key = copy_from.split("/", 1)
            resources[:0] = [{"type": "AWS::S3::Object",
                              "ARN": f"arn:aws:s3:::{src_bucket}/{src_key}"},
                             {"type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{src_bucket}",
                              "accountId": w.account}]
        record: dict[str, Any] = {
            "eventVersion": "1.10", "userIdentity": identity, "eventTime": self.stamp(ms),
            "eventSource": "s3.amazonaws.com", "eventName": name, "awsRegion": w.region,
            "sourceIPAddress": ip, "userAgent": agent, "requestParameters": params,
            "responseElements": None,
            "additionalEventData": {"SignatureVersion": "SigV4",
                                    "CipherSuite": "TLS_AES_128_GCM_SHA256",
                                    "bytesTransferredIn": 0, "bytesTransferredOut": out_bytes,
                                    "AuthenticationMethod": auth,
                                    "x-amz-id-2": "EXAMPLE"},
            "requestID": f"{self.n:016X}", "eventID": f"00000000-0000-4000-8000-{self.n:012x}",
            "readOnly": name not in ("CopyObject", "PutObject", "RestoreObject"),
            "resources": resources, "eventType": "AwsApiCall", "managementEvent": False,
            "recipientAccountId": w.account, "eventCategory": "Data",
            "tlsDetails": {"tlsVersion": "TLSv1.3", "cipherSuite": "TLS_AES_128_GCM_SHA256",
                           "clientProvidedHostHeader": f"{bucket}.s3.{w.region}.amazonaws.com"},
        }
        if auth is None:  # an unsigned (anonymous) request names no authentication method
            del record["additionalEventData"]["AuthenticationMethod"]
            del record["additionalEventData"]["SignatureVersion"]
        if vpce:
            record["vpcEndpointId"] = vpce
        if error:
            record["errorCode"] = error
            record["errorMessage"] = "Access Denied"
            record["additionalEventData"]["bytesTransferredOut"] = 0
        self.out.append(record)


# -- the fleet at work --------------------------------------------------------------------------

TRAINER_VPCE = "vpce-0a1b2c3d4e5f60001"
BOTO = "[Boto3/1.35.36 md/Botocore#1.35.36 ua/2.0 os/linux#6.8 lang/python#3.11.9]"


def _raw_key(c: int, i: int) -> str:
    return f"raw/c{c + 1:02d}/s{i:04d}.wav"


def _feat_key(c: int, i: int) -> str:
    return f"features/c{c + 1:02d}/s{i:04d}.npy"


def _contractor_ip(c: int) -> str:
    return f"{81 + c}.{20 + c}.7.{10 + c}"


def normal_fleet(em: Emitter, start_ms: int, days: int, rng: np.random.Generator, *,
            samples: int | None = None, contractors: int | None = None,
            weekly_read: bool = True, trainer_vpce: str = TRAINER_VPCE,
            weekday_of_start: int | None = None) -> None:
    """Normal fleet traffic for ``days`` days from ``start_ms`` (midnight UTC)."""
    w = em.w
    per = samples or w.samples
    ncon = contractors or w.contractors
    raw, feats, archive = w.bucket("raw"), w.bucket("features"), w.bucket("archive")
    weekday0 = weekday_of_start if weekday_of_start is not None else dt.datetime.fromtimestamp(
        start_ms / 1000, dt.UTC).weekday()
    objects = [(c, i) for c in range(ncon) for i in range(per)]
    for day in range(days):
        d0 = start_ms + day * DAY_MS
        weekday = (weekday0 + day) % 7
        working = weekday < 5
        # training epochs: every feature object, ~2 per second, a new session each epoch
        for e in range(w.epochs_per_day):
            t0 = d0 + (e * 24 // w.epochs_per_day) * HOUR_MS + 30 * MINUTE_MS
            session = f"epoch-{day:03d}-{e}-{rng.integers(1 << 30):08x}"
            ident = assumed_role(w.account, "securepipe-training", session)
            order = rng.permutation(len(objects))
            times = t0 + np.cumsum(rng.exponential(500, len(objects))).astype(np.int64)
            for j, ms in zip(order, times, strict=True):
                c, i = objects[j]
                em.emit(int(ms), "GetObject", ident, feats, _feat_key(c, i), ip="10.0.3.17",
                        agent=BOTO, out_bytes=w.feature_bytes, vpce=trainer_vpce)
        # extraction: a daily check of 20 raw objects; the weekly full re-read on Sundays
        ext = assumed_role(w.account, "securepipe-extract", f"extract-{day:03d}")
        picks = rng.choice(len(objects), 20, replace=False)
        ts = d0 + 2 * HOUR_MS + np.cumsum(rng.exponential(3000, 20)).astype(np.int64)
        for j, ms in zip(picks, ts, strict=True):
            c, i = objects[j]
            em.emit(int(ms), "GetObject", ext, raw, _raw_key(c, i), ip="10.0.4.9", agent=BOTO,
                    out_bytes=w.raw_bytes, vpce=TRAINER_VPCE)
        if weekly_read and weekday == 6:
            _full_read(em, d0 + 3 * HOUR_MS, objects, rng)
        # archiver: nightly copies of 10 raw objects to the archive bucket
        arc = assumed_role(w.account, "securepipe-archive", f"archive-{day:03d}")
        for k, j in enumerate(rng.choice(len(objects), 10, replace=False)):
            c, i = objects[j]
            em.emit(d0 + HOUR_MS + k * 2000, "CopyObject", arc, archive, _raw_key(c, i),
                    ip="10.0.4.10", agent=BOTO, copy_from=f"{raw}/{_raw_key(c, i)}",
                    vpce=TRAINER_VPCE)
        if not working:
            continue
        # contractors: review 2-6 of their own uploads, upload 2
        for c in range(ncon):
            ident = assumed_role(w.account, "securepipe-contractor",
                                 f"contractor-c{c + 1:02d}-{rng.integers(1 << 30):08x}")
            t0 = d0 + int(rng.integers(9 * HOUR_MS, 16 * HOUR_MS))
            for k in range(int(rng.integers(2, 7))):
                em.emit(t0 + k * 40_000, "GetObject", ident, raw,
                        _raw_key(c, int(rng.integers(per))), ip=_contractor_ip(c), agent=BOTO,
                        out_bytes=w.raw_bytes)
            for k in range(2):
                em.emit(t0 + 300_000 + k * 20_000, "PutObject", ident, raw,
                        _raw_key(c, per + 1000 + day * 2 + k), ip=_contractor_ip(c), agent=BOTO)
        # QA analyst: ~20 random raw samples an hour, 09:00-17:00; a float bytesTransferredOut
        analyst = iam_user(w.account, "qa-analyst")
        n = int(rng.poisson(160))
        ts = np.sort(d0 + 9 * HOUR_MS + rng.integers(0, 8 * HOUR_MS, n))
        for ms in ts:
            c, i = objects[int(rng.integers(len(objects)))]
            em.emit(int(ms), "GetObject", analyst, raw, _raw_key(c, i), ip="198.51.100.23",
                    agent=BOTO, out_bytes=float(w.raw_bytes))
        # data scientist: three batches of one contractor's features, a listing, a few HEADs,
        # and a refused attempt on the raw bucket
        ds = iam_user(w.account, "data-scientist")
        for b in range(3):
            t0 = d0 + (10 + 2 * b) * HOUR_MS + int(rng.integers(0, HOUR_MS))
            c = int(rng.integers(ncon))
            em.emit(t0, "ListObjectsV2", ds, feats, None, ip="198.51.100.40", agent=BOTO)
            for k in range(10):
                em.emit(t0 + 2000 + k * 1500, "HeadObject", ds, feats, _feat_key(c, k),
                        ip="198.51.100.40", agent=BOTO)
                em.emit(t0 + 2500 + k * 1500, "GetObject", ds, feats, _feat_key(c, k),
                        ip="198.51.100.40", agent=BOTO, out_bytes=w.feature_bytes)
        em.emit(d0 + 15 * HOUR_MS, "GetObject", ds, raw, _raw_key(0, 0), ip="198.51.100.40",
                agent=BOTO, error="AccessDenied")


def _full_read(em: Emitter, t0: int, objects: list[tuple[int, int]],
               rng: np.random.Generator) -> None:
    w = em.w
    ext = assumed_role(w.account, "securepipe-extract", f"weekly-{t0 // DAY_MS}")
    times = t0 + np.cumsum(rng.exponential(400, len(objects))).astype(np.int64)
    for (c, i), ms in zip(objects, times, strict=True):
        em.emit(int(ms), "GetObject", ext, w.bucket("raw"), _raw_key(c, i), ip="10.0.4.9",
                agent=BOTO, out_bytes=w.raw_bytes, vpce=TRAINER_VPCE)


# -- normal kinds -------------------------------------------------------------------------------


def _normal_steady(em: Emitter, rng: np.random.Generator) -> None:
    normal_fleet(em, em.w.eval_ms, em.w.eval_days, rng)


def _normal_weekly(em: Emitter, rng: np.random.Generator) -> None:
    normal_fleet(em, em.w.eval_ms, em.w.eval_days, rng)
    w = em.w
    _full_read(em, w.eval_ms + DAY_MS + 14 * HOUR_MS,
               [(c, i) for c in range(w.contractors) for i in range(w.samples)], rng)


def _normal_onboarding(em: Emitter, rng: np.random.Generator) -> None:
    """Three contractors join: new sessions, new home networks, new prefixes, 40 uploads each,
    reviewed, ingested and trained on."""
    w = em.w
    normal_fleet(em, w.eval_ms, w.eval_days, rng, contractors=w.contractors)
    for c in range(w.contractors, w.contractors + 3):
        ident = assumed_role(w.account, "securepipe-contractor",
                             f"contractor-c{c + 1:02d}-{rng.integers(1 << 30):08x}")
        for day in range(w.eval_days):
            t0 = w.eval_ms + day * DAY_MS + 10 * HOUR_MS
            for k in range(40 if day == 0 else 3):
                em.emit(t0 + k * 30_000, "PutObject", ident, w.bucket("raw"),
                        _raw_key(c, day * 40 + k), ip=_contractor_ip(c), agent=BOTO)
            for k in range(5):
                em.emit(t0 + 1_500_000 + k * 30_000, "GetObject", ident, w.bucket("raw"),
                        _raw_key(c, k), ip=_contractor_ip(c), agent=BOTO, out_bytes=w.raw_bytes)


def _normal_growth(em: Emitter, rng: np.random.Generator) -> None:
    """The dataset has grown by 60 % since the baseline: every role reads 1.6x as many objects."""
    w = em.w
    normal_fleet(em, w.eval_ms, w.eval_days, rng, samples=int(w.samples * 1.6))


def _normal_weekend(em: Emitter, rng: np.random.Generator) -> None:
    """Saturday, Sunday (the weekly full read) and Monday: a lull, then work resumes."""
    w = em.w
    normal_fleet(em, w.eval_ms, w.eval_days, rng, weekday_of_start=5)


def _normal_infra(em: Emitter, rng: np.random.Generator) -> None:
    """The trainer moves to a new VPC endpoint (one new source attribute, not two)."""
    w = em.w
    normal_fleet(em, w.eval_ms, w.eval_days, rng, trainer_vpce="vpce-0ffff00000000002")


NORMALS: dict[str, tuple[str, Callable[[Emitter, np.random.Generator], None]]] = {
    "epochs-new-sessions": ("every epoch a new STS session name", _normal_steady),
    "weekly-full-read": ("the extraction role re-reads the whole raw bucket", _normal_weekly),
    "onboarding": ("three contractors join from new networks", _normal_onboarding),
    "dataset-growth-60": ("the dataset grew 60 % after the baseline", _normal_growth),
    "weekend-lull": ("Saturday and Sunday, then Monday", _normal_weekend),
    "infra-change": ("the trainer moves to a new VPC endpoint", _normal_infra),
}


# -- attacks ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attack:
    name: str
    description: str
    mitre: str
    bound_s: float  # the detection latency it must be caught within
    emit: Callable[[Emitter, int, np.random.Generator], None]


def _objs(w: World) -> list[tuple[int, int]]:
    return [(c, i) for c in range(w.contractors) for i in range(w.samples)]


def _a_distributed(em: Emitter, t0: int, rng: np.random.Generator) -> None:
    w = em.w
    objs = _objs(w)
    slices = np.array_split(np.arange(len(objs)), 10)
    for c, part in enumerate(slices):
        ident = assumed_role(w.account, "securepipe-contractor",
                             f"contractor-c{c + 1:02d}-{rng.integers(1 << 30):08x}")
        times = t0 + np.sort(rng.integers(0, 6 * HOUR_MS, part.shape[0]))
        for j, ms in zip(part, times, strict=True):
            cc, i = objs[int(j)]
            em.emit(int(ms), "GetObject", ident, w.bucket("raw"), _raw_key(cc, i),
                    ip=_contractor_ip(c), agent=BOTO, out_bytes=w.raw_bytes)


def _a_role_steady(em: Emitter, t0: int, rng: np.random.Generator) -> None:
    w = em.w
    ident = assumed_role(w.account, "securepipe-training", f"epoch-x-{rng.integers(1 << 30):08x}")
    for k, (c, i) in enumerate(_objs(w)):
        em.emit(t0 + int(k * HOUR_MS / 280), "GetObject", ident, w.bucket("raw"), _raw_key(c, i),
                ip="10.0.3.17", agent=BOTO, out_bytes=w.raw_bytes, vpce=TRAINER_VPCE)


def _a_drip(em: Emitter, t0: int, rng: np.random.Generator) -> None:
    w = em.w
    ds = iam_user(w.account, "data-scientist")
    objs = _objs(w)
    for k in range(3 * 24 * 6):
        c, i = objs[int(rng.integers(len(objs)))]
        em.emit(t0 + k * 10 * MINUTE_MS, "GetObject", ds, w.bucket("raw"), _raw_key(c, i),
                ip="198.51.100.40", agent=BOTO, out_bytes=w.raw_bytes)


def _a_prefix_walk(em: Emitter, t0: int, rng: np.random.Generator) -> None:
    w = em.w
    ident = assumed_role(w.account, "securepipe-contractor", "contractor-c03-walk")
    for k in range(w.contractors - 1):
        c = (2 + 1 + k) % w.contractors
        em.emit(t0 + k * 11 * MINUTE_MS, "GetObject", ident, w.bucket("raw"),
                _raw_key(c, int(rng.integers(w.samples))), ip=_contractor_ip(2), agent=BOTO,
                out_bytes=w.raw_bytes)


def _a_recon(em: Emitter, t0: int, rng: np.random.Generator) -> None:
    w = em.w
    who = iam_user(w.account, "qa-analyst")
    for k in range(20):
        em.emit(t0 + k * 5000, "ListObjectsV2", who, w.bucket("raw"), None,
                ip="198.51.100.23", agent=BOTO)
    for k in range(3000):
        c, i = divmod(k % (w.contractors * w.samples), w.samples)
        em.emit(t0 + 100_000 + k * 600, "HeadObject", who, w.bucket("raw"), _raw_key(c, i),
                ip="198.51.100.23", agent=BOTO)
    for k in range(5):
        em.emit(t0 + 2_000_000 + k * 1000, "GetObject", who, w.bucket("raw"), _raw_key(k, 0),
                ip="198.51.100.23", agent=BOTO, out_bytes=w.raw_bytes)


def _a_copy_staging(em: Emitter, t0: int, rng: np.random.Generator) -> None:
    w = em.w
    ident = assumed_role(w.account, "securepipe-contractor", "contractor-c05-x")
    for k, (c, i) in enumerate(_objs(w)):
        em.emit(t0 + k * 500, "CopyObject", ident, w.bucket("tmp-export"), _raw_key(c, i),
                ip=_contractor_ip(4), agent=BOTO, copy_from=f"{w.bucket('raw')}/{_raw_key(c, i)}")


def _a_copy_cross(em: Emitter, t0: int, rng: np.random.Generator) -> None:
    w = em.w
    arc = assumed_role(w.account, "securepipe-archive", "archive-x")
    for k in range(5):
        em.emit(t0 + k * 3000, "CopyObject", arc, "partner-dropbox-bucket", _raw_key(k, 1),
                ip="10.0.4.10", agent=BOTO, copy_from=f"{w.bucket('raw')}/{_raw_key(k, 1)}",
                dest_owner="999988887777", vpce=TRAINER_VPCE)


def _a_select(em: Emitter, t0: int, rng: np.random.Generator) -> None:
    w = em.w
    ds = iam_user(w.account, "data-scientist")
    for k, (c, i) in enumerate(_objs(w)[:1000]):
        em.emit(t0 + k * 1200, "SelectObjectContent", ds, w.bucket("features"), _feat_key(c, i),
                ip="198.51.100.40", agent=BOTO, out_bytes=4096)


def _a_presigned(em: Emitter, t0: int, rng: np.random.Generator) -> None:
    w = em.w
    who = iam_user(w.account, "qa-analyst")
    for k in range(40):
        c, i = divmod(k, 4)
        em.emit(t0 + k * 90_000, "GetObject", who, w.bucket("raw"), _raw_key(c, i),
                ip="203.0.113.77", agent="curl/8.5.0", auth="QueryString",
                out_bytes=float(w.raw_bytes))


def _a_denied(em: Emitter, t0: int, rng: np.random.Generator) -> None:
    w = em.w
    ident = assumed_role(w.account, "securepipe-contractor", "contractor-c07-probe")
    for k in range(3000):
        em.emit(t0 + k * 1000, "GetObject", ident, w.bucket("raw"),
                f"raw/c{rng.integers(1, 40):02d}/s{k:04d}.wav", ip=_contractor_ip(6), agent=BOTO,
                error="AccessDenied")


def _a_burst(em: Emitter, t0: int, rng: np.random.Generator) -> None:
    w = em.w
    who = iam_user(w.account, "qa-analyst")
    for k, (c, i) in enumerate(_objs(w)):
        em.emit(t0 + k * 80, "GetObject", who, w.bucket("raw"), _raw_key(c, i),
                ip="198.51.100.23", agent=BOTO, out_bytes=float(w.raw_bytes))


def _a_anonymous(em: Emitter, t0: int, rng: np.random.Generator) -> None:
    w = em.w
    for k in range(200):
        c, i = divmod(k, w.samples)
        em.emit(t0 + k * 2000, "GetObject", ANONYMOUS, w.bucket("raw"), _raw_key(c, i),
                ip="192.0.2.44", agent="python-requests/2.32.3", auth=None,
                out_bytes=w.raw_bytes)


def _a_other_account(em: Emitter, t0: int, rng: np.random.Generator) -> None:
    w = em.w
    for k in range(100):
        c, i = divmod(k, w.samples)
        em.emit(t0 + k * 5000, "GetObject", other_account("444455556666"), w.bucket("raw"),
                _raw_key(c, i), ip="3.120.1.9", agent=BOTO, out_bytes=w.raw_bytes)


def _a_restore(em: Emitter, t0: int, rng: np.random.Generator) -> None:
    w = em.w
    arc = assumed_role(w.account, "securepipe-archive", "archive-r")
    for k, (c, i) in enumerate(_objs(w)[:500]):
        em.emit(t0 + k * 4000, "RestoreObject", arc, w.bucket("archive"), _raw_key(c, i),
                ip="10.0.4.10", agent=BOTO, vpce=TRAINER_VPCE)


def _a_ranged(em: Emitter, t0: int, rng: np.random.Generator) -> None:
    w = em.w
    ident = assumed_role(w.account, "securepipe-contractor", "contractor-c09-range")
    for k, (c, i) in enumerate(_objs(w)):
        em.emit(t0 + k * 9000, "GetObject", ident, w.bucket("raw"), _raw_key(c, i),
                ip=_contractor_ip(8), agent=BOTO, out_bytes=65_536)


def _a_stolen_trainer(em: Emitter, t0: int, rng: np.random.Generator) -> None:
    w = em.w
    ident = assumed_role(w.account, "securepipe-training", "epoch-007-2-1a2b3c4d")
    for k, (c, i) in enumerate(_objs(w)[:100]):
        em.emit(t0 + k * 3000, "GetObject", ident, w.bucket("features"), _feat_key(c, i),
                ip="185.220.101.4", agent="aws-cli/2.17.0 md/awscrt#0.20.11",
                out_bytes=w.feature_bytes)


def _a_new_user(em: Emitter, t0: int, rng: np.random.Generator) -> None:
    w = em.w
    who = iam_user(w.account, "temp-export")
    for k in range(25):
        em.emit(t0 + k * 4000, "GetObject", who, w.bucket("raw"), _raw_key(k % w.contractors, k),
                ip="198.51.100.99", agent=BOTO, out_bytes=w.raw_bytes)


def _a_epoch_overrun(em: Emitter, t0: int, rng: np.random.Generator) -> None:
    w = em.w
    objs = _objs(w)
    for e in range(4):
        ident = assumed_role(w.account, "securepipe-training",
                             f"epoch-x{e}-{rng.integers(1 << 30):08x}")
        start = t0 + e * 12 * MINUTE_MS
        for k, (c, i) in enumerate(objs):
            em.emit(start + k * 500, "GetObject", ident, w.bucket("features"), _feat_key(c, i),
                    ip="10.0.3.17", agent=BOTO, out_bytes=w.feature_bytes, vpce=TRAINER_VPCE)


ATTACKS: tuple[Attack, ...] = (
    Attack("distributed-contractors", "10 contractor sessions, each a tenth of raw, in 6 h",
           "T1530", 3 * 3600, _a_distributed),
    Attack("role-steady-280", "the training role reads every raw object at 280/h", "T1530",
           2 * 3600, _a_role_steady),
    Attack("drip-3-days", "one raw object every 10 minutes for 3 days", "T1530", 12 * 3600,
           _a_drip),
    Attack("prefix-walk", "one session, one new contractor prefix every 11 minutes", "T1530",
           5400, _a_prefix_walk),
    Attack("recon-head", "List and 3,000 HeadObject, 5 GETs", "T1619", 600, _a_recon),
    Attack("copy-staging", "CopyObject of every raw object to an unused bucket", "T1074.002",
           60, _a_copy_staging),
    Attack("copy-cross-account", "5 CopyObject to another account's bucket", "T1537", 60,
           _a_copy_cross),
    Attack("select-bulk", "SelectObjectContent over 1,000 feature objects", "T1530", 600,
           _a_select),
    Attack("presigned-curl", "presigned URLs from a new IP with curl", "T1530", 60, _a_presigned),
    Attack("denied-probing", "3,000 GetObject refused with AccessDenied", "T1619", 600,
           _a_denied),
    Attack("burst", "the analyst's keys pull every raw object in 100 s", "T1530", 60, _a_burst),
    Attack("anonymous-public", "a bucket made public, read anonymously", "T1530", 60,
           _a_anonymous),
    Attack("other-account", "another account reads through a bucket policy", "T1199", 60,
           _a_other_account),
    Attack("restore-stage", "RestoreObject of 500 archived recordings", "T1074", 600,
           _a_restore),
    Attack("ranged-reads", "ranged GETs of the first 64 KiB of every raw object", "T1530",
           3600, _a_ranged),
    Attack("stolen-trainer-session", "a trainer session used from outside with aws-cli",
           "T1078.004", 60, _a_stolen_trainer),
    Attack("new-iam-user", "an IAM user never seen before reads 25 recordings", "T1078", 60,
           _a_new_user),
    Attack("epoch-overrun", "4 undeclared back-to-back epochs at night", "T1530", 1800,
           _a_epoch_overrun),
)

#: Each attack starts on the first evaluation day at this hour (UTC): working hours, busy fleet.
ATTACK_HOUR = 11


# -- running and scoring ------------------------------------------------------------------------


@dataclass
class Library:
    world: World
    vocab: Vocab
    baseline: FleetBaseline
    normaliser: Normaliser


def library_baseline(world: World | None = None) -> Library:
    """Generate the baseline week, normalise it, fit a :class:`FleetBaseline`."""
    world = world or World()
    em = Emitter(world)
    normal_fleet(em, world.start_ms, world.baseline_days, np.random.default_rng(world.seed))
    norm = Normaliser()
    batch = norm.dicts(em.out)
    return Library(world, norm.vocab, FleetBaseline.fit(batch, norm.vocab), norm)


def normal_records(lib: Library, kind: str) -> list[dict[str, Any]]:
    em = Emitter(lib.world)
    NORMALS[kind][1](em, np.random.default_rng(lib.world.seed + 1 + list(NORMALS).index(kind)))
    return em.out


def attack_records(lib: Library, attack: Attack) -> list[dict[str, Any]]:
    em = Emitter(lib.world)
    em.n = 10_000_000
    t0 = lib.world.eval_ms + ATTACK_HOUR * HOUR_MS
    attack.emit(em, t0, np.random.default_rng(lib.world.seed + 100 + ATTACKS.index(attack)))
    return em.out


@dataclass(frozen=True)
class Score:
    scenario: str
    kind: str  # "attack" or "normal"
    mitre: str
    detected: bool | None
    latency_s: float | None
    bound_s: float | None
    rules: str
    false_alarms_per_day: float | None

    @property
    def ok(self) -> bool:
        if self.kind == "normal":
            return self.false_alarms_per_day is not None and self.false_alarms_per_day <= 1.0
        return bool(self.detected) and self.latency_s is not None and \
            self.bound_s is not None and self.latency_s <= self.bound_s

    def row(self) -> dict[str, Any]:
        dash: Callable[[Any], Any] = lambda v: "-" if v is None else v  # noqa: E731
        return {"scenario": self.scenario, "kind": self.kind, "ATT&CK": self.mitre or "-",
                "detected": dash(self.detected), "latency s": dash(self.latency_s),
                "bound s": dash(self.bound_s), "rules": self.rules or "-",
                "false alarms/day": dash(self.false_alarms_per_day),
                "ok": "yes" if self.ok else "NO"}


def _batch(lib: Library, records: list[dict[str, Any]]) -> EventBatch:
    return lib.normaliser.dicts(records)


def run_library(lib: Library | None = None) -> tuple[list[Score], dict[str, list[FleetAlert]]]:
    """Every normal kind alone and every attack on top of steady traffic; scored."""
    lib = lib or library_baseline()
    w = lib.world
    scores: list[Score] = []
    alerts: dict[str, list[FleetAlert]] = {}
    steady: EventBatch | None = None
    steady_keys: set[Any] = set()
    for kind in NORMALS:
        batch = _batch(lib, normal_records(lib, kind))
        found = detect_fleet(batch, lib.vocab, lib.baseline)
        alerts[kind] = found
        if kind == "epochs-new-sessions":
            steady, steady_keys = batch, {a.key for a in found}
        scores.append(Score(kind, "normal", "", None, None, None,
                            ",".join(sorted({a.rule for a in found})),
                            round(len(found) / w.eval_days, 2)))
    assert steady is not None
    t0 = w.eval_ms + ATTACK_HOUR * HOUR_MS
    for attack in ATTACKS:
        extra = _batch(lib, attack_records(lib, attack))
        found = detect_fleet(EventBatch.concat([steady, extra]), lib.vocab, lib.baseline)
        alerts[attack.name] = found
        new = [a for a in found if a.key not in steady_keys
               and a.alert_time.timestamp() * 1000 >= t0]
        latency = None
        if new:
            latency = round(min(a.alert_time.timestamp() * 1000 for a in new) / 1000 - t0 / 1000,
                            1)
        scores.append(Score(attack.name, "attack", attack.mitre, bool(new), latency,
                            attack.bound_s, ",".join(sorted({a.rule for a in new})), None))
    return scores, alerts


def summary(scores: list[Score]) -> dict[str, float]:
    attacks = [s for s in scores if s.kind == "attack"]
    normals = [s for s in scores if s.kind == "normal"]
    return {
        "attacks": len(attacks),
        "recall": sum(bool(s.detected) for s in attacks) / len(attacks),
        "within bound": sum(s.ok for s in attacks) / len(attacks),
        "normal kinds": len(normals),
        "max false alarms/day": max(s.false_alarms_per_day or 0.0 for s in normals),
    }


def iter_records(lib: Library, kinds: tuple[str, ...] = ("epochs-new-sessions",)
                 ) -> Iterator[dict[str, Any]]:
    for kind in kinds:
        yield from normal_records(lib, kind)
