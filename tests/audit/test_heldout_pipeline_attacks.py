"""Held-out attacks on what the fleet detector exempts or trusts: fresh uploads and VPC endpoints.

The fleet is the shape of an independent attacker's simulation (issue 15's second review):
contractors upload recordings to their own prefix from home and play back some of them, an
ingest role reads every upload through its VPC endpoint and writes features, a backup role
copies each upload, a trainer reads the features bucket through its own endpoint every day, a
weekly job re-reads every recording on Sundays, a QA analyst samples a few recordings.
Records follow the CloudTrail record reference, where ``vpcEndpointAccountId`` names the owner
of the endpoint a request went through:
https://docs.aws.amazon.com/awscloudtrail/latest/userguide/cloudtrail-event-reference-record-contents.html

An attack is *caught* when an alert the normal days alone do not raise comes at or after its
start.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

import pytest

from securepipe.audit.events import Normaliser
from securepipe.audit.fleet import FleetAlert, FleetBaseline, detect_fleet

ACCT = "111122223333"
EVIL = "444455556666"
RAW = f"vox-raw-{ACCT}"
FEAT = f"vox-features-{ACCT}"
BACKUP = f"vox-backup-{ACCT}"
START = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
DAY = 86_400
BASE_DAYS = 14  # two weeks: the weekly rule learns from whole 7-day windows
EVAL_DAYS = 7
E0 = BASE_DAYS * DAY
RAW_SIZE = 1_200_000
FEAT_SIZE = 200_000
CONTRACTORS = 12
BOTO = "[Boto3/1.35.2 md/Botocore#1.35.2 ua/2.0 os/linux#5.10 lang/python#3.11.9]"
CLI = "aws-cli/2.17.0 md/awscrt#0.20.11 ua/2.0 os/macos#23.5.0 command/s3.cp"
INGEST_VPCE = "vpce-0ingest0000000001"
TRAIN_VPCE = "vpce-0train00000000001"


def ts(t: float) -> str:
    return (START + dt.timedelta(seconds=int(t))).strftime("%Y-%m-%dT%H:%M:%SZ")


def role(name: str, session: str) -> dict[str, Any]:
    return {"type": "AssumedRole", "principalId": f"AROAEXAMPLE:{session}",
            "arn": f"arn:aws:sts::{ACCT}:assumed-role/{name}/{session}", "accountId": ACCT,
            "sessionContext": {"sessionIssuer": {"type": "Role", "principalId": "AROAEXAMPLE",
                                                 "arn": f"arn:aws:iam::{ACCT}:role/{name}",
                                                 "accountId": ACCT, "userName": name}}}


def rec(t: float, name: str, ident: dict[str, Any], bucket: str, key: str, *, size: int = 0,
        ip: str = "10.0.1.5", vpce: str | None = None, vpce_account: str | None = None,
        agent: str = BOTO, copy_src: str | None = None,
        version: str | None = None) -> dict[str, Any]:
    params: dict[str, Any] = {"bucketName": bucket, "key": key}
    if copy_src:
        params["x-amz-copy-source"] = copy_src
    if version:
        params["versionId"] = version
    r: dict[str, Any] = {
        "eventVersion": "1.09", "userIdentity": ident, "eventTime": ts(t),
        "eventSource": "s3.amazonaws.com", "eventName": name, "awsRegion": "us-east-1",
        "sourceIPAddress": ip, "userAgent": agent, "requestParameters": params,
        "additionalEventData": {"AuthenticationMethod": "AuthHeader",
                                "bytesTransferredIn": 0, "bytesTransferredOut": size},
        "resources": [{"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{key}"},
                      {"accountId": ACCT, "type": "AWS::S3::Bucket",
                       "ARN": f"arn:aws:s3:::{bucket}"}],
        "eventType": "AwsApiCall", "recipientAccountId": ACCT, "eventCategory": "Data"}
    if vpce:
        r["vpcEndpointId"] = vpce
        r["vpcEndpointAccountId"] = vpce_account or ACCT
    return r


class Fleet:
    def __init__(self, upload_scale: float = 1.0, per: int = 60) -> None:
        self.rng = random.Random(7)
        self.raw = [f"raw/c{c:02d}/s{i:05d}.wav" for c in range(CONTRACTORS) for i in range(per)]
        self.next = dict.fromkeys(range(CONTRACTORS), per)
        self.ip = {c: f"73.{c}.{self.rng.randrange(256)}.9" for c in range(CONTRACTORS)}
        self.scale = upload_scale
        self.uploads: list[tuple[float, str, int]] = []

    @staticmethod
    def feat(key: str) -> str:
        return "features/" + key[4:].replace(".wav", ".npy")

    def day(self, d: int) -> list[dict[str, Any]]:
        rng, out, t0 = self.rng, [], d * DAY
        scale = self.scale if d >= BASE_DAYS else 1.0
        new = []
        for c in range(CONTRACTORS):
            for _ in range(int(rng.randint(3, 8) * scale)):
                t = t0 + rng.uniform(13 * 3600, 23 * 3600)
                key = f"raw/c{c:02d}/s{self.next[c]:05d}.wav"
                self.next[c] += 1
                ident = role("vox-contractor", f"contractor-c{c:02d}")
                out.append(rec(t, "PutObject", ident, RAW, key, ip=self.ip[c], agent=CLI))
                if rng.random() < 0.3:
                    out.append(rec(t + 60, "GetObject", ident, RAW, key, size=RAW_SIZE,
                                   ip=self.ip[c], agent=CLI))
                t1 = t + rng.uniform(2, 40)
                ingest = role("vox-ingest", f"ingest-{rng.getrandbits(32):08x}")
                out.append(rec(t1, "GetObject", ingest, RAW, key, size=RAW_SIZE,
                               ip="10.0.8.7", vpce=INGEST_VPCE))
                out.append(rec(t1 + 3, "PutObject", ingest, FEAT, self.feat(key),
                               ip="10.0.8.7", vpce=INGEST_VPCE))
                out.append(rec(t1 + 3600, "CopyObject", role("vox-backup", "s3-backup"), BACKUP,
                               key, ip="10.0.9.4", vpce="vpce-0backup000000001",
                               copy_src=f"{RAW}/{key}"))
                new.append(key)
                self.uploads.append((t, key, c))
        if d % 7 == 0:  # Sunday: the weekly re-extraction reads every recording
            job = role("vox-reextract", f"reextract-{d}")
            for i, k in enumerate(self.raw):
                out.append(rec(t0 + 2 * 3600 + i / 3.0, "GetObject", job, RAW, k,
                               size=RAW_SIZE, ip="10.0.30.7", vpce="vpce-0batch00000000001"))
        trainer = role("vox-trainer", f"train-{d}")
        for i, k in enumerate(self.raw):
            out.append(rec(t0 + 3600 + i / 4.0, "GetObject", trainer, FEAT, self.feat(k),
                           size=FEAT_SIZE, ip="10.0.20.10", vpce=TRAIN_VPCE))
        for _ in range(rng.randint(10, 25)):
            k = rng.choice(self.raw)
            out.append(rec(t0 + rng.uniform(14 * 3600, 22 * 3600), "GetObject",
                           {"type": "IAMUser", "principalId": "AIDAEXAMPLE",
                            "arn": f"arn:aws:iam::{ACCT}:user/qa-analyst", "accountId": ACCT},
                           RAW, k, size=RAW_SIZE, ip="198.51.100.23", agent=CLI))
        self.raw.extend(new)
        return out


class World:
    def __init__(self, upload_scale: float = 1.0) -> None:
        self.fleet = Fleet(upload_scale)
        days = [self.fleet.day(d) for d in range(BASE_DAYS + EVAL_DAYS)]
        self.norm = Normaliser()
        base = [r for d in days[:BASE_DAYS] for r in d]
        self.baseline = FleetBaseline.fit(self.norm.dicts(base), self.norm.vocab)
        self.warm = days[BASE_DAYS - 1]
        self.eval = [r for d in days[BASE_DAYS:] for r in d]
        self.stored = list(self.fleet.raw[: CONTRACTORS * 60])
        self.eval_uploads = [u for u in self.fleet.uploads if u[0] >= E0]

    def detect(self, extra: list[dict[str, Any]] | None = None) -> list[FleetAlert]:
        records = sorted(self.warm + self.eval + (extra or []), key=lambda r: r["eventTime"])
        found = detect_fleet(self.norm.dicts(records), self.norm.vocab, self.baseline)
        return [a for a in found if a.alert_time >= START + dt.timedelta(seconds=E0)]


@pytest.fixture(scope="module")
def world() -> World:
    return World()


def caught(world: World, extra: list[dict[str, Any]]) -> set[str]:
    normal = {a.key for a in world.detect()}
    first = min(r["eventTime"] for r in extra)
    return {a.rule for a in world.detect(extra)
            if a.key not in normal and a.alert_time.strftime("%Y-%m-%dT%H:%M:%SZ") >= first}


def test_the_normal_days_raise_nothing(world: World) -> None:
    assert world.detect() == []
    # the pipeline is the ingest and backup roles, not the contractors who play back uploads
    assert sorted(world.baseline.fresh_readers[RAW]) == [
        f"arn:aws:iam::{ACCT}:role/vox-backup", f"arn:aws:iam::{ACCT}:role/vox-ingest"]


def test_twice_the_uploads_raise_no_fresh_alert() -> None:
    """The pipeline's budget follows the upload rate: a backfill doubling uploads is normal for
    the ingest and backup roles (the contractors' own play-backs, doubled, are reads of theirs
    and may cross their weekly budget: at most one alert per rule a day)."""
    busy = World(upload_scale=2.0)
    found = busy.detect()
    assert not {a.rule for a in found} & {"fresh-24h", "fleet-fresh-24h"}
    assert len(found) <= EVAL_DAYS


def test_a_contractor_siphoning_every_fresh_upload_is_caught(world: World) -> None:
    """A compromised contractor reads every other contractor's upload ten minutes after it
    lands, from its own home address and tool: it is not the pipeline, so these are reads."""
    ident = role("vox-contractor", "contractor-c07")
    extra = [rec(t + 600, "GetObject", ident, RAW, k, size=RAW_SIZE, ip=world.fleet.ip[7],
                 agent=CLI) for t, k, c in world.eval_uploads if c != 7]
    assert caught(world, extra) & {"share-24h", "spread-1h", "spread-24h", "bytes-7d"}


def test_stolen_ingest_credentials_rereading_uploads_are_caught(world: World) -> None:
    """The ingest role's credentials, through the ingest role's own endpoint, read every upload a
    second time: the pipeline's fresh reads per upload double."""
    extra = [rec(t + 900, "GetObject", role("vox-ingest", "i-stolen"), RAW, k, size=RAW_SIZE,
                 ip="10.0.8.7", vpce=INGEST_VPCE) for t, k, _ in world.eval_uploads]
    assert caught(world, extra) & {"fresh-24h", "fleet-fresh-24h"}


