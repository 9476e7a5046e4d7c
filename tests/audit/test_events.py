"""Normalising CloudTrail S3 data events (securepipe.audit.events)."""

from __future__ import annotations

import copy
import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from securepipe.audit.events import (
    COPY,
    GET,
    HEAD,
    KINDS,
    LIST,
    SELECT,
    Normaliser,
    Vocab,
    agent_family,
    network_of,
    parse_time_ms,
)
from securepipe.audit.library import (
    ANONYMOUS,
    Emitter,
    World,
    assumed_role,
    iam_user,
    other_account,
)
from securepipe.errors import MalformedEventError

W = World()


def _one(name: str = "GetObject", identity: dict | None = None, **kw) -> dict:
    em = Emitter(W)
    em.emit(W.eval_ms, name, identity or iam_user(W.account, "alice"), W.bucket("raw"),
            kw.pop("key", "raw/c01/s0001.wav"), ip=kw.pop("ip", "198.51.100.7"),
            agent=kw.pop("agent", "[Boto3/1.35.0 md/x]"), **kw)
    return em.out[0]


def test_identities_normalise_to_the_role_with_the_session_as_attribute() -> None:
    records = [
        _one(identity=assumed_role(W.account, "securepipe-training", "epoch-1-aaaa")),
        _one(identity=assumed_role(W.account, "securepipe-training", "epoch-2-bbbb")),
        _one(identity=iam_user(W.account, "alice")),
        _one(identity={"type": "AWSService", "invokedBy": "athena.amazonaws.com"}),
        _one(identity=other_account("444455556666")),
        _one(identity=ANONYMOUS),
    ]
    norm = Normaliser()
    batch = norm.dicts(records)
    assert norm.stats.rejected == 0 and len(batch) == 6
    names = Vocab.names(norm.vocab.principals)
    got = [names[c] for c in batch.principal]
    role = f"arn:aws:iam::{W.account}:role/securepipe-training"
    assert got == [role, role, f"arn:aws:iam::{W.account}:user/alice",
                   "service:athena.amazonaws.com", "account:444455556666", "anonymous"]
    assert batch.session[0] != batch.session[1]  # the session stays an attribute


def test_an_assumed_role_without_session_issuer_falls_back_to_its_arn() -> None:
    ident = assumed_role(W.account, "r", "s1")
    del ident["sessionContext"]
    norm = Normaliser()
    batch = norm.dicts([_one(identity=ident)])
    assert Vocab.names(norm.vocab.principals)[batch.principal[0]] == \
        f"arn:aws:iam::{W.account}:role/r"


@pytest.mark.parametrize("value, expected", [(2143, 2143), (2143.0, 2143), ("2143", 2143),
                                             (None, 0)])
def test_bytes_transferred_out_is_read_tolerantly(value, expected) -> None:
    rec = _one()
    rec["additionalEventData"]["bytesTransferredOut"] = value
    norm = Normaliser()
    batch = norm.dicts([rec])
    assert norm.stats.rejected == 0 and int(batch.bytes[0]) == expected


@pytest.mark.parametrize("mutate, reason", [
    (lambda r: r["additionalEventData"].update(bytesTransferredOut=-1), "bytesTransferredOut"),
    (lambda r: r["additionalEventData"].update(bytesTransferredOut="lots"),
     "bytesTransferredOut"),
    (lambda r: r.update(eventTime="yesterday"), "eventTime"),
    (lambda r: r.pop("userIdentity"), "userIdentity missing"),
    (lambda r: r["requestParameters"].pop("key"), "key missing"),
    (lambda r: r.update(eventTime=12), "wrong type: eventTime"),
    (lambda r: r.update(userIdentity="root"), "wrong type: userIdentity"),
])
def test_malformed_records_are_counted_by_reason_and_never_stop_the_rest(mutate,
                                                                          reason) -> None:
    bad = _one()
    mutate(bad)
    norm = Normaliser()
    batch = norm.dicts([_one(), bad, _one()])
    assert len(batch) == 2 and norm.stats.rejected == 1
    assert any(reason in r for r in norm.stats.reasons), norm.stats.reasons
    with pytest.raises(MalformedEventError):
        Normaliser(strict=True).dicts([_one(), copy.deepcopy(bad)])


