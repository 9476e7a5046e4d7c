"""Identifier rules, in one place: which contractor ids, sample ids and purposes the kit accepts.

Every identifier the kit puts into an object key, an encryption context, an IAM policy or an STS
session name passes through one of these validators first. They are allow-lists (a short ASCII
alphabet and a length cap), never deny-lists: an id that could carry an IAM wildcard (``*``,
``?``), a policy variable (``${aws:username}``), a path step (``/``, ``..``), a quote, whitespace,
a control character or a Unicode look-alike is refused, whatever the caller meant by it.

Why the contractor id is capped at 32 characters: the kit names an STS session
``contractor-<id>``, and ``RoleSessionName`` allows at most 64 characters
(https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html); 32 leaves room for
the prefix and keeps ``SourceIdentity`` and session-tag values far below their limits too.
"""

from __future__ import annotations

import numbers
import re
from typing import Any

from securepipe.errors import InvalidParameterError

__all__ = [
    "BUCKET_NAME",
    "CONTRACTOR_ID",
    "CONTRACTOR_ID_MAX",
    "KMS_ALIAS_ARN",
    "KMS_KEY_ARN",
    "PURPOSE",
    "SAMPLE_ID",
    "SPEAKER_ID",
    "check_int",
    "describe_value",
    "validate_bucket_name",
    "validate_contractor_id",
    "validate_kms_key_arn",
    "validate_purpose",
    "validate_sample_id",
    "validate_speaker_id",
]

#: Longest contractor id: ``contractor-<id>`` must fit the 64-character ``RoleSessionName``.
CONTRACTOR_ID_MAX = 32
#: A contractor: lowercase ASCII letters, digits and hyphens, not starting with a hyphen.
CONTRACTOR_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
#: A sample (or batch) id: ASCII letters, digits, ``_``, ``.``, ``-``; never ``..`` (checked too).
SAMPLE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
#: A speaker (a pseudonymous id such as ``spk01`` or a UUID): ASCII letters, digits, ``_``, ``-``.
#: It goes into DynamoDB keys, KMS encryption contexts and object metadata, so no ``/``, ``.``,
#: ``:``, wildcard, space or quote.
SPEAKER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
#: A purpose the speaker consented to (``asr``, ``speaker-verification``, ...).
PURPOSE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
#: An S3 bucket name (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html).
BUCKET_NAME = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
#: A KMS alias ARN; refused where a key ARN is needed (IAM policies name the key itself).
KMS_ALIAS_ARN = re.compile(r"arn:aws(?:-[a-z]+)*:kms:[a-z0-9-]+:\d{12}:alias/[A-Za-z0-9/_-]+")
#: A KMS key ARN (not an alias: IAM policies name the key itself).
KMS_KEY_ARN = re.compile(
    r"arn:aws(?:-[a-z]+)*:kms:[a-z]{2}(?:-[a-z]+)+-\d{1,2}:\d{12}:"
    r"key/(?:mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
)

_SHOWN = 40  # characters of a rejected value that an error message shows (as its repr)


def describe_value(value: object) -> str:
    """A rejected value for an error message: its ``repr``, cut to about 40 characters.

    ``repr`` escapes newlines, NULs and other control characters, so a hostile id cannot forge
    log lines or terminal escapes through the kit's error messages.
    """
    shown = repr(value)
    return shown if len(shown) <= _SHOWN else shown[: _SHOWN - 3] + "..."


def _check(kind: str, value: object, pattern: re.Pattern[str]) -> str:
    if (
        not isinstance(value, str)
        or not value.isascii()
        or pattern.fullmatch(value) is None
    ):
        raise InvalidParameterError(f"invalid {kind} {describe_value(value)}")
    return value


def validate_contractor_id(value: object) -> str:
    """Return ``value`` if it is a contractor id (``[a-z0-9][a-z0-9-]{0,31}``, ASCII).

    Raises :class:`~securepipe.errors.InvalidParameterError` otherwise.
    """
    return _check("contractor id", value, CONTRACTOR_ID)


def validate_sample_id(value: object, *, kind: str = "sample_id") -> str:
    """Return ``value`` if it is a sample id (``[A-Za-z0-9][A-Za-z0-9_.-]{0,127}``, no ``..``).

    ``kind`` names the field in the error message (the batch id shares these rules).
    """
    checked = _check(kind, value, SAMPLE_ID)
    if ".." in checked:
        raise InvalidParameterError(f"invalid {kind} {describe_value(value)}")
    return checked


def validate_speaker_id(value: object) -> str:
    """Return ``value`` if it is a speaker id (``[A-Za-z0-9][A-Za-z0-9_-]{0,63}``, ASCII).

    Raises :class:`~securepipe.errors.InvalidParameterError` otherwise, before any AWS call.
    """
    return _check("speaker id", value, SPEAKER_ID)


def validate_purpose(value: object) -> str:
    """Return ``value`` if it is a purpose (``[a-z0-9][a-z0-9-]{0,62}``, ASCII)."""
    return _check("purpose", value, PURPOSE)


def validate_bucket_name(value: object) -> str:
    """Return ``value`` if it is a plausible S3 bucket name (3-63 of ``[a-z0-9.-]``)."""
    checked = _check("bucket name", value, BUCKET_NAME)
    if ".." in checked:
        raise InvalidParameterError(f"invalid bucket name {describe_value(value)}")
    return checked


def is_kms_alias_arn(value: object) -> bool:
    """True if ``value`` is a KMS alias ARN (``arn:aws:kms:<region>:<account>:alias/<name>``)."""
    return isinstance(value, str) and KMS_ALIAS_ARN.fullmatch(value) is not None


def validate_kms_key_arn(value: object) -> str:
    """Return ``value`` if it is a KMS key ARN (``arn:aws:kms:<region>:<account>:key/<id>``)."""
    return _check("KMS key ARN", value, KMS_KEY_ARN)


def check_int(value: object, name: str, lo: int, hi: int) -> int:
    """Return ``value`` as an int if it is an integer (not a bool) in ``[lo, hi]``.

    Raises :class:`~securepipe.errors.InvalidParameterError` otherwise.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidParameterError(f"{name} must be an int, got {value!r}")
    if not lo <= int(value) <= hi:
        raise InvalidParameterError(f"{name} must be in [{lo}, {hi}], got {value!r}")
    return int(value)


def check_session(value: object, name: str = "session") -> Any:
    """Return ``value`` if it is a ``boto3.Session``; else :class:`InvalidParameterError`
    (a session factory, a client or a profile name passed by mistake is named as such)."""
    import boto3

    if isinstance(value, boto3.Session):
        return value
    hint = (" (a session factory? call it, or pass the session it returns)" if callable(value)
            else " (a profile name? use boto3.Session(profile_name=...))"
            if isinstance(value, str) else "")
    raise InvalidParameterError(
        f"{name} must be a boto3.Session, got {type(value).__name__}{hint}")


def check_session_factory(value: object, name: str = "session_factory") -> Any:
    """Return ``value`` if it is a callable that makes sessions (not a session itself)."""
    import boto3

    if isinstance(value, boto3.Session):
        raise InvalidParameterError(
            f"{name} must be a callable returning a boto3.Session (e.g. ``lambda: session`` or "
            "ProfileSessionFactory), not a Session itself: a session cannot cross to a worker")
    if not callable(value):
        raise InvalidParameterError(
            f"{name} must be a callable returning a boto3.Session, got {type(value).__name__}")
    return value