def test_reading_an_older_version_after_a_rewrite_is_not_fresh(world: World) -> None:
    """With versioning, the ingest role rewrites stored objects and reads their old versions by
    versionId: the old data is the stored dataset, not the pipeline's flow."""
    ident = role("vox-ingest", "i-versions")
    extra = []
    t = E0 + DAY + 14 * 3600
    for k in world.stored[:400]:
        extra.append(rec(t, "PutObject", ident, RAW, k, ip="10.0.8.7", vpce=INGEST_VPCE))
        extra.append(rec(t + 1, "GetObject", ident, RAW, k, size=RAW_SIZE, ip="10.0.8.7",
                         vpce=INGEST_VPCE, version="3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"))
        t += 8
    assert caught(world, extra) & {"reads-10min", "reads-1h", "bytes-1h", "share-6h",
                                   "share-24h", "bytes-7d"}
    # the same reads without the versionId would be the pipeline's (bounded) flow
    plain = [r for r in extra if r["eventName"] == "PutObject"] + [
        {**r, "requestParameters": {"bucketName": RAW, "key": r["requestParameters"]["key"]}}
        for r in extra if r["eventName"] == "GetObject"]
    assert not caught(world, plain) & {"reads-10min", "reads-1h", "share-6h", "share-24h"}


