"""Identifier rules (securepipe.ids) and their use by the envelope's contexts."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from id_strategies import REFERENCE, hostile_ids, valid_ids

from securepipe.encryption.envelope import BatchContext, SampleContext
from securepipe.errors import InvalidParameterError, SecurePipeError
from securepipe.ids import (
    CONTRACTOR_ID,
    CONTRACTOR_ID_MAX,
    describe_value,
    validate_bucket_name,
    validate_contractor_id,
    validate_kms_key_arn,
    validate_purpose,
    validate_sample_id,
)

FAST = settings(deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


@settings(FAST, max_examples=500)
@given(valid_ids)
@example("c1")
@example("0")
@example("a" * CONTRACTOR_ID_MAX)
@example("acme-voice-")
def test_valid_contractor_ids_are_accepted(value: str) -> None:
    assert validate_contractor_id(value) == value
    assert len(f"contractor-{value}") <= 64  # fits RoleSessionName


@settings(FAST, max_examples=2000)
@given(hostile_ids)
@example("a" * (CONTRACTOR_ID_MAX + 1))
@example("\u04411")  # Cyrillic es
@example("c1\n")
@example("c1\x00")
@example("*")
def test_hostile_contractor_ids_are_refused(value: object) -> None:
    assert not (isinstance(value, str) and REFERENCE.fullmatch(value))
    with pytest.raises(InvalidParameterError) as caught:
        validate_contractor_id(value)
    message = str(caught.value)
    assert isinstance(caught.value, SecurePipeError)
    # The message never carries control characters (or anything unbounded) raw.
    assert message.isprintable()
    assert len(message) < 80


def test_the_pattern_is_ascii_only_and_capped_at_32() -> None:
    assert CONTRACTOR_ID.pattern == "[a-z0-9][a-z0-9-]{0,31}"
    for lookalike in ("\u0441", "\u212a", "\u017f", "\u0131", "\uff41", "\u0661"):
        with pytest.raises(InvalidParameterError):
            validate_contractor_id(f"a{lookalike}")


def test_describe_value_escapes_and_truncates() -> None:
    assert describe_value("c1\n\x00") == repr("c1\n\x00")
    long = describe_value("x" * 5000)
    assert len(long) == 40 and long.endswith("...")
    assert describe_value("\x1b[31mred").isprintable()


@settings(FAST, max_examples=300)
@given(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", fullmatch=True))
def test_sample_ids(value: str) -> None:
    if ".." in value:
        with pytest.raises(InvalidParameterError):
            validate_sample_id(value)
    else:
        assert validate_sample_id(value) == value


@pytest.mark.parametrize("value", ["", ".hidden", "a..b", "a/b", "clip 1", "clip*", "x" * 129,
                                   "cl\u0456p", "clip\n", None, 7, "-"])
def test_invalid_sample_ids(value: object) -> None:
    with pytest.raises(InvalidParameterError):
        validate_sample_id(value)


def test_sample_id_kind_names_the_field() -> None:
    with pytest.raises(InvalidParameterError, match="batch_id"):
        validate_sample_id("a..b", kind="batch_id")


@pytest.mark.parametrize("value", ["asr", "speaker-verification", "a" * 63])
def test_valid_purposes(value: str) -> None:
    assert validate_purpose(value) == value


@pytest.mark.parametrize("value", ["", "ASR", "asr training", "-asr", "a" * 64, "\u0430sr", None])
def test_invalid_purposes(value: object) -> None:
    with pytest.raises(InvalidParameterError):
        validate_purpose(value)


def test_bucket_and_key_arn_rules() -> None:
    assert validate_bucket_name("securepipe-raw-210000000001-eu-west-1")
    arn = "arn:aws:kms:eu-west-1:210000000001:key/01234567-89ab-cdef-0123-456789abcdef"
    assert validate_kms_key_arn(arn) == arn
    for bad in ("", "ab", "Bucket", "a..b", "a*b", "a" * 64, "bucket/"):
        with pytest.raises(InvalidParameterError):
            validate_bucket_name(bad)
    for bad in ("alias/x", "arn:aws:kms:eu-west-1:210000000001:alias/x", arn + "*", arn[:-1]):
        with pytest.raises(InvalidParameterError):
            validate_kms_key_arn(bad)


def test_envelope_contexts_use_the_shared_rules() -> None:
    SampleContext("a" * 32, "s1", "asr")
    BatchContext("a" * 32, "b1", "asr")
    for ctx in (SampleContext, BatchContext):
        with pytest.raises(InvalidParameterError):
            ctx("a" * 33, "s1", "asr")  # the contractor cap is now 32 (was 63)
        with pytest.raises(InvalidParameterError):
            ctx("\u04411", "s1", "asr")  # Cyrillic look-alike
        with pytest.raises(InvalidParameterError):
            ctx("c1", "s..1", "asr")
        with pytest.raises(InvalidParameterError):
            ctx("c1", "s1", "ASR")


MALFORMED_KEY_ARNS = [
    "arn:aws:kms:eu-west-1:123:key/not-a-key",
    "arn:aws:kms:eu-west-1:123456789012:key/not-a-key",
    "arn:aws:kms:eu-west-1:123456789012:alias/securepipe-data",
    "arn:aws:s3:::bucket/key/0000",
    "",
]


@pytest.mark.parametrize("arn", MALFORMED_KEY_ARNS)
def test_one_validator_refuses_a_malformed_key_arn_everywhere(arn: str) -> None:
    """Every entry point that takes a KMS key ARN refuses the same malformed ones, before any
    AWS call (the session is a stub that would fail if called)."""
    from securepipe.encryption.envelope import EnvelopeConfig
    from securepipe.encryption.hardening import hardened_bucket_policy, sse_kms_put_args
    from securepipe.encryption.signing import KmsSigner

    with pytest.raises(InvalidParameterError):
        validate_kms_key_arn(arn)
    with pytest.raises(InvalidParameterError):
        sse_kms_put_args(arn)
    with pytest.raises(InvalidParameterError):
        hardened_bucket_policy("securepipe-raw-123456789012-eu-west-1", arn)
    with pytest.raises(InvalidParameterError):
        EnvelopeConfig(key_arns=arn)
    with pytest.raises(InvalidParameterError):
        KmsSigner(object(), arn)  # type: ignore[arg-type]
