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
    GENESIS,
    SCHEME_HMAC,
    TRAIL_FORMAT,
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
from securepipe.encryption.signing import PublicKeyVerifier, create_signing_key
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


_VERIFIERS: dict[str, PublicKeyVerifier] = {}


def _verifier(sb: Sandbox) -> PublicKeyVerifier:
    """The sandbox signing key's public key, fetched once (kms:GetPublicKey)."""
    arn = sb.resources.signing_key_arn
    if arn not in _VERIFIERS:
        _VERIFIERS[arn] = PublicKeyVerifier.from_kms(sb.session, arn)
    return _VERIFIERS[arn]


@pytest.fixture(scope="module")
def trail_lines(sb: Sandbox) -> list[str]:
    trail = AuditTrail(sb.session, sb.resources.signing_key_arn, "voice-access", checkpoint_every=3)
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
    result = verify_trail(trail_lines, _verifier(sb), name="voice-access",
                          key_arn=sb.resources.signing_key_arn)
    assert result.ok and result.records == 7 and result.checkpoints == 3
    assert verify_trail([line + "\n" for line in trail_lines], _verifier(sb)).ok


def test_header_holds_no_secret_and_names_its_predecessor(trail_lines: list[str]) -> None:
    header = json.loads(trail_lines[0])
    assert set(header) == {"type", "trail", "seq", "prev", "version", "created", "key_arn",
                           "checkpoint_every", "previous", "sig"}
    assert header["version"] == TRAIL_FORMAT and header["previous"] == GENESIS
    assert all("sig" in json.loads(line) for line in trail_lines
               if json.loads(line)["type"] != "record")


@pytest.mark.parametrize("position", range(N_LINES))
def test_every_single_line_edit_is_located(sb: Sandbox, trail_lines: list[str],
                                           position: int) -> None:
    lines = list(trail_lines)
    lines[position] = _edited(lines[position])
    result = verify_trail(lines, _verifier(sb))
    assert not result.ok and result.index == position, result
    raw = list(trail_lines)
    raw[position] = raw[position].replace(":", ": ", 1)  # same JSON, different bytes
    result = verify_trail(raw, _verifier(sb))
    assert not result.ok and result.index == position, result


@pytest.mark.parametrize("position", range(N_LINES))
def test_every_deletion_is_located(sb: Sandbox, trail_lines: list[str], position: int) -> None:
    lines = trail_lines[:position] + trail_lines[position + 1:]
    result = verify_trail(lines, _verifier(sb))
    assert not result.ok and result.index == position, result


@pytest.mark.parametrize("position", range(N_LINES + 1))
def test_every_insertion_is_located(sb: Sandbox, trail_lines: list[str], position: int) -> None:
    forged = [*trail_lines[:position], _forged(trail_lines, position), *trail_lines[position:]]
    result = verify_trail(forged, _verifier(sb))
    assert not result.ok and result.index == position, result
    if position:
        replayed = [*trail_lines[:position], trail_lines[position - 1], *trail_lines[position:]]
        result = verify_trail(replayed, _verifier(sb))
        assert not result.ok and result.index == position, result


@pytest.mark.parametrize("position", range(N_LINES - 1))
def test_every_swap_is_located(sb: Sandbox, trail_lines: list[str], position: int) -> None:
    lines = list(trail_lines)
    lines[position], lines[position + 1] = lines[position + 1], lines[position]
    result = verify_trail(lines, _verifier(sb))
    assert not result.ok and result.index == position, result


@pytest.mark.parametrize(("src", "dst"), [(1, 5), (5, 1), (2, 9), (9, 2), (4, 10), (10, 0)])
def test_moves_are_located(sb: Sandbox, trail_lines: list[str], src: int, dst: int) -> None:
    lines = list(trail_lines)
    lines.insert(dst, lines.pop(src))
    result = verify_trail(lines, _verifier(sb))
    assert not result.ok and result.index == min(src, dst), result