def test_another_vpc_endpoint_is_a_new_network(world: World) -> None:
    """The trainer's credentials read the features bucket through an attacker's endpoint."""
    trainer = role("vox-trainer", "train-x")
    extra = [rec(E0 + DAY + 13 * 3600 + i / 4.0, "GetObject", trainer, FEAT, Fleet.feat(k),
                 size=FEAT_SIZE, ip="172.31.44.2", vpce="vpce-0attacker0000001")
             for i, k in enumerate(world.stored)]
    assert "egress-7d" in caught(world, extra)


def test_an_endpoint_owned_by_another_account_is_never_familiar(world: World) -> None:
    """Even under the trainer's own endpoint id, an endpoint another account owns
    (``vpcEndpointAccountId``) is a new network."""
    trainer = role("vox-trainer", "train-x")
    extra = [rec(E0 + DAY + 13 * 3600 + i / 4.0, "GetObject", trainer, FEAT, Fleet.feat(k),
                 size=FEAT_SIZE, ip="172.31.44.2", vpce=TRAIN_VPCE, vpce_account=EVIL)
             for i, k in enumerate(world.stored)]
    assert "egress-7d" in caught(world, extra)


def stored_reads(ident: dict[str, Any], keys: list[str], per_day: int, *, ip: str,
                 vpce: str | None = None, agent: str = BOTO) -> list[dict[str, Any]]:
    out, i = [], 0
    for d in range(EVAL_DAYS):
        for j in range(per_day):
            out.append(rec(E0 + d * DAY + 10 * 3600 + j * (10 * 3600 / per_day), "GetObject",
                           ident, RAW, keys[i % len(keys)], size=RAW_SIZE, ip=ip, vpce=vpce,
                           agent=agent))
            i += 1
    return out