def test_every_read_and_probe_path_is_an_event() -> None:
    raw = W.bucket("raw")
    records = [
        _one("GetObject"), _one("HeadObject"), _one("ListObjectsV2", key=None),
        _one("SelectObjectContent"),
        _one("CopyObject", copy_from=f"{raw}/raw/c02/s0002.wav"),
        _one("GetObject", error="AccessDenied"),
        _one("GetObject", auth="QueryString", agent="curl/8.5.0", ip="203.0.113.9"),
    ]
    # a KMS call that releases no key material is not an event the detector reads
    records.append({**_one(), "eventSource": "kms.amazonaws.com", "eventName": "DescribeKey"})
    norm = Normaliser()
    batch = norm.dicts(records)
    assert [KINDS[k] for k in batch.kind] == ["get", "head", "list", "select", "copy", "get",
                                              "get"]
    assert list(batch.kind[:5]) == [GET, HEAD, LIST, SELECT, COPY]
    assert batch.denied.tolist() == [False] * 5 + [True, False]
    assert batch.auth[-1] == 1 and batch.auth[0] == 0
    assert norm.stats.ignored == 1
    # a copy is a read of its source object
    assert batch.obj[4] == hash(f"{raw}/raw/c02/s0002.wav")


def test_a_copy_to_another_accounts_bucket_is_marked_foreign() -> None:
    raw = W.bucket("raw")
    mine = _one("CopyObject", copy_from=f"{raw}/raw/c01/s0001.wav")
    theirs = _one("CopyObject", copy_from=f"/{raw}/raw/c01/s0001.wav?versionId=3",
                  dest_owner="999988887777")
    norm = Normaliser()
    batch = norm.dicts([mine, theirs])
    assert batch.foreign.tolist() == [False, True]
    assert batch.obj[0] == batch.obj[1]


def test_source_attributes() -> None:
    assert network_of("10.1.2.3", "vpce-1") == "vpce:vpce-1"
    assert network_of("203.0.113.9", None) == "ip:203.0"  # the /16
    assert network_of("2001:db8:1:2::1", None) == "ip6:2001:db8:1"
    assert network_of("s3.amazonaws.com", None) == "aws"
    assert agent_family("[Boto3/1.35.36 md/Botocore#1.35.36]") == "boto3"
    assert agent_family("curl/8.5.0") == "curl"
    assert agent_family("aws-cli/2.17.0 md/awscrt") == "aws-cli"
    assert agent_family(None) == "none"


def _reference_time(value: str) -> int | None:
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None or moment.timestamp() < 0:
        return None
    return int(moment.timestamp() * 1000)


@settings(max_examples=300, deadline=None)
@given(st.datetimes(min_value=dt.datetime(1960, 1, 1), max_value=dt.datetime(2200, 1, 1)),
       st.sampled_from(["%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%M:%S"]),
       st.integers(0, 19), st.sampled_from(["", "x", "9", "²", "60", ":"]))
def test_event_time_parsing_matches_the_standard_library(moment, fmt, at, junk) -> None:
    value = moment.strftime(fmt)
    assert parse_time_ms(value) == _reference_time(value)
    damaged = value[:at] + junk + value[at + len(junk):]
    assert parse_time_ms(damaged) == _reference_time(damaged)