@pytest.mark.parametrize("keep", range(N_LINES))
def test_every_truncation_is_detected(sb: Sandbox, trail_lines: list[str], keep: int) -> None:
    result = verify_trail(trail_lines[:keep], _verifier(sb))
    assert not result.ok and result.index == keep, result


def test_a_header_from_another_trail_does_not_verify(sb: Sandbox, trail_lines: list[str]) -> None:
    other = AuditTrail(sb.session, sb.resources.signing_key_arn, "other-trail").close()
    lines = [other[0], *trail_lines[1:]]                 # another trail's genuine header
    result = verify_trail(lines, _verifier(sb))
    assert not result.ok and result.index == 1
    assert verify_trail(trail_lines, _verifier(sb), name="other-trail").index == 0


def test_another_keys_signature_or_public_key_is_refused(sb: Sandbox,
                                                          trail_lines: list[str]) -> None:
    rogue_arn = create_signing_key(sb.session, description="someone else's key")
    rogue = AuditTrail(sb.session, rogue_arn, "voice-access", checkpoint_every=3)
    for _ in range(7):
        rogue.append(AuditRecord(principal="arn:aws:iam::1:user/a", action="s3:GetObject"))
    forged = rogue.close()
    assert verify_trail(forged, sb.session, key_arn=rogue_arn).ok      # genuine, for its key
    result = verify_trail(forged, _verifier(sb))                        # pinned to ours
    assert not result.ok and result.index == 0 and "another signing key" in result.reason
    header = json.loads(forged[0])
    header["key_arn"] = sb.resources.signing_key_arn                   # claim to be ours
    result = verify_trail([canonical_json(header), *forged[1:]], _verifier(sb))
    assert not result.ok and result.index == 0 and "signature" in result.reason
    # a public key that is not the pinned ARN's: the rogue key's PEM under our ARN
    mislabelled = PublicKeyVerifier.from_pem(
        PublicKeyVerifier.from_kms(sb.session, rogue_arn).pem, sb.resources.signing_key_arn)
    assert verify_trail(trail_lines, mislabelled).index == 0
    with pytest.raises(InvalidParameterError):
        verify_trail(trail_lines, _verifier(sb), key_arn=rogue_arn)
    unpinned = verify_trail(trail_lines, sb.session)                  # no key pinned: refused
    assert not unpinned.ok and "pinned" in unpinned.reason


def _legacy_trail(sb: Sandbox, name: str, records: list[dict[str, str]]) -> list[str]:
    """A format-1 trail as the previous writer made it (HMAC under a KMS data key)."""
    import base64

    context = {"securepipe:trail": name, "securepipe:use": "audit-trail-hmac"}
    out = sb.session.client("kms").generate_data_key(
        KeyId=sb.resources.kms_key_arn, KeySpec="AES_256", EncryptionContext=context)
    return _mac_lines(bytes(out["Plaintext"]), name, records, {
        "type": "header", "trail": name, "seq": 0, "prev": "0" * 64, "version": 1,
        "created": "2026-01-01T00:00:00.000Z", "key_arn": sb.resources.kms_key_arn,
        "data_key": base64.b64encode(out["CiphertextBlob"]).decode(), "context": context,
        "checkpoint_every": 100})


def _mac_lines(key: bytes, name: str, records: list[dict[str, str]],
               header: dict[str, object]) -> list[str]:
    import hashlib as h
    import hmac as m

    def mac(body: dict[str, object]) -> str:
        return m.new(key, canonical_json(body).encode(), h.sha256).hexdigest()

    lines = [canonical_json({**header, "mac": mac(header)})]
    for record in records:
        lines.append(canonical_json({"type": "record", "trail": name, "seq": len(lines),
                                     "prev": h.sha256(lines[-1].encode()).hexdigest(),
                                     "record": record}))
    seal = {"type": "checkpoint", "trail": name, "seq": len(lines),
            "prev": h.sha256(lines[-1].encode()).hexdigest(), "records": len(records),
            "final": True, "time": "2026-01-01T00:00:00.000Z"}
    return [*lines, canonical_json({**seal, "mac": mac(seal)})]