def test_identities_each_under_budget_add_up_over_the_week(world: World) -> None:
    """Four identities (the analyst, a contractor, the ingest and trainer roles from a known
    address) each read a few stored recordings a day: together a sixth of the dataset in a week,
    which only a fleet-wide weekly share sees."""
    keys = list(world.stored)
    random.Random(3).shuffle(keys)
    n = len(keys) // EVAL_DAYS // 4 // 3  # a sixth of the dataset (grown) in the week
    analyst = {"type": "IAMUser", "principalId": "AIDAEXAMPLE",
               "arn": f"arn:aws:iam::{ACCT}:user/qa-analyst", "accountId": ACCT}
    q = len(keys) // 4
    extra = (stored_reads(analyst, keys[0:q], n, ip="198.51.100.23", agent=CLI)
             + stored_reads(role("vox-contractor", "contractor-c07"), keys[q:2 * q], n,
                            ip=world.fleet.ip[7], agent=CLI)
             + stored_reads(role("vox-ingest", "ingest-x"), keys[2 * q:3 * q], n,
                            ip="10.0.8.7", vpce=INGEST_VPCE)
             + stored_reads(role("vox-trainer", "t-x"), keys[3 * q:], n, ip="10.0.20.10",
                            vpce=TRAIN_VPCE))
    assert len({r["requestParameters"]["key"] for r in extra}) >= world.baseline.sizes[RAW] / 7
    assert "fleet-share-7d" in caught(world, extra)


