"""The fleet detector (securepipe.audit.fleet) on the scenario library, and its invariants."""

from __future__ import annotations

import datetime as dt
import gzip
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from securepipe.audit.events import EventBatch, Normaliser
from securepipe.audit.fleet import (
    FLEET_RULES,
    FleetBaseline,
    FleetDetector,
    FleetRule,
    detect_fleet,
    with_rules,
)
from securepipe.audit.library import (
    ATTACKS,
    NORMALS,
    Emitter,
    World,
    assumed_role,
    attack_records,
    library_baseline,
    normal_fleet,
    normal_records,
    run_library,
    summary,
)
from securepipe.audit.logs import (
    TrailStream,
    log_file_key,
    log_prefix,
    stream_bucket_logs,
    stream_log_files,
    write_log_files,
)
from securepipe.errors import InvalidParameterError, LogFileError


@pytest.fixture(scope="module")
def lib():
    return library_baseline()


@pytest.fixture(scope="module")
def scored(lib):
    return run_library(lib)


def test_the_library_is_caught_without_false_alarms(scored) -> None:
    scores, _ = scored
    attacks = [s for s in scores if s.kind == "attack"]
    normals = [s for s in scores if s.kind == "normal"]
    assert len(attacks) >= 15 and len(normals) >= 5
    totals = summary(scores)
    assert totals["recall"] >= 0.9
    missed = [s.row() for s in attacks if not s.ok]
    assert not missed, missed  # every detection within its stated bound
    noisy = [s.row() for s in normals if not s.ok]
    assert not noisy, noisy  # at most one false alarm per simulated day, every normal kind
    assert {s.scenario for s in normals} == set(NORMALS)


def test_each_attack_is_caught_by_the_rule_family_meant_for_it(scored) -> None:
    by = {s.scenario: s for s in scored[0]}
    assert "copy-out" in by["copy-cross-account"].rules.split(",")
    assert by["copy-cross-account"].rules == "copy-out"  # five copies: no volume rule fires
    assert "new-source" in by["presigned-curl"].rules
    assert "denied-10min" in by["denied-probing"].rules
    assert "probe-10min" in by["recon-head"].rules
    assert "fleet-share-6h" in by["distributed-contractors"].rules
    assert "spread-1h" in by["prefix-walk"].rules
    assert "new-principal" in by["anonymous-public"].rules


def test_new_session_names_are_not_news_but_a_new_source_is(lib) -> None:
    w = lib.world
    em = Emitter(w)
    feats = w.bucket("features")
    for k in range(50):  # fifty fresh sessions of the trainer, from its usual place
        ident = assumed_role(w.account, "securepipe-training", f"pod-{k:04d}-zz")
        em.emit(w.eval_ms + k * 60_000, "GetObject", ident, feats, f"features/c01/s{k:04d}.npy",
                ip="10.0.3.17", agent="[Boto3/1.35.36]", out_bytes=100,
                vpce="vpce-0a1b2c3d4e5f60001")
    quiet = detect_fleet(lib.normaliser.dicts(em.out), lib.vocab, lib.baseline)
    assert quiet == []
    em2 = Emitter(w)
    em2.emit(w.eval_ms, "GetObject", assumed_role(w.account, "securepipe-training", "pod-1"),
             feats, "features/c01/s0001.npy", ip="185.220.101.4", agent="curl/8.5.0",
             out_bytes=100)
    loud = detect_fleet(lib.normaliser.dicts(em2.out), lib.vocab, lib.baseline)
    assert [a.rule for a in loud] == ["new-source"]


def _shuffled_arrival(batch: EventBatch, seed: int, max_delay_ms: int) -> list[EventBatch]:
    """The batch as it might arrive: each event delayed by up to ``max_delay_ms``, then cut into
    uneven pieces."""
    rng = np.random.default_rng(seed)
    arrival = batch.time_ms + rng.integers(0, max_delay_ms + 1, len(batch))
    order = np.argsort(arrival, kind="stable")
    cuts = np.sort(rng.choice(np.arange(1, len(batch)), 40, replace=False))
    return [batch.take(part) for part in np.split(order, cuts)]


@pytest.mark.parametrize("name", ["distributed-contractors", "prefix-walk", "burst",
                                  "denied-probing"])
def test_out_of_order_by_five_minutes_gives_the_same_alerts(lib, name) -> None:
    attack = next(a for a in ATTACKS if a.name == name)
    batch = lib.normaliser.dicts(normal_records(lib, "epochs-new-sessions")[:20_000]
                                 + attack_records(lib, attack))
    in_order = batch.take(np.argsort(batch.time_ms, kind="stable"))
    expected = sorted(a.key for a in detect_fleet(in_order, lib.vocab, lib.baseline))
    assert expected
    det = FleetDetector(lib.baseline, lib.vocab, lag_s=300)
    for piece in _shuffled_arrival(batch, 3, 300_000):
        det.feed(piece)
    det.flush()
    assert det.late == 0
    assert sorted(a.key for a in det.alerts) == expected


