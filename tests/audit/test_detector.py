"""The per-principal exfiltration detector (securepipe.audit.detector).

moto never evaluates CloudWatch alarms (gap cloudwatch-alarms): the alerts here come from the
kit's detector; the SNS -> SQS delivery they travel through is moto's real behaviour.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from securepipe.audit.detector import (
    Alert,
    Baseline,
    Declaration,
    Detector,
    DetectorConfig,
    EventColumns,
    Rule,
    StreamDetector,
    columns_from_events,
    key_prefix,
    publish_alerts,
)
from securepipe.audit.monitoring import apply_monitoring
from securepipe.audit.traffic import (
    LATENCY_BOUNDS_S,
    TrafficConfig,
    baseline_traffic,
    scenario_traffic,
    to_cloudtrail_events,
)
from securepipe.errors import InvalidParameterError, MalformedEventError
from securepipe.sandbox.account import Sandbox
from securepipe.sandbox.cloudtrail import CloudTrailRecorder
from securepipe.sandbox.gaps import gap

CFG = TrafficConfig()


@pytest.fixture(scope="module")
def baseline() -> Baseline:
    return Baseline.fit(baseline_traffic(CFG).columns)


@pytest.mark.parametrize("name", ["burst", "slow-drip", "cross-prefix", "new-principal"])
def test_each_attack_is_detected_within_its_bound(baseline: Baseline, name: str) -> None:
    traffic = scenario_traffic(name, CFG)
    alerts = Detector(baseline).detect(traffic.columns).alerts
    assert alerts and {a.principal for a in alerts} == {traffic.principal}
    assert traffic.start_ms is not None
    latency = (min(a.alert_time for a in alerts).timestamp() * 1000 - traffic.start_ms) / 1000
    assert 0 <= latency <= LATENCY_BOUNDS_S[name], latency
    expected_rule = {"burst": "burst", "slow-drip": "drip", "cross-prefix": "cross-prefix",
                     "new-principal": "new-principal"}[name]
    assert expected_rule in {a.rule for a in alerts}
    if name == "slow-drip":  # only the long window can see it
        assert {(a.rule, a.window) for a in alerts} == {("drip", "6h")}
    for alert in alerts:
        assert alert.first_event_time <= alert.alert_time
        assert alert.observed > alert.threshold or alert.rule == "new-principal"


@pytest.mark.parametrize("name", ["normal", "declared-run"])
def test_normal_traffic_and_a_declared_run_stay_quiet(baseline: Baseline, name: str) -> None:
    traffic = scenario_traffic(name, CFG)
    detection = Detector(baseline, traffic.declarations).detect(traffic.columns)
    assert detection.alerts == [] and not detection.flagged.any()


def test_the_declaration_is_what_keeps_the_larger_run_quiet(baseline: Baseline) -> None:
    declared = scenario_traffic("declared-run", CFG)
    assert Detector(baseline).detect(declared.columns).alerts  # undeclared: alerts
    (decl,) = declared.declarations
    too_small = Declaration(decl.principal, decl.start, decl.end, factor=2.0)
    assert Detector(baseline, [too_small]).detect(declared.columns).alerts
    other = Declaration("arn:aws:iam::1:user/someone-else", decl.start, decl.end, decl.factor)
    assert Detector(baseline, [other]).detect(declared.columns).alerts
    with pytest.raises(InvalidParameterError):
        Declaration(decl.principal, decl.start, decl.end, factor=0.5)
    with pytest.raises(InvalidParameterError):
        Declaration(decl.principal, decl.end, decl.start, factor=2.0)


def test_replay_gives_identical_alerts(baseline: Baseline) -> None:
    first = Detector(baseline).detect(scenario_traffic("burst", CFG).columns)
    again = Detector(Baseline.fit(baseline_traffic(CFG).columns)).detect(
        scenario_traffic("burst", CFG).columns)
    assert first.alerts == again.alerts and (first.flagged == again.flagged).all()


def test_dict_stream_and_column_paths_agree(baseline: Baseline) -> None:
    traffic = scenario_traffic("cross-prefix", CFG)
    detector = Detector(baseline)
    batch = detector.detect(traffic.columns)
    events = list(to_cloudtrail_events(traffic, CFG))
    dicts = detector.detect_events(events)
    stream = StreamDetector(detector, batch=4_000)
    for event in events:
        stream.feed(event)
    stream.flush()
    assert batch.alerts == dicts.alerts == stream.alerts
    assert (batch.flagged == dicts.flagged).all()
    assert stream.retained < len(events)  # history trimmed to the longest window


def test_input_order_does_not_matter(baseline: Baseline) -> None:
    traffic = scenario_traffic("burst", CFG)
    detector = Detector(baseline)
    shuffled = traffic.columns.take(np.random.default_rng(1).permutation(len(traffic)))
    # equal-time events keep input order: compare alerts on whole-second traffic by identity
    a, b = detector.detect(traffic.columns).alerts, detector.detect(shuffled).alerts
    assert [(x.principal, x.rule, x.metric, x.window) for x in a] == [
        (x.principal, x.rule, x.metric, x.window) for x in b]


_MALFORMED: list[tuple[str, Callable[[dict[str, Any]], Any]]] = [
    ("not-a-dict", lambda e: ["GetObject"]),
    ("no-event-name", lambda e: {k: v for k, v in e.items() if k != "eventName"}),
    ("no-identity", lambda e: {k: v for k, v in e.items() if k != "userIdentity"}),
    ("arn-not-str", lambda e: {**e, "userIdentity": {"arn": 12}}),
    ("time-garbage", lambda e: {**e, "eventTime": "yesterday"}),
    ("time-naive", lambda e: {**e, "eventTime": "2026-01-08T10:00:00"}),
    ("time-int", lambda e: {**e, "eventTime": 1767866400}),
    ("no-params", lambda e: {**e, "requestParameters": None}),
    ("key-none", lambda e: {**e, "requestParameters": {"bucketName": "b", "key": None}}),
    ("bytes-str", lambda e: {**e, "additionalEventData": {"bytesTransferredOut": "12"}}),
    ("bytes-negative", lambda e: {**e, "additionalEventData": {"bytesTransferredOut": -1}}),
    ("bytes-bool", lambda e: {**e, "additionalEventData": {"bytesTransferredOut": True}}),
]


@pytest.mark.parametrize(("kind", "spoil"), _MALFORMED, ids=[k for k, _ in _MALFORMED])
def test_malformed_events_are_rejected_never_crash(
        baseline: Baseline, kind: str, spoil: Callable[[dict[str, Any]], Any]) -> None:
    traffic = scenario_traffic("new-principal", CFG)
    events = list(to_cloudtrail_events(traffic, CFG))
    bad_at = 100
    events.insert(bad_at, spoil(copy.deepcopy(events[bad_at])))
    with pytest.raises(MalformedEventError) as err:
        columns_from_events(events, strict=True)
    assert err.value.index == bad_at
    detector = Detector(baseline)
    result = detector.detect_events(events)  # streaming semantics: counted, skipped
    assert result.rejected == 1
    assert any(a.rule == "new-principal" for a in result.alerts)
    stream = StreamDetector(detector, batch=10_000)
    for event in events:
        stream.feed(event)
    stream.flush()
    assert stream.rejected == 1 and stream.alerts == result.alerts


def test_non_getobject_and_refused_events_are_ignored() -> None:
    base = next(iter(to_cloudtrail_events(scenario_traffic("normal", CFG), CFG)))
    events = [base, {**base, "eventName": "PutObject"}, {**base, "errorCode": "AccessDenied"}]
    cols = columns_from_events(events)
    assert len(cols) == 1


@pytest.mark.parametrize("spoil", ["time", "principal", "dtype", "length"])
def test_malformed_columns_are_rejected(spoil: str) -> None:
    cols = scenario_traffic("normal", CFG).columns.take(np.arange(50))
    arrays = {"principal": cols.principal.copy(), "time_ms": cols.time_ms.copy(),
              "bytes": cols.bytes, "prefix": cols.prefix, "obj": cols.obj}
    if spoil == "time":
        arrays["time_ms"][7] = -5
    elif spoil == "principal":
        arrays["principal"][3] = len(cols.principals)
    elif spoil == "dtype":
        arrays["time_ms"] = arrays["time_ms"].astype(np.float64)
    else:
        arrays["bytes"] = arrays["bytes"][:-1]
    with pytest.raises(MalformedEventError):
        EventColumns(**arrays, principals=cols.principals).validate()


def test_config_validation_and_helpers(baseline: Baseline) -> None:
    with pytest.raises(InvalidParameterError):
        DetectorConfig(rules=())
    with pytest.raises(InvalidParameterError):
        DetectorConfig(quantile=0.1)
    assert key_prefix("raw/c01/s1.wav") == "raw/c01/" and key_prefix("x.wav") == ""
    trainer = CFG.principals()[0]
    rule = baseline.config.rules[0]
    assert baseline.threshold(trainer, rule) > rule.floor  # learned from epochs
    assert baseline.threshold("arn:aws:iam::1:user/nobody", rule) == rule.floor
    assert baseline.knows(trainer) and not baseline.knows("arn:aws:iam::1:user/nobody")
    q = Baseline.fit(baseline_traffic(CFG).columns, DetectorConfig(quantile=0.99))
    assert (q.peaks <= baseline.peaks).all()
    custom = DetectorConfig(rules=(Rule("burst", "requests", 60, floor=5),))
    assert Baseline.fit(baseline_traffic(CFG).columns, custom).thresholds.shape[0] == 1


def test_alerts_reach_sqs_through_sns(sandbox: Sandbox) -> None:
    setup = apply_monitoring(sandbox.session, [sandbox.resources.bucket("raw")],
                             sandbox.resources.bucket("audit"))
    when = dt.datetime(2026, 1, 8, 14, 0, tzinfo=dt.UTC)
    alert = Alert("arn:aws:iam::1:user/qa-analyst", "burst", "requests", "1min", 31.0, 30.0,
                  when, when + dt.timedelta(seconds=2))
    assert len(publish_alerts(sandbox.session, setup.topic_arn, [alert])) == 1
    messages = sandbox.session.client("sqs").receive_message(
        QueueUrl=setup.queue_url, MaxNumberOfMessages=10)["Messages"]
    body = json.loads(messages[0]["Body"])
    assert body["principal"] == alert.principal and body["rule"] == "burst"
    assert body["alert_time"] == "2026-01-08T14:00:02.000Z"
    assert "moto never evaluates CloudWatch alarms" in body["note"]
    assert gap("cloudwatch-alarms").response == "emulate"
    with pytest.raises(InvalidParameterError):
        publish_alerts(sandbox.session, "not-a-topic", [alert])


def test_recorded_reads_by_an_unknown_principal_alert_end_to_end(
        sandbox: Sandbox, baseline: Baseline) -> None:
    bucket = sandbox.resources.bucket("raw")
    s3 = sandbox.session.client("s3")
    s3.put_object(Bucket=bucket, Key="raw/c01/s0001.wav", Body=b"v" * 100)
    with CloudTrailRecorder() as recorder:
        recorder.attach(sandbox.session)
        for _ in range(3):
            sandbox.session.client("s3").get_object(Bucket=bucket, Key="raw/c01/s0001.wav")
    alerts = Detector(baseline).detect_events(recorder.events).alerts
    assert [a.rule for a in alerts] == ["new-principal"]
    assert alerts[0].principal == sandbox.resources.admin_user_arn
