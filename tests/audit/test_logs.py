"""Reading CloudTrail log files from S3 (and the sandbox's stand-in for their delivery)."""

from __future__ import annotations

import datetime as dt
import gzip
import json

import msgspec
import pytest

from securepipe.access.credentials import session_with_credentials
from securepipe.audit.detector import Baseline, Detector
from securepipe.audit.events import LogFile, Normaliser
from securepipe.audit.logs import (
    MAX_LOG_BYTES,
    TrailStream,
    days_spanned,
    deliver_log_files,
    gunzip_into,
    gunzip_log,
    log_file_key,
    parse_log_file,
    read_log_files,
)
from securepipe.audit.traffic import TrafficConfig, baseline_traffic
from securepipe.errors import InvalidParameterError, LogFileError, MalformedEventError
from securepipe.sandbox.account import Sandbox
from securepipe.sandbox.cloudtrail import CloudTrailRecorder


def _fresh(sb: Sandbox):  # a session made now, so an installed recorder hooks it
    creds = sb.session.get_credentials()
    return session_with_credentials(sb.session, creds.access_key, creds.secret_key)


def _recorded_reads(sb: Sandbox, n: int) -> list[dict]:
    raw = sb.resources.bucket("raw")
    admin = sb.session.client("s3")
    for i in range(n):
        admin.put_object(Bucket=raw, Key=f"raw/c01/s{i:03d}", Body=b"voice")
    with CloudTrailRecorder() as recorder:
        reader = _fresh(sb).client("s3")
        for i in range(n):
            reader.get_object(Bucket=raw, Key=f"raw/c01/s{i:03d}")["Body"].read()
            sb.move_clock(dt.timedelta(minutes=1))
    return recorder.events


def test_key_follows_cloudtrail_naming() -> None:
    key = log_file_key("123456789012", "eu-west-1", dt.datetime(2026, 3, 4, 5, 6, tzinfo=dt.UTC),
                       prefix="/cloudtrail/", unique="abc")
    assert key == ("cloudtrail/AWSLogs/123456789012/CloudTrail/eu-west-1/2026/03/04/"
                   "123456789012_CloudTrail_eu-west-1_20260304T0506Z_abc.json.gz")
    for bad in ({"account_id": "12345"}, {"account_id": "../../etc"}, {"region": "eu/west"}):
        with pytest.raises(InvalidParameterError):
            log_file_key(**{"account_id": "123456789012", "region": "eu-west-1",
                            "delivered": dt.datetime(2026, 1, 1, tzinfo=dt.UTC), **bad})


def test_delivered_files_read_back_record_for_record() -> None:
    with Sandbox() as sb:
        events = _recorded_reads(sb, 12)           # twelve minutes: three delivery intervals
        audit = sb.resources.bucket("audit")
        keys = deliver_log_files(sb.session, audit, events, prefix="cloudtrail",
                                 kms_key_arn=sb.resources.kms_key_arn)
        assert 3 <= len(keys) <= 4
        first, last = days_spanned(events)
        read = read_log_files(sb.session, audit, account_id=sb.account_id, region=sb.region,
                              start=first - dt.timedelta(days=1),
                              end=last + dt.timedelta(days=1), prefix="cloudtrail")
        assert sorted(read.files) == sorted(keys) and not read.unreadable
        by_id = {e["eventID"]: e for e in events}
        assert len(read.records) == len(events)
        assert all(by_id[r["eventID"]] == r for r in read.records)
        head = sb.session.client("s3").head_object(Bucket=audit, Key=keys[0])
        assert head["SSEKMSKeyId"] == sb.resources.kms_key_arn
        # another account's or Region's logs, or other days, are not read
        other = read_log_files(sb.session, audit, account_id="999999999999", region=sb.region,
                               start=first, end=last, prefix="cloudtrail")
        assert other.records == [] and other.files == []


def test_a_burst_read_from_log_files_is_detected() -> None:
    with Sandbox() as sb:
        cfg = TrafficConfig(account_id=sb.account_id, region=sb.region)
        baseline = Baseline.fit(baseline_traffic(cfg).columns)
        raw = sb.resources.bucket("raw")
        admin = sb.session.client("s3")
        for i in range(60):
            admin.put_object(Bucket=raw, Key=f"raw/c02/s{i:03d}", Body=b"voice")
        with CloudTrailRecorder() as recorder:
            thief = _fresh(sb).client("s3")     # the admin: a principal the baseline never saw
            for i in range(60):
                thief.get_object(Bucket=raw, Key=f"raw/c02/s{i:03d}")["Body"].read()
        audit = sb.resources.bucket("audit")
        deliver_log_files(sb.session, audit, recorder.events)
        first, last = days_spanned(recorder.events)
        read = read_log_files(sb.session, audit, account_id=sb.account_id, region=sb.region,
                              start=first, end=last)
        assert len(read.records) == len(recorder.events)
        found = Detector(baseline).detect_events(read.records)
        assert {a.rule for a in found.alerts} >= {"new-principal"}
        assert {a.principal for a in found.alerts} == {recorder.events[0]["userIdentity"]["arn"]}


