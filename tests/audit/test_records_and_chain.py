"""Structured audit records and the tamper-evident trail (securepipe.audit.records,
securepipe.audit.chain).

Every refusal asserted for Object Lock is moto's own; the trail checks are the kit's code.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
from collections.abc import Iterator

import pytest
from botocore.exceptions import ClientError

from securepipe.audit.chain import (
    AuditTrail,
    TrailHandler,
    read_shipped,
    ship_to_bucket,
    ship_to_cloudwatch_logs,
    verify_trail,
)
from securepipe.audit.records import (
    AUDIT_FIELDS,
    AuditRecord,
    JsonAuditFormatter,
    audit_logger,
    canonical_json,
    log_access,
)
from securepipe.errors import InvalidParameterError, SecurePipeError
from securepipe.sandbox.account import Sandbox

INJECTIONS = [
    'x"}\n{"forged":true',
    "line1\nline2\r\nline3",
    '"}\n{"forged":true}',
    "\x00\x07\x1b[31mred\x1b[0m\x7f",
    "a\u2028b\u2029c\u0085d",
    '{"principal":"arn:aws:iam::1:root","outcome":"allowed"}',
    "caf\u00e9 \U0001f600",
]
STRING_FIELDS = [name for name, kind in AUDIT_FIELDS.items() if kind is str
                 and name not in ("when", "outcome")]


def _format(message: str = "access", **extra: object) -> str:
    record = logging.LogRecord("audit", logging.INFO, __file__, 1, message, (), None)
    record.__dict__.update(extra)
    return JsonAuditFormatter().format(record)


# -- one record per line ---------------------------------------------------------------------


def test_default_formatter_drops_extra_fields_the_kit_keeps_them() -> None:
    record = logging.LogRecord("audit", logging.INFO, __file__, 1, "read", (), None)
    record.__dict__.update(principal="arn:aws:iam::1:user/a", key="raw/c01/s1.wav")
    assert "raw/c01/s1.wav" not in logging.Formatter().format(record)  # the common pattern
    out = json.loads(JsonAuditFormatter().format(record))
    assert out["principal"] == "arn:aws:iam::1:user/a" and out["key"] == "raw/c01/s1.wav"


@pytest.mark.parametrize("payload", INJECTIONS, ids=range(len(INJECTIONS)))
@pytest.mark.parametrize("field", [*STRING_FIELDS, "message"])
def test_injection_in_any_field_yields_exactly_one_record(field: str, payload: str) -> None:
    stream = io.StringIO()
    logger = audit_logger(f"inject-{field}", stream)
    extra = {"principal": "arn:aws:iam::1:user/a", "action": "s3:GetObject"}
    if field == "message":
        logger.info(payload, extra=extra)
    else:
        logger.info("read", extra={**extra, field: payload})
    text = stream.getvalue()
    assert text.endswith("\n") and text.count("\n") == 1 and "\r" not in text
    assert text.isascii()
    record = json.loads(text)
    assert record[field] == payload  # carried intact, escaped, inside its own string
    assert "forged" not in record
    if field not in extra:
        assert record["principal"] == "arn:aws:iam::1:user/a"


def test_lines_are_canonical_json() -> None:
    line = _format(principal="p", key="k", bytes=12)
    assert line == canonical_json(json.loads(line))


def test_secrets_and_payloads_are_never_emitted() -> None:
    secrets = ["hunter2", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "AKIAIOSFODNN7EXAMPLE",
               "FQoGZXIvYXdzEXAMPLETOKEN", "RIFFsamplebytes", "MIIEvQIBADANBgkq"]
    line = _format(
        "login password=hunter2 with AKIAIOSFODNN7EXAMPLE",
        principal="arn:aws:iam::1:user/a",
        password="hunter2",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        token="FQoGZXIvYXdzEXAMPLETOKEN",
        session_token="FQoGZXIvYXdzEXAMPLETOKEN",
        body=b"RIFFsamplebytes",
        samples=[0.1, 0.2],
        bytes=b"RIFFsamplebytes",
        purpose="training; -----BEGIN PRIVATE KEY-----MIIEvQIBADANBgkq-----END PRIVATE KEY-----",
        session="secret=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    )
    for secret in secrets:
        assert secret not in line, secret
    out = json.loads(line)
    assert out["dropped_fields"] == 7  # password, secret key, 2 tokens, body, samples, bytes
    assert "[redacted]" in out["message"] and "[redacted]" in out["purpose"]
    assert set(out) <= {*AUDIT_FIELDS, "level", "logger", "message", "dropped_fields"}


def test_values_are_type_checked() -> None:
    out = json.loads(_format(principal=123, bytes=-1, outcome="pwned", when="yesterday",
                             key="raw/c01/s1.wav"))
    assert "principal" not in out and "bytes" not in out and "outcome" not in out
    assert out["dropped_fields"] == 4
    assert out["when"].endswith("Z")  # fell back to the time of logging
    assert json.loads(_format(bytes=True))["dropped_fields"] == 1
    when = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)
    assert json.loads(_format(when=when))["when"] == "2026-01-05T12:00:00.000Z"
    long = json.loads(_format(purpose="x" * 5000))["purpose"]
    assert len(long) == 1024 and long.endswith("[truncated]")


def test_object_keys_are_not_mistaken_for_secrets() -> None:
    key = "raw/contractor0001/abcdefghijABCDEFGHIJ0123456789xyz"
    assert json.loads(_format(key=key))["key"] == key


def test_audit_record_and_log_access() -> None:
    stream = io.StringIO()
    logger = audit_logger("records", stream)
    audit_logger("records", stream)  # idempotent: still one kit handler
    assert len(logger.handlers) == 1
    log_access(logger, AuditRecord(principal="arn:aws:iam::1:user/a", action="s3:GetObject",
                                   bucket="b", key="raw/c01/s1.wav", bytes=96044,
                                   purpose="training", outcome="denied"))
    out = json.loads(stream.getvalue())
    assert out["level"] == "WARNING" and out["outcome"] == "denied" and out["bytes"] == 96044
    with pytest.raises(InvalidParameterError):
        audit_logger("x")


# -- the chained trail -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with Sandbox() as box:
        yield box


@pytest.fixture(scope="module")
def trail_lines(sb: Sandbox) -> list[str]:
    trail = AuditTrail(sb.session, sb.resources.kms_key_arn, "voice-access", checkpoint_every=3)
    for i in range(7):
        trail.append(AuditRecord(principal="arn:aws:iam::1:user/a", action="s3:GetObject",
                                 bucket="b", key=f"raw/c01/s{i}.wav", bytes=1000 + i))
    return trail.close()


N_LINES = 11  # header, 7 records, checkpoints after records 3 and 6, final checkpoint


def _forged(lines: list[str], position: int) -> str:
    import hashlib

    prev = hashlib.sha256(lines[position - 1].encode()).hexdigest() if position else "0" * 64
    return canonical_json({"type": "record", "trail": "voice-access", "seq": position,
                           "prev": prev, "record": {"principal": "arn:aws:iam::1:user/evil"}})


def _edited(line: str) -> str:
    obj = json.loads(line)
    if obj["type"] == "record":
        obj["record"]["key"] = "raw/c02/other.wav"
    elif obj["type"] == "header":
        obj["created"] = "2000-01-01T00:00:00.000Z"
    else:
        obj["records"] += 1
    return canonical_json(obj)


def test_intact_trail_verifies(sb: Sandbox, trail_lines: list[str]) -> None:
    assert len(trail_lines) == N_LINES
    result = verify_trail(trail_lines, sb.session, name="voice-access",
                          key_arn=sb.resources.kms_key_arn)
    assert result.ok and result.records == 7 and result.checkpoints == 3
    assert verify_trail([line + "\n" for line in trail_lines], sb.session).ok


def test_header_keeps_only_the_encrypted_data_key(sb: Sandbox, trail_lines: list[str]) -> None:
    header = json.loads(trail_lines[0])
    assert set(header) >= {"data_key", "key_arn", "context"}
    assert header["context"]["securepipe:trail"] == "voice-access"
    assert "Plaintext" not in trail_lines[0] and "plaintext" not in trail_lines[0]


@pytest.mark.parametrize("position", range(N_LINES))
def test_every_single_line_edit_is_located(sb: Sandbox, trail_lines: list[str],
                                           position: int) -> None:
    lines = list(trail_lines)
    lines[position] = _edited(lines[position])
    result = verify_trail(lines, sb.session)
    assert not result.ok and result.index == position, result
    raw = list(trail_lines)
    raw[position] = raw[position].replace(":", ": ", 1)  # same JSON, different bytes
    result = verify_trail(raw, sb.session)
    assert not result.ok and result.index == position, result


@pytest.mark.parametrize("position", range(N_LINES))
def test_every_deletion_is_located(sb: Sandbox, trail_lines: list[str], position: int) -> None:
    lines = trail_lines[:position] + trail_lines[position + 1:]
    result = verify_trail(lines, sb.session)
    assert not result.ok and result.index == position, result


@pytest.mark.parametrize("position", range(N_LINES + 1))
def test_every_insertion_is_located(sb: Sandbox, trail_lines: list[str], position: int) -> None:
    forged = [*trail_lines[:position], _forged(trail_lines, position), *trail_lines[position:]]
    result = verify_trail(forged, sb.session)
    assert not result.ok and result.index == position, result
    if position:
        replayed = [*trail_lines[:position], trail_lines[position - 1], *trail_lines[position:]]
        result = verify_trail(replayed, sb.session)
        assert not result.ok and result.index == position, result


@pytest.mark.parametrize("position", range(N_LINES - 1))
def test_every_swap_is_located(sb: Sandbox, trail_lines: list[str], position: int) -> None:
    lines = list(trail_lines)
    lines[position], lines[position + 1] = lines[position + 1], lines[position]
    result = verify_trail(lines, sb.session)
    assert not result.ok and result.index == position, result


@pytest.mark.parametrize(("src", "dst"), [(1, 5), (5, 1), (2, 9), (9, 2), (4, 10), (10, 0)])
def test_moves_are_located(sb: Sandbox, trail_lines: list[str], src: int, dst: int) -> None:
    lines = list(trail_lines)
    lines.insert(dst, lines.pop(src))
    result = verify_trail(lines, sb.session)
    assert not result.ok and result.index == min(src, dst), result


@pytest.mark.parametrize("keep", range(N_LINES))
def test_every_truncation_is_detected(sb: Sandbox, trail_lines: list[str], keep: int) -> None:
    result = verify_trail(trail_lines[:keep], sb.session)
    assert not result.ok and result.index == keep, result


def test_a_header_from_another_trail_does_not_verify(sb: Sandbox, trail_lines: list[str]) -> None:
    other = AuditTrail(sb.session, sb.resources.kms_key_arn, "other-trail").close()
    header = json.loads(trail_lines[0])
    header["data_key"] = json.loads(other[0])["data_key"]  # another trail's encrypted key
    lines = [canonical_json(header), *trail_lines[1:]]
    result = verify_trail(lines, sb.session)
    assert not result.ok and result.index == 0 and "decrypted" in result.reason
    assert verify_trail(trail_lines, sb.session, name="other-trail").index == 0
    pinned = verify_trail(trail_lines, sb.session,
                          key_arn=sb.resources.kms_key_arn.replace("key/", "key/0"))
    assert pinned.index == 0


def test_closed_trail_refuses_appends(sb: Sandbox) -> None:
    trail = AuditTrail(sb.session, sb.resources.kms_key_arn, "closed")
    trail.close()
    with pytest.raises(SecurePipeError):
        trail.append({"principal": "p"})
    with pytest.raises(InvalidParameterError):
        AuditTrail(sb.session, sb.resources.kms_key_arn, "x", checkpoint_every=0)


def test_logging_into_the_trail(sb: Sandbox) -> None:
    sink = io.StringIO()
    trail = AuditTrail(sb.session, sb.resources.kms_key_arn, "via-logging", checkpoint_every=2,
                       sink=sink)
    logger = audit_logger("trail-logger", handler=TrailHandler(trail))
    logger.info("read", extra={"principal": "arn:aws:iam::1:user/a", "key": INJECTIONS[0],
                               "password": "hunter2"})
    log_access(logger, AuditRecord(principal="arn:aws:iam::1:user/b", action="s3:GetObject"))
    lines = trail.close()
    assert sink.getvalue().splitlines() == lines
    assert verify_trail(lines, sb.session).ok
    first = json.loads(lines[1])["record"]
    assert first["key"] == INJECTIONS[0] and first["dropped_fields"] == 1
    assert "hunter2" not in "".join(lines)


def test_shipped_trail_is_locked(sb: Sandbox, trail_lines: list[str]) -> None:
    bucket = sb.resources.bucket("audit")
    until = dt.datetime.now(dt.UTC) + dt.timedelta(days=30)
    shipped = ship_to_bucket(sb.session, bucket, "trails/voice-access.jsonl", trail_lines, until)
    s3 = sb.session.client("s3")
    head = s3.head_object(Bucket=bucket, Key=shipped.key, VersionId=shipped.version_id)
    assert head["ObjectLockMode"] == "COMPLIANCE"
    with pytest.raises(ClientError) as refused:  # moto's own Object Lock refusal
        s3.delete_object(Bucket=bucket, Key=shipped.key, VersionId=shipped.version_id)
    assert refused.value.response["Error"]["Code"] == "AccessDenied"
    with pytest.raises(ClientError):
        s3.delete_object(Bucket=bucket, Key=shipped.key, VersionId=shipped.version_id,
                         BypassGovernanceRetention=True)
    s3.delete_object(Bucket=bucket, Key=shipped.key)  # only adds a delete marker
    back = read_shipped(sb.session, bucket, shipped.key, shipped.version_id)
    assert back == trail_lines and verify_trail(back, sb.session).ok
    with pytest.raises(InvalidParameterError):
        ship_to_bucket(sb.session, bucket, "k", trail_lines, dt.datetime(2000, 1, 1))


def test_ship_to_cloudwatch_logs(sb: Sandbox, trail_lines: list[str]) -> None:
    assert ship_to_cloudwatch_logs(sb.session, "/securepipe/audit", "voice", trail_lines) == 11
    events = sb.session.client("logs").get_log_events(
        logGroupName="/securepipe/audit", logStreamName="voice")["events"]
    assert [e["message"] for e in events] == trail_lines


def test_trail_append_validates_like_the_formatter() -> None:
    import datetime as dt
    import json

    from securepipe.audit.chain import AuditTrail, verify_trail
    from securepipe.audit.records import AuditRecord
    from securepipe.sandbox.account import Sandbox

    with Sandbox() as sandbox:
        trail = AuditTrail(sandbox.session, sandbox.resources.kms_key_arn, "append-checks")
        trail.append(AuditRecord(principal="p", action="s3:GetObject",
                                 when=dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)))
        trail.append({"principal": "p", "action": "s3:GetObject", "password": "hunter2"})
        lines = trail.close()
        records = [json.loads(line)["record"] for line in lines
                   if json.loads(line)["type"] == "record"]
        assert records[0]["when"].startswith("2026-11-26T12:00:00")
        assert "password" not in records[1] and records[1]["dropped_fields"] == 1
        assert "hunter2" not in "\n".join(lines)
        assert verify_trail(lines, sandbox.session).ok
