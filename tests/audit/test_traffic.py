"""The seeded traffic generator and the detector's evaluation (securepipe.audit.traffic)."""

from __future__ import annotations

import numpy as np
import pytest

from securepipe.audit.detector import AdapterStats, DetectorConfig, columns_from_events
from securepipe.audit.traffic import (
    LATENCY_BOUNDS_S,
    SCENARIOS,
    TrafficConfig,
    baseline_traffic,
    evaluate_detector,
    scenario_traffic,
    to_cloudtrail_events,
)
from securepipe.errors import InvalidParameterError

CFG = TrafficConfig()


def test_generation_is_seeded() -> None:
    a, b = scenario_traffic("burst", CFG), scenario_traffic("burst", CFG)
    for name in ("principal", "time_ms", "bytes", "prefix", "obj"):
        assert np.array_equal(getattr(a.columns, name), getattr(b.columns, name))
    other = scenario_traffic("burst", TrafficConfig(seed=8))
    assert not np.array_equal(a.columns.time_ms[:1000], other.columns.time_ms[:1000])


def test_baseline_shape() -> None:
    traffic = baseline_traffic(CFG)
    cols = traffic.columns
    cols.validate()
    assert (np.diff(cols.time_ms) >= 0).all() and (cols.time_ms % 1000 == 0).all()
    assert not traffic.label.any()
    start, end = CFG.start_ms, CFG.eval_start_ms
    assert cols.time_ms.min() >= start and cols.time_ms.max() < end + 3_600_000
    seen = {cols.principals[c] for c in np.unique(cols.principal)}
    assert seen == set(CFG.principals()[:-1])  # everyone but the outsider
    trainer = cols.principal == 0
    epochs = CFG.epochs_per_day * CFG.baseline_days
    assert trainer.sum() == epochs * CFG.contractors * CFG.samples_per_contractor
    assert set(np.unique(cols.bytes).tolist()) == {CFG.raw_bytes, CFG.feature_bytes}


@pytest.mark.parametrize("name", SCENARIOS)
def test_scenarios_are_labelled(name: str) -> None:
    traffic = scenario_traffic(name, CFG)
    attack = traffic.label == 1
    if name == "normal":
        assert not attack.any() and traffic.principal is None
        return
    assert attack.any()
    code = traffic.columns.principals.index(traffic.principal)
    assert (traffic.columns.principal[attack] == code).all()
    assert traffic.start_ms == traffic.columns.time_ms[attack].min()
    assert bool(traffic.declarations) == (name == "declared-run")
    assert traffic.expected_alert == (name not in ("normal", "declared-run"))


def test_cloudtrail_dicts_round_trip() -> None:
    traffic = scenario_traffic("cross-prefix", CFG)
    events = list(to_cloudtrail_events(traffic, CFG))
    assert len(events) == len(traffic)
    first = events[0]
    assert first["eventName"] == "GetObject" and first["eventCategory"] == "Data"
    assert first["requestParameters"]["key"].split("/")[0] in ("raw", "features")
    stats = AdapterStats()
    cols = columns_from_events(events, stats=stats)
    assert (stats.accepted, stats.rejected, stats.ignored) == (len(events), 0, 0)
    assert np.array_equal(cols.time_ms, traffic.columns.time_ms)
    assert np.array_equal(cols.bytes, traffic.columns.bytes)
    assert len(np.unique(cols.prefix)) == len(np.unique(traffic.columns.prefix))
    assert len(np.unique(cols.obj)) == len(np.unique(traffic.columns.obj))


def test_evaluation_meets_every_bound() -> None:
    results = {r.scenario: r for r in evaluate_detector(CFG)}
    assert set(results) == set(SCENARIOS)
    for result in results.values():
        assert result.ok, result
        assert result.false_positive_rate == 0.0, result
    for name, bound in LATENCY_BOUNDS_S.items():
        latency = results[name].latency_s
        assert latency is not None and 0 <= latency <= bound
    assert results["normal"].alerts == 0 and results["declared-run"].alerts == 0
    assert results["declared-run"].recall == 0.0
    assert results["burst"].recall is not None and results["burst"].recall > 0.9
    assert results["new-principal"].recall == 1.0


def test_evaluation_without_margin_still_detects() -> None:
    results = evaluate_detector(CFG, DetectorConfig(margin=1.0),
                                scenarios=("burst", "cross-prefix"))
    assert all(r.detected for r in results)


def test_config_validation() -> None:
    for bad in ({"contractors": 5}, {"eval_days": 1}, {"epochs_per_day": 0},
                {"samples_per_contractor": 3}):
        with pytest.raises(InvalidParameterError):
            TrafficConfig(**bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError):
        scenario_traffic("heist", CFG)
    bucket, key = CFG.object_key(CFG.contractors * CFG.samples_per_contractor + 1)
    assert bucket == CFG.features_bucket and key == "features/c01/s0001.npy"