def test_a_poisoned_baseline_cannot_raise_a_share_threshold_past_its_cap() -> None:
    """The analyst's stolen keys read 200 of 3,600 stored recordings every day of the baseline
    too (the attacker's poisoning run, at its dataset's size): every learned share is capped (a
    stated share of the dataset, or a stated number of objects when more), so the same theft
    still alerts, fleet-wide weekly."""
    from securepipe.audit.fleet import FLEET_RULES

    class Poisoned(Fleet):
        def day(self, d: int) -> list[dict[str, Any]]:
            out = super().day(d)
            rng = random.Random(d)
            for j, k in enumerate(rng.sample(self.raw[: CONTRACTORS * 300], 200)):
                out.append(rec(d * DAY + 14 * 3600 + j * (8 * 3600 / 200), "GetObject",
                               {"type": "IAMUser", "principalId": "AIDAEXAMPLE",
                                "arn": f"arn:aws:iam::{ACCT}:user/qa-analyst",
                                "accountId": ACCT},
                               RAW, k, size=RAW_SIZE, ip="198.51.100.23", agent=CLI))
            return out

    world = World.__new__(World)
    fleet = Poisoned(per=300)
    days = [fleet.day(d) for d in range(BASE_DAYS + EVAL_DAYS)]
    world.fleet, world.norm = fleet, Normaliser()
    base = world.baseline = FleetBaseline.fit(
        world.norm.dicts([r for d in days[:BASE_DAYS] for r in d]), world.norm.vocab)
    world.warm, world.eval = days[BASE_DAYS - 1], [r for d in days[BASE_DAYS:] for r in d]
    bulk = {f"{r}\x00{b}" for b, roles in base.bulk.items() for r in roles}
    for rule in FLEET_RULES:
        if rule.cap is None:
            continue
        for key, value in base.thresholds[rule.name].items():
            size = base.sizes[key.rsplit("\x00", 1)[-1]]
            if key not in bulk:
                assert value <= max(rule.cap, rule.cap_objects / size, rule.floor) + 1e-12
    assert "fleet-share-7d" in {a.rule for a in world.detect()}


def test_a_new_contractor_on_a_new_network_is_one_alert_a_day(world: World) -> None:
    """A new contractor uploads and plays back from a new ISP with a new tool every day: the
    novelty rules fire per window, but report once per rule and principal a day."""
    extra = []
    ident = role("vox-contractor", "contractor-c30")
    agent = "Cyberduck/8.8.2.41480 (Windows 10/10.0) (x86-64)"
    for d in range(EVAL_DAYS):
        for j in range(12):
            t, key, ip = E0 + d * DAY + 12 * 3600 + j * 1200, f"raw/c30/s{d:03d}{j:02d}.wav", \
                f"187.45.{d}.9"
            extra.append(rec(t, "PutObject", ident, RAW, key, ip=ip, agent=agent))
            extra.append(rec(t + 30, "GetObject", ident, RAW, key, size=RAW_SIZE, ip=ip,
                             agent=agent))
    normal = {a.key for a in world.detect()}
    new = [a for a in world.detect(extra) if a.key not in normal]
    per_day: dict[Any, int] = {}
    for a in new:
        day = (a.rule, a.principal, a.alert_time.date())
        per_day[day] = per_day.get(day, 0) + 1
    print(sorted(per_day.items()))
    assert new and max(per_day.values()) <= 1
    assert len(new) <= 2 * EVAL_DAYS


def test_reads_from_a_directory_bucket_are_s3_reads(world: World) -> None:
    """The analyst reads 2,000 objects of a directory-bucket copy of the training set: S3
    Express One Zone logs them with ``eventSource`` ``s3express.amazonaws.com``."""
    analyst = {"type": "IAMUser", "principalId": "AIDAEXAMPLE",
               "arn": f"arn:aws:iam::{ACCT}:user/qa-analyst", "accountId": ACCT}
    extra = [dict(rec(E0 + DAY + 14 * 3600 + j * 10, "GetObject", analyst,
                      "vox-train--use1-az4--x-s3", f"raw/c01/s{j:05d}.wav", size=RAW_SIZE,
                      ip="198.51.100.23", agent=CLI), eventSource="s3express.amazonaws.com")
             for j in range(2000)]
    norm = Normaliser(vocab=world.norm.vocab)
    assert len(norm.dicts(extra)) == len(extra) and norm.stats.ignored == 0
    # (the volume rules crossed the same day are one alert: the first, here bytes-1h)
    assert caught(world, extra) & {"reads-10min", "reads-1h", "bytes-1h", "share-6h"}
