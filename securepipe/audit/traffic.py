"""Seeded GetObject traffic for the detector: normal training epochs, four attacks, a declared run.

Normal traffic, per day:

* the **training role** (``assumed-role/securepipe-training/trainer``) runs ``epochs_per_day``
  epochs, each reading every feature object in key order at about ``epoch_rate`` objects/s;
* each **contractor session** (``assumed-role/securepipe-contractor/contractor-cNN``) reviews
  a few of its own raw uploads;
* a **QA analyst** (IAM user) listens to random raw samples during working hours;
* a **data scientist** (IAM user) pulls a few small batches of one contractor's features.

Scenarios added to the evaluation period (each on its own copy of the normal traffic):

=================  ===========================================================================
``burst``          the analyst's keys download 2,000 raw samples in about 100 s
``slow-drip``      the data scientist's keys read one raw sample every ~30 s for 10 hours
``cross-prefix``   contractor c03's session reads 2 samples from each of 16 other contractors
``new-principal``  an IAM user never seen before reads 25 samples
``declared-run``   the trainer runs 4 back-to-back epochs over features *and* raw audio at twice
                   the usual rate, declared in advance (factor 12): must raise nothing
``undeclared-run`` the same run, not declared: must alert
``normal``         nothing added
=================  ===========================================================================

Times are whole seconds (as in CloudTrail's ``eventTime``) stored as int64 milliseconds.
:func:`evaluate_detector` fits a baseline on the baseline period and reports, per scenario,
whether it was detected, the latency from attack start to the first alert, the recall (attack
events flagged) and the false-positive rate over normal 10-minute windows.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from securepipe.audit.detector import (
    Baseline,
    Declaration,
    Detection,
    Detector,
    DetectorConfig,
    EventColumns,
)
from securepipe.errors import InvalidParameterError

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
MINUTE_MS = 60_000
SCENARIOS: tuple[str, ...] = ("normal", "burst", "slow-drip", "cross-prefix", "new-principal",
                              "declared-run", "undeclared-run")
#: The latency each scenario must be detected within (attack start -> first alert), seconds.
LATENCY_BOUNDS_S: dict[str, float] = {
    "burst": 60.0, "slow-drip": 6 * 3600.0, "cross-prefix": 600.0, "new-principal": 0.0,
    "undeclared-run": 600.0,
}
_EXPECT_ALERT = {"normal": False, "burst": True, "slow-drip": True, "cross-prefix": True,
                 "new-principal": True, "declared-run": False, "undeclared-run": True}


@dataclass(frozen=True)
class TrafficConfig:
    """Sizes, rates and the seed of the generated traffic."""

    seed: int = 7
    start: dt.datetime = dt.datetime(2026, 1, 5, tzinfo=dt.UTC)
    baseline_days: int = 3
    eval_days: int = 2
    contractors: int = 24
    samples_per_contractor: int = 150
    trainers: int = 1
    epochs_per_day: int = 6
    epoch_rate: float = 15.0
    raw_bytes: int = 96_044
    feature_bytes: int = 20_608
    analyst_per_hour: float = 20.0
    account_id: str = "210000000001"
    region: str = "eu-west-1"

    def __post_init__(self) -> None:
        if not 1 <= self.contractors <= 999 or self.samples_per_contractor < 10:
            raise InvalidParameterError("need 1..999 contractors and >= 10 samples each")
        if self.contractors < 17:
            raise InvalidParameterError("the cross-prefix scenario needs >= 17 contractors")
        if self.baseline_days < 1 or self.eval_days < 2 or self.trainers < 1:
            raise InvalidParameterError("need >= 1 baseline day, >= 2 evaluation days, a trainer")
        if not 1 <= self.epochs_per_day <= 12 or self.epoch_rate <= 0:
            raise InvalidParameterError("epochs_per_day must be 1..12, epoch_rate positive")

    @property
    def start_ms(self) -> int:
        return int(self.start.timestamp() * 1000)

    @property
    def eval_start_ms(self) -> int:
        return self.start_ms + self.baseline_days * DAY_MS

    @property
    def raw_bucket(self) -> str:
        return f"securepipe-raw-{self.account_id}-{self.region}"

    @property
    def features_bucket(self) -> str:
        return f"securepipe-features-{self.account_id}-{self.region}"

    def contractor_id(self, c: int) -> str:
        return f"c{c + 1:02d}"

    def principals(self) -> tuple[str, ...]:
        """The vocabulary: trainers, contractors, analyst, data scientist, then the outsider."""
        acct = self.account_id
        trainers = tuple(
            f"arn:aws:sts::{acct}:assumed-role/securepipe-training/trainer"
            + ("" if self.trainers == 1 else f"-{i + 1}") for i in range(self.trainers))
        # Same session names as access.vend_contractor_credentials ("contractor-<id>"), so a
        # real vended session is a known principal to a baseline learned from this traffic.
        contractors = tuple(f"arn:aws:sts::{acct}:assumed-role/securepipe-contractor/"
                            f"contractor-{self.contractor_id(c)}" for c in range(self.contractors))
        return (*trainers, *contractors, f"arn:aws:iam::{acct}:user/qa-analyst",
                f"arn:aws:iam::{acct}:user/data-scientist", f"arn:aws:iam::{acct}:user/temp-export")

    # object catalogue: raw objects 0..C*S-1, features C*S..2*C*S-1; prefixes 0..C-1 raw, C..2C-1
    def object_key(self, code: int) -> tuple[str, str]:
        """(bucket, key) of an object code."""
        per = self.samples_per_contractor
        total = self.contractors * per
        features = code >= total
        c, i = divmod(code - total if features else code, per)
        if features:
            return self.features_bucket, f"features/{self.contractor_id(c)}/s{i:04d}.npy"
        return self.raw_bucket, f"raw/{self.contractor_id(c)}/s{i:04d}.wav"


@dataclass
class Traffic:
    """Generated events plus what the scenario was (label 1 = the scenario's events)."""

    columns: EventColumns
    label: np.ndarray
    scenario: str
    principal: str | None = None
    start_ms: int | None = None
    end_ms: int | None = None
    declarations: tuple[Declaration, ...] = ()
    expected_alert: bool = False

    def __len__(self) -> int:
        return len(self.columns)


@dataclass
class _Parts:
    p: list[np.ndarray] = field(default_factory=list)
    t: list[np.ndarray] = field(default_factory=list)
    o: list[np.ndarray] = field(default_factory=list)

    def add(self, principal: int, times: np.ndarray, objects: np.ndarray) -> None:
        self.p.append(np.full(times.shape[0], principal, np.int32))
        self.t.append(np.asarray(times, np.int64))
        self.o.append(np.asarray(objects, np.int64))


def _rng(cfg: TrafficConfig, *tags: int) -> np.random.Generator:
    return np.random.default_rng([cfg.seed, *tags])


def _normal(cfg: TrafficConfig, start_ms: int, days: int, period: int) -> _Parts:
    parts = _Parts()
    per, nc = cfg.samples_per_contractor, cfg.contractors
    total = nc * per
    features = total + np.arange(total, dtype=np.int64)
    names = cfg.principals()
    analyst, scientist = len(names) - 3, len(names) - 2
    for day in range(days):
        day_ms = start_ms + day * DAY_MS
        for trainer in range(cfg.trainers):
            rng = _rng(cfg, period, day, 1, trainer)
            spacing = DAY_MS // cfg.epochs_per_day
            for epoch in range(cfg.epochs_per_day):
                begin = day_ms + epoch * spacing + int(rng.integers(0, 20 * MINUTE_MS))
                gaps = rng.exponential(1000.0 / cfg.epoch_rate, total)
                parts.add(trainer, begin + np.cumsum(gaps).astype(np.int64), features)
        rng = _rng(cfg, period, day, 2)
        for c in range(nc):
            k = int(rng.integers(1, 9))
            begin = day_ms + int(rng.integers(8 * HOUR_MS, 18 * HOUR_MS))
            times = begin + np.cumsum(rng.integers(5_000, 30_000, k))
            parts.add(cfg.trainers + c, times, c * per + rng.integers(0, per, k))
        rng = _rng(cfg, period, day, 3)
        k = int(rng.poisson(cfg.analyst_per_hour * 8))
        times = np.sort(day_ms + rng.integers(9 * HOUR_MS, 17 * HOUR_MS, k))
        parts.add(analyst, times, rng.integers(0, total, k))
        rng = _rng(cfg, period, day, 4)
        for slot in (9, 12, 15):
            k = int(rng.integers(20, 41))
            c = int(rng.integers(0, nc))
            begin = day_ms + slot * HOUR_MS + int(rng.integers(0, 90 * MINUTE_MS))
            times = begin + np.cumsum(rng.integers(1_000, 4_000, k))
            parts.add(scientist, times, total + c * per + rng.integers(0, per, k))
    return parts


def _finish(cfg: TrafficConfig, parts: _Parts, labels: list[np.ndarray]) -> tuple[
        EventColumns, np.ndarray]:
    p = np.concatenate(parts.p)
    t = (np.concatenate(parts.t) // 1000) * 1000  # CloudTrail times are whole seconds
    o = np.concatenate(parts.o)
    label = np.concatenate(labels).astype(np.int8)
    order = np.argsort(t, kind="stable")
    p, t, o, label = p[order], t[order], o[order], label[order]
    total = cfg.contractors * cfg.samples_per_contractor
    features = o >= total
    c = np.where(features, o - total, o) // cfg.samples_per_contractor
    prefix = (c + np.where(features, cfg.contractors, 0)).astype(np.int32)
    size = np.where(features, cfg.feature_bytes, cfg.raw_bytes).astype(np.int64)
    cols = EventColumns(p.astype(np.int32), t.astype(np.int64), size, prefix, o,
                        cfg.principals())
    return cols, label


def baseline_traffic(cfg: TrafficConfig | None = None) -> Traffic:
    """Normal traffic over the baseline period (what :meth:`Baseline.fit` learns from)."""
    cfg = cfg or TrafficConfig()
    parts = _normal(cfg, cfg.start_ms, cfg.baseline_days, period=0)
    cols, label = _finish(cfg, parts, [np.zeros(a.shape[0]) for a in parts.t])
    return Traffic(cols, label, "baseline")


def scenario_traffic(name: str, cfg: TrafficConfig | None = None) -> Traffic:
    """Normal evaluation-period traffic plus scenario ``name`` (see :data:`SCENARIOS`)."""
    cfg = cfg or TrafficConfig()
    if name not in SCENARIOS:
        raise InvalidParameterError(f"unknown scenario {name!r}; expected one of {SCENARIOS}")
    parts = _normal(cfg, cfg.eval_start_ms, cfg.eval_days, period=1)
    labels = [np.zeros(a.shape[0]) for a in parts.t]
    n_normal = len(parts.t)
    names = cfg.principals()
    per, nc = cfg.samples_per_contractor, cfg.contractors
    total = nc * per
    e0 = cfg.eval_start_ms
    rng = _rng(cfg, 2, SCENARIOS.index(name))
    principal: int | None = None
    declarations: tuple[Declaration, ...] = ()
    if name == "burst":
        principal = len(names) - 3
        start = e0 + DAY_MS + 14 * HOUR_MS
        times = start + np.cumsum(rng.exponential(50.0, 2000)).astype(np.int64)
        parts.add(principal, times, rng.choice(total, 2000, replace=False))
    elif name == "slow-drip":
        principal = len(names) - 2
        start = e0 + 19 * HOUR_MS
        k = 1200
        times = start + np.cumsum(rng.integers(20_000, 40_000, k))
        parts.add(principal, times, np.arange(k, dtype=np.int64) % total)
    elif name == "cross-prefix":
        principal = cfg.trainers + 2  # contractor c03
        start = e0 + DAY_MS + 3 * HOUR_MS
        others = [c for c in range(nc) if c != 2][:16]
        objects = np.array([c * per + int(rng.integers(0, per)) for c in others for _ in (0, 1)])
        times = start + np.cumsum(rng.integers(10_000, 20_000, objects.shape[0]))
        parts.add(principal, times, objects)
    elif name == "new-principal":
        principal = len(names) - 1
        start = e0 + 11 * HOUR_MS
        times = start + np.cumsum(rng.integers(2_000, 4_000, 25))
        parts.add(principal, times, rng.choice(total, 25, replace=False))
    elif name in ("declared-run", "undeclared-run"):
        principal = 0
        start = e0 + DAY_MS + 7 * HOUR_MS
        objects = np.tile(np.arange(2 * total, dtype=np.int64), 4)
        times = start + np.cumsum(rng.exponential(1000.0 / (2 * cfg.epoch_rate),
                                                  objects.shape[0])).astype(np.int64)
        parts.add(principal, times, objects)
        if name == "declared-run":
            end = int(times[-1])
            declarations = (Declaration(names[0], _dt(start - 10 * MINUTE_MS),
                                        _dt(end + 10 * MINUTE_MS), factor=12.0),)
    else:
        start = None
    for arr in parts.t[n_normal:]:
        labels.append(np.ones(arr.shape[0]))
    cols, label = _finish(cfg, parts, labels)
    attack_times = cols.time_ms[label == 1]
    return Traffic(
        cols, label, name, None if principal is None else names[principal],
        None if start is None else int(attack_times.min()),
        None if start is None else int(attack_times.max()), declarations, _EXPECT_ALERT[name])


def to_cloudtrail_events(traffic: Traffic, cfg: TrafficConfig | None = None
                         ) -> Iterator[dict[str, Any]]:
    """The traffic as CloudTrail GetObject data-event dicts, in time order (the shape
    :class:`securepipe.sandbox.cloudtrail.CloudTrailRecorder` records)."""
    cfg = cfg or TrafficConfig()
    cols = traffic.columns
    identities = [_identity(arn) for arn in cols.principals]
    stamps: dict[int, str] = {}
    for i in range(len(cols)):
        ms = int(cols.time_ms[i])
        stamp = stamps.get(ms)
        if stamp is None:
            stamp = stamps[ms] = _dt(ms).strftime("%Y-%m-%dT%H:%M:%SZ")
        bucket, key = cfg.object_key(int(cols.obj[i]))
        yield {
            "eventVersion": "1.09",
            "userIdentity": identities[int(cols.principal[i])],
            "eventTime": stamp,
            "eventSource": "s3.amazonaws.com",
            "eventName": "GetObject",
            "awsRegion": cfg.region,
            "sourceIPAddress": "10.0.0.1",
            "userAgent": "Boto3/1.44 securepipe-traffic",
            "requestParameters": {"bucketName": bucket, "key": key,
                                  "Host": f"{bucket}.s3.{cfg.region}.amazonaws.com"},
            "responseElements": None,
            "additionalEventData": {"bytesTransferredIn": 0,
                                    "bytesTransferredOut": int(cols.bytes[i])},
            "requestID": f"{i:016X}",
            "eventID": f"00000000-0000-4000-8000-{i:012x}",
            "readOnly": True,
            "resources": [{"type": "AWS::S3::Object", "ARN": f"arn:aws:s3:::{bucket}/{key}"},
                          {"type": "AWS::S3::Bucket", "ARN": f"arn:aws:s3:::{bucket}",
                           "accountId": cfg.account_id}],
            "eventType": "AwsApiCall",
            "managementEvent": False,
            "recipientAccountId": cfg.account_id,
            "eventCategory": "Data",
        }


def _identity(arn: str) -> dict[str, Any]:
    account = arn.split(":")[4]
    if ":assumed-role/" in arn:
        role, session = arn.split("assumed-role/", 1)[1].split("/", 1)
        return {"type": "AssumedRole", "arn": arn, "accountId": account,
                "principalId": f"AROAEXAMPLE:{session}",
                "sessionContext": {"sessionIssuer": {
                    "type": "Role", "arn": f"arn:aws:iam::{account}:role/{role}",
                    "accountId": account, "userName": role}}}
    return {"type": "IAMUser", "arn": arn, "accountId": account,
            "userName": arn.rsplit("/", 1)[-1]}


# -- evaluation --------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScenarioResult:
    """How the detector did on one scenario."""

    scenario: str
    principal: str | None
    expected_alert: bool
    detected: bool
    latency_s: float | None
    latency_bound_s: float | None
    recall: float | None
    false_positive_rate: float
    alerts: int
    events: int

    @property
    def ok(self) -> bool:
        if self.detected != self.expected_alert:
            return False
        if self.detected and self.latency_bound_s is not None:
            return self.latency_s is not None and self.latency_s <= self.latency_bound_s
        return True


def score(traffic: Traffic, detection: Detection, config: DetectorConfig) -> ScenarioResult:
    """Detection, latency, recall and false-positive rate of one detection run."""
    cols = traffic.columns
    detected, latency = False, None
    window_end = None
    if traffic.principal is not None and traffic.start_ms is not None:
        assert traffic.end_ms is not None
        window_end = traffic.end_ms + config.max_window_ms
        hits = [a for a in detection.alerts if a.principal == traffic.principal
                and traffic.start_ms <= _ms(a.alert_time) <= window_end]
        if hits:
            detected = True
            latency = (min(_ms(a.alert_time) for a in hits) - traffic.start_ms) / 1000.0
    attack = traffic.label == 1
    recall = float(detection.flagged[attack].mean()) if attack.any() else None
    # normal windows: (principal, 10-minute bin) of normal events, minus the attacker's bins
    # while the attack is still inside the longest window
    normal = ~attack
    if traffic.principal is not None and window_end is not None:
        code = cols.principals.index(traffic.principal)
        assert traffic.start_ms is not None
        tainted = (cols.principal == code) & (cols.time_ms >= traffic.start_ms) & (
            cols.time_ms <= window_end)
        normal &= ~tainted
    bins = cols.principal.astype(np.int64)[normal] * (1 << 40) + cols.time_ms[normal] // (
        10 * MINUTE_MS)
    windows, inverse = np.unique(bins, return_inverse=True)
    bad = np.zeros(windows.shape[0], bool)
    np.logical_or.at(bad, inverse, detection.flagged[normal])
    fpr = float(bad.mean()) if windows.shape[0] else 0.0
    return ScenarioResult(traffic.scenario, traffic.principal, traffic.expected_alert, detected,
                          latency, LATENCY_BOUNDS_S.get(traffic.scenario), recall, fpr,
                          len(detection.alerts), len(cols))


def evaluate_detector(
    cfg: TrafficConfig | None = None, detector_config: DetectorConfig | None = None,
    scenarios: tuple[str, ...] = SCENARIOS,
) -> list[ScenarioResult]:
    """Fit a baseline on the baseline period, then score every scenario."""
    cfg = cfg or TrafficConfig()
    baseline = Baseline.fit(baseline_traffic(cfg).columns, detector_config or DetectorConfig())
    results = []
    for name in scenarios:
        traffic = scenario_traffic(name, cfg)
        detection = Detector(baseline, traffic.declarations).detect(traffic.columns)
        results.append(score(traffic, detection, baseline.config))
    return results


def _dt(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


def _ms(value: dt.datetime) -> int:
    return int(value.timestamp() * 1000)