def test_baseline_round_trips_through_json(lib) -> None:
    text = lib.baseline.to_json()
    again = FleetBaseline.from_json(text)
    assert again.to_json() == text
    batch = lib.normaliser.dicts(attack_records(lib, ATTACKS[0]))
    assert [a.key for a in detect_fleet(batch, lib.vocab, again)] == \
        [a.key for a in detect_fleet(batch, lib.vocab, lib.baseline)]
    body = json.loads(text)
    body["thresholds"]["no-such-rule"] = {}
    with pytest.raises(InvalidParameterError):
        FleetBaseline.from_json(json.dumps(body))
    with pytest.raises(InvalidParameterError):
        FleetBaseline.from_json("{}")


def test_every_rule_is_a_windowed_aggregate_with_data_thresholds(lib) -> None:
    names = {r.name for r in FLEET_RULES}
    assert set(lib.baseline.thresholds) <= names
    for rule in FLEET_RULES:
        assert rule.window_s >= 600 and rule.aggregate in ("count", "bytes", "objects",
                                                           "prefixes")
        assert rule.family and rule.mitre
    assert all(isinstance(v, float) for t in lib.baseline.thresholds.values()
               for v in t.values())


# -- a reference implementation, written plainly, for the aggregate core ----------------------


def _reference(times: list[int], groups: list[int], items: list[int], rule: FleetRule
               ) -> set[tuple[int, int, int]]:
    """(group, window start, alert time) by brute force: per phase, window and group, walk the
    events in time order and report the first one at which the aggregate exceeds the floor;
    then drop a window that overlaps one already kept for the group, and keep but do not
    report a window whose alert falls on a UTC day the group already has an alert for."""
    w = rule.window_ms
    found = []
    for phase in (0, w // 2):
        windows: dict[tuple[int, int], list[tuple[int, int]]] = {}
        for t, g, x in zip(times, groups, items, strict=True):
            windows.setdefault((g, (t + phase) // w), []).append((t, x))
        for (g, wid), evs in windows.items():
            seen: set[int] = set()
            value = 0.0
            for t, x in evs:  # already in time order
                if rule.aggregate == "count":
                    value += 1
                elif x not in seen:
                    seen.add(x)
                    value += 1
                if value > rule.floor:
                    found.append((t, (wid + 1) * w - phase - w, g))
                    break
    found.sort(key=lambda f: (f[0], f[1]))
    out, last, last_day = set(), {}, {}
    for t, start, g in found:
        if g in last and start < last[g]:
            continue
        last[g] = start + w
        if last_day.get(g) == t // 86_400_000:
            continue
        last_day[g] = t // 86_400_000
        out.add((g, start, t))
    return out


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 4 * 3600), st.integers(0, 2), st.integers(0, 6)),
                min_size=1, max_size=120),
       st.sampled_from(["count", "objects"]), st.integers(1, 6), st.integers(1, 17))
def test_the_aggregate_core_matches_a_plain_reference(events, aggregate, floor, pieces) -> None:
    w = World()
    events = sorted(events)
    em = Emitter(w)
    for t, g, x in events:
        em.emit(w.eval_ms + t * 1000, "GetObject", assumed_role(w.account, f"r{g}", "s"),
                w.bucket("raw"), f"raw/c01/s{x:04d}.wav", ip="10.0.0.1", agent="boto3")
    rule = FleetRule("r", "read", "role-bucket", aggregate, 3600, float(floor), learned=False)
    norm = Normaliser()
    batch = norm.dicts(em.out)
    base = FleetBaseline((rule,), 1.5, {}, {}, {}, {}, [], {}, {}, {}, {}, [], 1)
    det = FleetDetector(base, norm.vocab, lag_s=0)
    for part in np.array_split(np.arange(len(batch)), pieces):
        det.feed(batch.take(part))
    det.flush()
    role_code = {f"arn:aws:iam::{w.account}:role/r{g}": g for g in range(3)}
    got = {(role_code[a.principal], int(a.window_start.timestamp() * 1000),
            int(a.alert_time.timestamp() * 1000)) for a in det.alerts}
    want = _reference([w.eval_ms + t * 1000 for t, _, _ in events], [g for _, g, _ in events],
                      [x for _, _, x in events], rule)
    assert got == want


# -- log files ----------------------------------------------------------------------------------


def test_organization_trail_paths() -> None:
    day = dt.date(2026, 1, 12)
    assert log_prefix("111122223333", "eu-west-1", day, "trail", "o-abcdef1234") == \
        "trail/AWSLogs/o-abcdef1234/111122223333/CloudTrail/eu-west-1/2026/01/12/"
    key = log_file_key("111122223333", "eu-west-1", dt.datetime(2026, 1, 12, 0, 5, tzinfo=dt.UTC),
                       unique="u", organization_id="o-abcdef1234")
    assert key.startswith("AWSLogs/o-abcdef1234/111122223333/CloudTrail/")
    with pytest.raises(InvalidParameterError):
        log_prefix("111122223333", "eu-west-1", day, organization_id="../x")