def _varied() -> list[dict]:
    """Records of every shape the normaliser meets: each identity type, read and probe path,
    source, a KMS release, and the malformed ones, in runs and interleaved."""
    raw = W.bucket("raw")
    alice, role = iam_user(W.account, "alice"), assumed_role(W.account, "training", "epoch-1")
    records = []
    for i in range(6):
        who = alice if i % 2 else role
        records += [
            _one(identity=who, key=f"raw/c0{i}/s000{i}.wav", out_bytes=1000 + i),
            _one(identity=who, key=f"raw/c0{i}/s000{i}.wav", out_bytes=float(i)),
            _one("HeadObject", identity=who, key="flat.wav"),
            _one("ListObjectsV2", identity=who, key=None, auth=None),
            _one(identity=who, key="a/b/c/d.wav", error="AccessDenied", vpce="vpce-1"),
            _one(identity=who, agent="curl/8.5.0", ip="2001:db8:1:2::1", auth="QueryString"),
            _one("CopyObject", identity=who, copy_from=f"/{raw}/raw/c01/s1.wav?versionId=3",
                 dest_owner="999988887777"),
            {**_one(identity=who), "eventSource": "kms.amazonaws.com", "eventName": "Decrypt",
             "resources": [{"ARN": f"arn:aws:kms:{W.region}:{W.account}:key/k1"}]},
            {**_one(identity=who), "eventName": "DescribeInstances"},
        ]
    bad = [lambda r: r.pop("userIdentity"), lambda r: r["requestParameters"].pop("key"),
           lambda r: r["requestParameters"].pop("bucketName"),
           lambda r: r.update(eventTime="2026-02-30T10:00:00Z"),
           lambda r: r.update(eventTime="2026-01-12T24:00:00Z"),
           lambda r: r["additionalEventData"].update(bytesTransferredOut=-5),
           lambda r: r["requestParameters"].update(versionId="v1"),
           lambda r: r["requestParameters"].update(bucketName="ap-1-s3alias"),
           lambda r: r.pop("eventName")]
    for i, mutate in enumerate(bad):
        record = copy.deepcopy(records[i * 3])
        mutate(record)
        records.insert(i * 5, record)
    return records


@pytest.mark.parametrize("times", ["canonical", "mixed"])
def test_the_fast_path_gives_what_the_record_by_record_rules_give(times) -> None:
    records = _varied()
    if times == "mixed":  # one time in another form: the batch's times are parsed one by one
        records[1]["eventTime"] = records[1]["eventTime"].replace("Z", ".250Z")
    fast, slow = Normaliser(), Normaliser()
    slow._fast = False
    for part in (records[:30], records[30:], records):
        a, b = fast.dicts(part), slow.dicts(part)
        for name in ("time_ms", "principal", "session", "kind", "denied", "bytes", "bucket",
                     "obj", "prefix", "dest", "foreign", "network", "agent", "auth",
                     "versioned"):
            assert getattr(a, name).dtype == getattr(b, name).dtype
            assert getattr(a, name).tolist() == getattr(b, name).tolist(), name
    assert fast.stats == slow.stats and fast.vocab == slow.vocab
    # each record is normalised twice (in its part, then in the whole): 7 of the 9 damaged
    # ones rejected (a named version and an access-point alias are fine), 6 not S3 reads
    assert fast.stats.rejected == 2 * 7 and fast.stats.ignored == 2 * 6
    assert set(fast.stats.reasons) >= {"userIdentity missing", "eventName missing",
                                       "eventTime missing or not an ISO-8601 UTC time"}


def test_a_batch_of_times_is_parsed_as_each_time_alone() -> None:
    from securepipe.audit.events import parse_times_ms

    values = ["2026-01-12T10:00:00Z", "2024-02-29T23:59:59Z", "2026-02-29T10:00:00Z",
              "2026-01-12T10:60:00Z", "1969-12-31T23:59:59Z", "1970-01-01T00:00:00Z",
              "2026-13-01T00:00:00Z", "2026-01-12 10:00:00Z", "2026-W02-1T10:00:00Z",
              "2026-01-12T1a:00:00Z", "2026-01-00T10:00:00Z", "9999-12-31T23:59:59Z"]
    expected = [-1 if parse_time_ms(v) is None else parse_time_ms(v) for v in values]
    assert parse_times_ms(values).tolist() == expected
    assert expected[0] > 0 and expected[2] == -1 and expected[5] == 0
    assert parse_times_ms([*values, None, "2026-01-12T10:00:00.5Z"]).tolist() == [*expected, -1,
                                                                             expected[0] + 500]
