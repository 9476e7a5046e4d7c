"""The fleet rules as SQL (securepipe.audit.lake): DuckDB over the same gzipped CloudTrail files
gives the Python detector's alerts on every scenario of the library; the Athena rendering is
Trino SQL; a baseline that does not match the rules is refused."""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import json
from collections import Counter

import duckdb
import pytest
import sqlglot

from securepipe.audit.events import AUTH_METHODS, KINDS, Normaliser, Vocab
from securepipe.audit.fleet import FLEET_RULES, FleetBaseline, FleetRule, detect_fleet
from securepipe.audit.lake import (
    VIEW,
    athena_ddl,
    check_baseline,
    duckdb_table,
    lake_queries,
    merge_phases,
    run_duckdb,
)
from securepipe.audit.library import (
    ATTACKS,
    DAY_MS,
    NORMALS,
    attack_records,
    library_baseline,
    normal_records,
)
from securepipe.audit.logs import write_log_files
from securepipe.cli import main as cli_main
from securepipe.errors import InvalidParameterError

#: To keep the test quick, every scenario is kept but on a subset of the evaluation days: each
#: normal kind over its first two days (the weekly re-read, onboarding, growth and the weekend
#: all fall in them), each attack (all of its records) on the first day of steady traffic
#: (every attack starts at 11:00 on it; its bound is at most an hour).
NORMAL_MS = 2 * DAY_MS
STEADY_MS = DAY_MS


@pytest.fixture(scope="module")
def lib():
    return library_baseline()


def _py_keys(lib, records) -> list[tuple]:
    alerts = detect_fleet(lib.normaliser.dicts(records), lib.vocab, lib.baseline)
    return sorted((*a.key, a.observed, a.threshold) for a in alerts)


def _sql(lib, records, tmp_path) -> tuple[list, dict[str, int]]:
    paths = write_log_files(tmp_path, records, account_id=lib.world.account,
                            region=lib.world.region, per_file=4000)
    con = duckdb.connect()
    assert duckdb_table(con, paths) == len(records)
    return run_duckdb(con, lib.baseline)


def _when(ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)


def _sql_keys(alerts) -> list[tuple]:
    return sorted((a.rule, a.principal, a.scope, _when(a.window_start_ms), _when(a.alert_ms),
                   a.observed, a.threshold) for a in alerts)


def test_duckdb_gives_the_python_alerts_on_every_scenario(lib, tmp_path_factory) -> None:
    assert len(ATTACKS) >= 15
    def first(records, span_ms):
        end = lib.world.eval_ms + span_ms
        return [r for r in records
                if dt.datetime.fromisoformat(r["eventTime"]).timestamp() * 1000 < end]

    steady = first(normal_records(lib, "epochs-new-sessions"), STEADY_MS)
    scenarios = {kind: first(normal_records(lib, kind), NORMAL_MS) for kind in NORMALS}
    scenarios |= {a.name: steady + attack_records(lib, a) for a in ATTACKS}
    rules_seen: Counter[str] = Counter()
    for name, records in scenarios.items():
        records = sorted(records, key=lambda r: r["eventTime"])
        expected = _py_keys(lib, records)
        alerts, skipped = _sql(lib, records, tmp_path_factory.mktemp(name))
        # the same alerts (rule, principal, scope, window, alert time), with the same observed
        # value and threshold, exactly
        assert _sql_keys(alerts) == expected, name
        assert skipped == {}, name
        assert all(a.observed > a.threshold for a in alerts)
        rules_seen.update(a.rule for a in alerts)
    # not vacuous: the scenarios make most rules fire, and the attacks are seen
    assert len(rules_seen) >= 12, rules_seen
    assert {"copy-out", "new-principal", "new-source", "share-6h", "spread-1h",
            "fleet-share-6h", "denied-10min", "restore-1h"} <= set(rules_seen)


def test_malformed_records_are_skipped_and_counted_by_reason(lib, tmp_path) -> None:
    attack = next(a for a in ATTACKS if a.name == "burst")
    good = sorted(attack_records(lib, attack), key=lambda r: r["eventTime"])[:400]
    bad = []
    for n, spoil in enumerate((
        lambda r: r["additionalEventData"].__setitem__("bytesTransferredOut", -3),
        lambda r: r["additionalEventData"].__setitem__("bytesTransferredOut", "lots"),
        lambda r: r["requestParameters"].pop("bucketName"),
        lambda r: r["requestParameters"].pop("key"),
        lambda r: r.pop("eventName"),
        lambda r: r.__setitem__("eventTime", "yesterday"),
        lambda r: r.pop("userIdentity"),
        lambda r: r.__setitem__("userIdentity", {"type": "AssumedRole"}),
        lambda r: r.__setitem__("userIdentity", {"principalId": "x"}),
        lambda r: r.__setitem__("eventName", "CopyObject"),
    )):
        for _ in range(n + 1):
            rec = copy.deepcopy(good[len(bad) % len(good)])
            spoil(rec)
            bad.append(rec)
    other = copy.deepcopy(good[0])
    other["eventSource"] = "ec2.amazonaws.com"
    floats = copy.deepcopy(good[1])
    floats["additionalEventData"]["bytesTransferredOut"] = 2143.0
    records = good + bad + [other, floats]
    norm = Normaliser(vocab=lib.vocab)
    norm.dicts(records)
    _, skipped = _sql(lib, records, tmp_path)
    assert norm.stats.rejected == len(bad)
    ignored = skipped.pop("ignored")
    assert skipped == dict(norm.stats.reasons)
    assert ignored == norm.stats.ignored == 1
    assert sum(skipped.values()) == len(bad)