def test_files_on_disk_give_the_same_alerts_as_records(lib, tmp_path) -> None:
    attack = next(a for a in ATTACKS if a.name == "presigned-curl")
    records = normal_records(lib, "epochs-new-sessions")[:8000] + attack_records(lib, attack)
    records.sort(key=lambda r: r["eventTime"])
    expected = sorted(a.key for a in detect_fleet(lib.normaliser.dicts(records), lib.vocab,
                                            lib.baseline))
    bad = dict(records[5])
    bad["additionalEventData"] = dict(bad["additionalEventData"], bytesTransferredOut=-3)
    paths = write_log_files(tmp_path, [*records, bad], account_id=lib.world.account,
                            region=lib.world.region, organization_id="o-abcdef1234")
    (tmp_path / "broken.json.gz").write_bytes(b"not gzip")
    (tmp_path / "cut.json.gz").write_bytes(gzip.compress(b'{"Records": [')[:-4])
    stream = TrailStream(Normaliser())
    det = FleetDetector(lib.baseline, stream.normaliser.vocab, min_batch=3000)
    for batch in stream_log_files([*paths, tmp_path / "broken.json.gz",
                                   tmp_path / "cut.json.gz", tmp_path / "missing.json.gz"],
                                  stream):
        det.feed(batch)
    det.flush()
    assert sorted(a.key for a in det.alerts) == expected
    assert stream.files == len(paths)
    assert stream.stats.rejected == 1
    assert "bytesTransferredOut is not a non-negative number" in stream.stats.reasons
    reasons = dict(stream.unreadable)
    assert "not a gzip file" in reasons[str(tmp_path / "broken.json.gz")]
    assert "truncated" in reasons[str(tmp_path / "cut.json.gz")]
    assert "cannot be read" in reasons[str(tmp_path / "missing.json.gz")]
    with pytest.raises(LogFileError, match=r"broken\.json\.gz"):
        list(stream_log_files([tmp_path / "broken.json.gz"], TrailStream(Normaliser()),
                              strict=True))


def test_rules_can_be_restricted(lib) -> None:
    only = with_rules(lib.baseline, [r for r in FLEET_RULES if r.name == "copy-out"])
    attack = next(a for a in ATTACKS if a.name == "copy-cross-account")
    found = detect_fleet(lib.normaliser.dicts(attack_records(lib, attack)), lib.vocab, only)
    assert {a.rule for a in found} == {"copy-out"}
    assert found[0].mitre == "T1537"


def test_streams_an_organization_trail_from_its_bucket(lib, tmp_path) -> None:
    from securepipe.sandbox.account import Sandbox

    attack = next(a for a in ATTACKS if a.name == "copy-cross-account")
    records = sorted(normal_records(lib, "epochs-new-sessions")[:4000]
                     + attack_records(lib, attack), key=lambda r: r["eventTime"])
    expected = sorted(a.key for a in detect_fleet(lib.normaliser.dicts(records), lib.vocab,
                                                  lib.baseline))
    paths = write_log_files(tmp_path, records, account_id=lib.world.account,
                            region=lib.world.region, organization_id="o-abcdef1234")
    day = dt.date(2026, 1, 12)
    with Sandbox() as sb:
        bucket = sb.resources.bucket("raw")
        s3 = sb.session.client("s3")
        for path in paths:
            s3.put_object(Bucket=bucket, Key=str(path.relative_to(tmp_path)),
                          Body=path.read_bytes())
        junk = log_prefix(lib.world.account, lib.world.region, day, "",
                          "o-abcdef1234") + "junk.json.gz"
        s3.put_object(Bucket=bucket, Key=junk, Body=b"{}")
        stream = TrailStream(Normaliser())
        det = FleetDetector(lib.baseline, stream.normaliser.vocab)
        for batch in stream_bucket_logs(sb.session, bucket, stream, account_id=lib.world.account,
                                        region=lib.world.region, start=day, end=day,
                                        organization_id="o-abcdef1234"):
            det.feed(batch)
        det.flush()
        without_org = TrailStream(Normaliser())
        assert list(stream_bucket_logs(sb.session, bucket, without_org,
                                       account_id=lib.world.account, region=lib.world.region,
                                       start=day, end=day)) == []
    assert sorted(a.key for a in det.alerts) == expected
    assert "copy-out" in {a.rule for a in det.alerts}
    assert stream.files == len(paths) and [k for k, _ in stream.unreadable] == [junk]


def test_memory_is_bounded_by_the_windows_not_the_stream(lib) -> None:
    """Open-window state after each day of a steady stream: it does not grow day after day."""
    w = lib.world
    em = Emitter(w)
    normal_fleet(em, w.eval_ms, 4, np.random.default_rng(5), weekly_read=False)
    batch = lib.normaliser.dicts(em.out)
    batch = batch.take(np.argsort(batch.time_ms, kind="stable"))
    det = FleetDetector(lib.baseline, lib.vocab)
    after_day = []
    for day in range(4):
        end = w.eval_ms + (day + 1) * 86_400_000
        det.feed(batch.take(np.flatnonzero((batch.time_ms >= end - 86_400_000)
                                           & (batch.time_ms < end))))
        after_day.append(det.state_entries)
    assert det.events == len(batch)
    assert after_day[0] > 1000 and max(after_day[1:]) <= 1.25 * after_day[0], after_day