def _gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)   # no timestamp: the same bytes in every test worker


@pytest.mark.parametrize(("body", "reason"), [
    pytest.param(b"", "truncated", id="empty"),
    pytest.param(b"not gzip at all", "not a gzip file", id="not-gzip"),
    pytest.param(_gz(b"{not json"), "not JSON", id="not-json"),
    pytest.param(_gz(b"\xff\xfe"), "not JSON", id="not-utf8"),
    pytest.param(_gz(b'{"records": []}'), "no Records", id="lowercase-records"),
    pytest.param(_gz(b'{"Records": {"a": 1}}'), "no Records", id="records-not-a-list"),
    pytest.param(_gz(b'{"Records": [1, 2]}'), "no Records", id="records-not-events"),
    pytest.param(_gz(b'[{"Records": []}]'), "no Records", id="top-level-list"),
    pytest.param(_gz(b'{"Records": []}')[:-6], "truncated", id="truncated"),
    pytest.param(_gz(b'{"Records": []}') + b"junk", "after the gzip stream", id="trailing-junk"),
    pytest.param(_gz(b'{"Records": []}') * 2, "after the gzip stream", id="two-members"),
])
def test_unreadable_files_are_named_never_skipped(body: bytes, reason: str) -> None:
    with pytest.raises(MalformedEventError, match=reason):
        parse_log_file(body)
    with Sandbox() as sb:
        audit = sb.resources.bucket("audit")
        today = dt.date(2026, 5, 1)
        bad = log_file_key(sb.account_id, sb.region, dt.datetime(2026, 5, 1, 10, tzinfo=dt.UTC))
        good = log_file_key(sb.account_id, sb.region, dt.datetime(2026, 5, 1, 11, tzinfo=dt.UTC))
        s3 = sb.session.client("s3")
        s3.put_object(Bucket=audit, Key=bad, Body=body)
        s3.put_object(Bucket=audit, Key=good, Body=gzip.compress(json.dumps(
            {"Records": [{"eventName": "GetObject"}]}).encode()))
        args = {"account_id": sb.account_id, "region": sb.region, "start": today, "end": today}
        with pytest.raises(MalformedEventError, match=bad.rsplit("/", 1)[-1]):
            read_log_files(sb.session, audit, **args)
        lenient = read_log_files(sb.session, audit, strict=False, **args)
        assert [k for k, _ in lenient.unreadable] == [bad]
        assert lenient.files == [good] and len(lenient.records) == 1


def test_the_last_minutes_of_a_day_are_read_from_the_next_days_folder() -> None:
    with Sandbox() as sb:
        late = {"eventTime": "2026-05-01T23:58:30Z", "recipientAccountId": sb.account_id,
                "awsRegion": sb.region, "eventName": "GetObject", "eventID": "late"}
        early = {**late, "eventTime": "2026-05-02T00:01:00Z", "eventID": "early"}
        audit = sb.resources.bucket("audit")
        keys = deliver_log_files(sb.session, audit, [late, early])
        assert all("/2026/05/02/" in k for k in keys)          # both delivered after midnight
        args = {"account_id": sb.account_id, "region": sb.region}
        first = read_log_files(sb.session, audit, start=dt.date(2026, 5, 1),
                               end=dt.date(2026, 5, 1), **args)
        second = read_log_files(sb.session, audit, start=dt.date(2026, 5, 2),
                                end=dt.date(2026, 5, 2), **args)
        assert [r["eventID"] for r in first.records] == ["late"]
        assert [r["eventID"] for r in second.records] == ["early"]


def test_an_oversized_file_is_refused_before_it_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from securepipe.audit import logs as cloudtrail_logs

    monkeypatch.setattr(cloudtrail_logs, "MAX_LOG_BYTES", 64 * 1024)
    with Sandbox() as sb:
        audit = sb.resources.bucket("audit")
        key = log_file_key(sb.account_id, sb.region, dt.datetime(2026, 5, 1, 10, tzinfo=dt.UTC))
        sb.session.client("s3").put_object(Bucket=audit, Key=key, Body=os.urandom(100_000))
        with pytest.raises(MalformedEventError, match=r"ContentLength is over 65536 bytes$"):
            read_log_files(sb.session, audit, account_id=sb.account_id, region=sb.region,
                           start=dt.date(2026, 5, 1), end=dt.date(2026, 5, 1))