def test_legacy_hmac_trails_verify_read_only_and_are_labelled_weaker(sb: Sandbox) -> None:
    reads = [{"principal": "arn:aws:iam::1:user/c03", "key": f"raw/c0{i % 4}/s{i}"}
             for i in range(30)]
    legacy = _legacy_trail(sb, "legacy", reads)
    result = verify_trail(legacy, sb.session, key_arn=sb.resources.kms_key_arn)
    assert result.ok and result.records == 30 and result.weaker
    assert result.scheme == SCHEME_HMAC == "hmac (verifier can forge)"
    # the weakness, shown: whoever can Decrypt the data key to verify can re-MAC a rewrite
    header = json.loads(legacy[0])
    key = sb.session.client("kms").decrypt(
        CiphertextBlob=__import__("base64").b64decode(header["data_key"]),
        EncryptionContext=header["context"])["Plaintext"]
    kept = [json.loads(line)["record"] for line in legacy[1:-1]][10:]
    rewritten = _mac_lines(key, "legacy", kept, {k: v for k, v in header.items() if k != "mac"})
    forged = verify_trail(rewritten, sb.session, key_arn=sb.resources.kms_key_arn)
    assert forged.ok and forged.records == 20 and forged.weaker       # a forgery "verifies"
    # a public key alone cannot verify the legacy format, and says why
    assert not verify_trail(legacy, _verifier(sb)).ok
    # a new trail is never written in the legacy format
    assert json.loads(AuditTrail(sb.session, sb.resources.signing_key_arn, "new").close()[0])[
        "version"] == TRAIL_FORMAT
    assert not verify_trail(AuditTrail(sb.session, sb.resources.signing_key_arn, "n").close(),
                            _verifier(sb)).weaker


def test_closed_trail_refuses_appends(sb: Sandbox) -> None:
    trail = AuditTrail(sb.session, sb.resources.signing_key_arn, "closed")
    trail.close()
    with pytest.raises(SecurePipeError):
        trail.append({"principal": "p"})
    with pytest.raises(InvalidParameterError):
        AuditTrail(sb.session, sb.resources.signing_key_arn, "x", checkpoint_every=0)


def test_logging_into_the_trail(sb: Sandbox) -> None:
    sink = io.StringIO()
    trail = AuditTrail(sb.session, sb.resources.signing_key_arn, "via-logging", checkpoint_every=2,
                       sink=sink)
    logger = audit_logger("trail-logger", handler=TrailHandler(trail))
    logger.info("read", extra={"principal": "arn:aws:iam::1:user/a", "key": INJECTIONS[0],
                               "password": "hunter2"})
    log_access(logger, AuditRecord(principal="arn:aws:iam::1:user/b", action="s3:GetObject"))
    lines = trail.close()
    assert sink.getvalue().splitlines() == lines
    assert verify_trail(lines, _verifier(sb)).ok
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
    assert back == trail_lines and verify_trail(back, _verifier(sb)).ok
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
        trail = AuditTrail(sandbox.session, sandbox.resources.signing_key_arn, "append-checks")
        trail.append(AuditRecord(principal="p", action="s3:GetObject",
                                 when=dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)))
        trail.append({"principal": "p", "action": "s3:GetObject", "password": "hunter2"})
        lines = trail.close()
        records = [json.loads(line)["record"] for line in lines
                   if json.loads(line)["type"] == "record"]
        assert records[0]["when"].startswith("2026-11-26T12:00:00")
        assert "password" not in records[1] and records[1]["dropped_fields"] == 1
        assert "hunter2" not in "\n".join(lines)
        assert verify_trail(lines, sandbox.session,
                            key_arn=sandbox.resources.signing_key_arn).ok