def test_the_athena_rendering_parses_as_trino(lib) -> None:
    queries = lake_queries(lib.baseline, "athena")
    assert set(queries.rules) == {r.name for r in FLEET_RULES}
    for sql in (queries.view, queries.sizes, *queries.rules.values(), queries.rejects):
        assert sqlglot.parse_one(sql, read="trino") is not None
    # the thresholds are the baseline's, as exact doubles
    value = lib.baseline.thresholds["share-6h"]
    some = next(iter(value.values()))
    assert f"CAST('{some!r}' AS DOUBLE)" in queries.rules["share-6h"]
    assert "json_extract_scalar(requestparameters" in queries.view.lower()
    assert "sessioncontext.sessionissuer.arn" in queries.view.lower()
    ddl = athena_ddl("s3://trail-bucket/AWSLogs/111122223333/CloudTrail/")
    assert "requestparameters STRING" in ddl and "useridentity STRUCT<" in ddl
    with pytest.raises(InvalidParameterError):
        athena_ddl("/local/path")
    with pytest.raises(InvalidParameterError):
        lake_queries(lib.baseline, "oracle")


def test_a_baseline_that_does_not_match_the_rules_is_refused(lib) -> None:
    base = lib.baseline
    check_baseline(base)
    other = dataclasses.replace(base, rules=(*base.rules[:-1], dataclasses.replace(
        base.rules[-1], window_s=7200)))
    with pytest.raises(InvalidParameterError, match="do not match"):
        check_baseline(other)
    missing = dataclasses.replace(base, thresholds={k: v for k, v in base.thresholds.items()
                                                    if k != "reads-1h"})
    with pytest.raises(InvalidParameterError, match="no thresholds for reads-1h"):
        check_baseline(missing)
    for name, table in (("copy-out", {"x": 1.0}), ("probe-1h", {"a\x00b": 1.0}),
                        ("reads-1h", {"role-without-bucket": 1.0}),
                        ("reads-1h", {"a\x00b": float("nan")}),
                        ("reads-1h", {"a\x00b": -1.0})):
        bad = dataclasses.replace(base, thresholds={**base.thresholds, name: table})
        with pytest.raises(InvalidParameterError):
            check_baseline(bad)
    with pytest.raises(InvalidParameterError):
        lake_queries(dataclasses.replace(base, rules=(FleetRule(
            "odd", "read", "role", "median", 60, 0.0),)), rules=(FleetRule(  # type: ignore[arg-type]  # a rule the Literal types refuse, as a JSON file may hold
                "odd", "read", "role", "median", 60, 0.0),))  # type: ignore[arg-type]  # same


def test_cli_prints_ddl_and_queries_and_refuses_a_bad_baseline(lib, tmp_path, capsys) -> None:
    path = tmp_path / "baseline.json"
    path.write_text(lib.baseline.to_json())
    assert cli_main(["detect", "sql", "--dialect", "athena", "--baseline", str(path)]) == 0
    out = capsys.readouterr().out
    assert "CREATE EXTERNAL TABLE cloudtrail_logs" in out
    assert f"CREATE OR REPLACE VIEW {VIEW}" in out
    assert out.count("-- rule: ") == len(FLEET_RULES)
    body = json.loads(path.read_text())
    body["thresholds"]["reads-1h"] = {"only-a-role": 3.0}
    path.write_text(json.dumps(body))
    assert cli_main(["detect", "sql", "--baseline", str(path)]) == 2
    assert "reads-1h" in capsys.readouterr().err
    path.write_text("{}")
    assert cli_main(["detect", "sql", "--baseline", str(path)]) == 2