def test_a_decompression_bomb_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from securepipe.audit import logs as cloudtrail_logs

    assert MAX_LOG_BYTES == 256 * 1024 * 1024
    monkeypatch.setattr(cloudtrail_logs, "MAX_LOG_BYTES", 1024 * 1024)   # same code, less RAM
    bomb = gzip.compress(b"\0" * (4 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 8 * 1024
    with pytest.raises(MalformedEventError, match="larger than"):
        parse_log_file(bomb)
    just_fits = gzip.compress(json.dumps({"Records": [{"pad": "x" * 1000}] * 1000}).encode())
    assert len(parse_log_file(just_fits)) == 1000


def test_bad_arguments_are_refused() -> None:
    with Sandbox() as sb:
        audit = sb.resources.bucket("audit")
        day = dt.date(2026, 1, 2)
        base = {"account_id": sb.account_id, "region": sb.region}
        with pytest.raises(InvalidParameterError):
            read_log_files(sb.session, audit, start=day, end=day - dt.timedelta(days=1), **base)
        with pytest.raises(InvalidParameterError):
            read_log_files(sb.session, audit, start=day, end=day + dt.timedelta(days=400),
                           **base)
        with pytest.raises(InvalidParameterError):
            read_log_files(sb.session, "Bad Bucket", start=day, end=day, **base)
        with pytest.raises(MalformedEventError):
            deliver_log_files(sb.session, audit, [{"eventName": "GetObject"}])


def test_log_file_errors_survive_a_process_boundary() -> None:
    import pickle

    error = pickle.loads(pickle.dumps(LogFileError("AWSLogs/x.json.gz", "not JSON")))
    assert isinstance(error, LogFileError) and isinstance(error, MalformedEventError)
    assert (error.key, error.reason, str(error)) == ("AWSLogs/x.json.gz", "not JSON",
                                                     "AWSLogs/x.json.gz: not JSON")


def test_days_spanned_reads_event_times_as_the_detector_does() -> None:
    events = [{"eventTime": "2026-05-02T00:00:01+00:00"}, {"eventTime": "2026-04-30T23:59:59Z"},
              {"eventTime": "garbage"}, {}]
    assert days_spanned(events) == (dt.date(2026, 4, 30), dt.date(2026, 5, 2))
    with pytest.raises(InvalidParameterError):
        days_spanned([{"eventTime": "garbage"}])


_BODIES = [b"", b"not gzip at all", _gz(b'{"Records": []}')[:-6], _gz(b'{"Records": []}') + b"junk",
           _gz(b'{"Records": []}') * 2, _gz(b"{not json"), _gz(b"x" * 300_000),
           gzip.compress(b"\0" * (2 * 1024 * 1024), compresslevel=9)]


def _outcome(inflate, body: bytes) -> bytes | str:
    try:
        return bytes(inflate(body))
    except MalformedEventError as exc:
        return str(exc)


def test_inflating_into_the_reused_buffer_checks_what_gunzip_log_checks(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from securepipe.audit import logs as cloudtrail_logs

    monkeypatch.setattr(cloudtrail_logs, "MAX_LOG_BYTES", 1024 * 1024)
    buffer = bytearray()

    def into(body: bytes) -> bytes:
        return bytes(buffer[: gunzip_into(body, "f.json.gz", buffer)])

    outcomes = [_outcome(into, b) for b in _BODIES]
    assert outcomes == [_outcome(lambda b: gunzip_log(b, "f.json.gz"), b) for b in _BODIES]
    assert "larger than" in str(outcomes[-1]) and outcomes[-2] == b"x" * 300_000
    assert len(buffer) >= 300_000  # kept for the next file


def test_a_file_still_referenced_is_never_overwritten_by_the_next() -> None:
    kept = []

    class Keeping(Normaliser):
        def log_file(self, data, name=None):  # type: ignore[no-untyped-def]
            if name == "first":  # raw JSON that points into the buffer, kept past the call
                kept.append(msgspec.json.decode(data, type=LogFile))
            return super().log_file(data, name)

    stream = TrailStream(Keeping())
    first = _gz(json.dumps({"Records": [{"eventName": "GetObject", "userIdentity": {
        "type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/alice"}}]}).encode())
    held = stream._buffer
    stream.normalise(first, "first")
    assert stream._buffer is not held  # the first file's bytes are left to what holds them
    stream.normalise(_gz(json.dumps({"Records": [{"eventName": "PutObject"}] * 50}).encode()),
                     "second")
    assert bytes(kept[0].Records[0].userIdentity).startswith(b'{"type": "IAMUser"')
    before = stream._buffer
    stream.normalise(first, "third")  # nothing held from the second file: its buffer is reused
    assert stream._buffer is before