def test_phases_merge_as_the_detector_does() -> None:
    w = 1000
    day = 86_400_000  # alerts a day apart: one per rule, group and UTC day is kept (below)
    rows = [dict(rule="r", rule_index=0, family="volume", grp="role-bucket", gp="p", gs="",
                 gb="b", principal="p", scope="b", window_start_ms=start, window_ms=w,
                 alert_ms=at, observed=2.0, threshold=1.0)
            for start, at in ((0, 600), (500, 700), (1000, 1100 + day), (1500, 1200 + day))]
    kept = merge_phases(rows)
    # in order of alert time: 0 is reported; 500 overlaps it; 1000 starts where 0 ends (a
    # rule "skip any window overlapping an earlier one" would drop it: it overlaps 500);
    # 1500 overlaps 1000
    assert [a.window_start_ms for a in kept] == [0, 1000]
    # a different group is independent
    other = [dict(r, gp="q") for r in rows[1:2]]
    assert [a.window_start_ms for a in merge_phases(rows + other)] == [0, 500, 1000]
    # a later window of the same rule and group on the same UTC day joins the day's alert
    same_day = [dict(r, alert_ms=r["alert_ms"] % day) for r in rows]
    assert [a.window_start_ms for a in merge_phases(same_day)] == [0]
    # and so does another rule of the same family for the same group; another family does not
    kin = dict(rows[2], rule="r2", rule_index=1, alert_ms=rows[2]["alert_ms"] + 5)
    assert [a.rule for a in merge_phases([*rows, kin])] == ["r", "r"]
    stranger = dict(kin, family="share")
    assert [a.rule for a in merge_phases([*rows, stranger])] == ["r", "r", "r2"]


def test_fitted_baseline_json_round_trips_into_the_same_sql(lib) -> None:
    again = FleetBaseline.from_json(lib.baseline.to_json())
    assert lake_queries(again, "athena").script() == lake_queries(lib.baseline,
                                                                  "athena").script()


def test_the_view_normalises_every_identity_and_path_as_python_does(lib, tmp_path) -> None:
    """Differential: per record, the view's role, session, kind, bucket, key presence, bytes,
    network, user-agent family and authentication method are the Python normaliser's."""
    records = []
    for name in ("stolen-trainer-session", "copy-cross-account", "anonymous-public",
                 "other-account", "presigned-curl", "restore-stage", "new-iam-user"):
        attack = next(a for a in ATTACKS if a.name == name)
        records += attack_records(lib, attack)[:30]
    odd = copy.deepcopy(records[0])  # an AssumedRole without its sessionContext
    del odd["userIdentity"]["sessionContext"]
    odd["userIdentity"]["arn"] = "arn:aws:sts::444455556666:assumed-role/pathless/sess-1"
    odd2 = copy.deepcopy(odd)
    odd2["userIdentity"]["arn"] = "arn:aws:sts::444455556666:assumed-role/only-role"
    copy_plus = copy.deepcopy(next(r for r in records if r["eventName"] == "CopyObject"))
    copy_plus["requestParameters"]["x-amz-copy-source"] = "/src-bucket/a+b/c%20d.wav?versionId=1"
    floats = copy.deepcopy(records[1])
    floats["additionalEventData"]["bytesTransferredOut"] = "2143.0"
    v6 = copy.deepcopy(records[2])
    v6["sourceIPAddress"] = "2001:db8:85a3::8a2e:370:7334"
    v6["userAgent"] = "[  aws-cli/2.15.0 Python/3.11]"
    service = copy.deepcopy(records[3])
    service["userIdentity"] = {"type": "AWSService", "invokedBy": "athena.amazonaws.com"}
    service["sourceIPAddress"] = "athena.amazonaws.com"
    records += [odd, odd2, copy_plus, floats, v6, service]
    norm = Normaliser()
    batch = norm.dicts(records)
    assert norm.stats.rejected == 0 and len(batch) == len(records)
    v = norm.vocab
    p, se, b = Vocab.names(v.principals), Vocab.names(v.sessions), Vocab.names(v.buckets)
    n, ag = Vocab.names(v.networks), Vocab.names(v.agents)
    expected = [(p[batch.principal[i]], se[batch.session[i]].split("\x00", 1)[1],
                 KINDS[batch.kind[i]], b[batch.bucket[i]], bool(batch.obj[i] != 0),
                 int(batch.bytes[i]), n[batch.network[i]], ag[batch.agent[i]],
                 AUTH_METHODS[batch.auth[i]], bool(batch.denied[i]), bool(batch.foreign[i]))
                for i in range(len(batch))]
    paths = write_log_files(tmp_path, records, account_id=lib.world.account,
                            region=lib.world.region, per_file=50)
    con = duckdb.connect()
    duckdb_table(con, paths)
    con.execute(lake_queries(lib.baseline, "duckdb", order="seq").view)
    got = [tuple(row) for row in con.execute(
        f"SELECT principal, session, kind, bucket, obj_key IS NOT NULL, bytes, network, agent, "
        f"auth, denied, foreign_dest FROM {VIEW} ORDER BY seq").fetchall()]
    assert got == expected
    keys = {r[0] for r in
            con.execute(f"SELECT obj_key FROM {VIEW} WHERE kind = 'copy'").fetchall()}
    assert "a+b/c d.wav" in keys
