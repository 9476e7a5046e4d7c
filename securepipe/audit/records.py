"""Structured audit records: one JSON line per access, which no field value can break or forge.

The common pattern logs accesses with ``logger.info("...", extra={...})`` to a plain file. Two
things go wrong: Python's default :class:`logging.Formatter` ignores ``extra=`` fields, so the
who/what/why never reaches the file; and a value containing a newline (an object key, a purpose
string a contractor typed) can start a second, forged line.

:class:`JsonAuditFormatter` fixes both. It renders every record as exactly one line of JSON made
with ``json.dumps(..., ensure_ascii=True)``: newlines, control characters, quotes, non-ASCII and
JSON fragments in any field come out escaped inside their string, so ``"}\\n{"forged":true`` stays
a harmless string. The fields come from ``extra=`` (or an :class:`AuditRecord` passed as
``extra={"audit": record}``) and are validated against :data:`AUDIT_FIELDS`: unknown fields, any
bytes payload (sample contents) and values of the wrong type are dropped, never logged; strings
that look like credentials (access key ids, ``password=...``, PEM private keys) are redacted.

What this does not give: tamper evidence. A JSON file can still be edited after the fact;
:mod:`securepipe.audit.chain` chains and MACs the records and ships them under S3 Object Lock.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, TextIO

from securepipe.errors import InvalidParameterError

Outcome = Literal["allowed", "denied", "error"]

#: The fields an audit record may carry, and the type each must have.
AUDIT_FIELDS: Mapping[str, type] = {
    # who
    "principal": str,
    "session": str,
    "source_identity": str,
    # what
    "action": str,
    "bucket": str,
    "key": str,
    "version_id": str,
    "bytes": int,
    # whose data (ids only, never content)
    "contractor": str,
    "sample_id": str,
    "speaker": str,
    # why
    "purpose": str,
    # when (ISO-8601 UTC; a datetime is converted)
    "when": str,
    # correlation and result
    "request_id": str,
    "outcome": str,
    "reason": str,
}
OUTCOMES: frozenset[str] = frozenset({"allowed", "denied", "error"})
#: Longest string value kept; longer values are cut and marked.
MAX_FIELD_CHARS = 1024
_TRUNCATED = "...[truncated]"
REDACTED = "[redacted]"

# Credential-looking text inside otherwise legitimate values (and in the message).
_SECRET_PATTERNS = (
    re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA)[A-Z0-9]{16}(?![A-Z0-9])"),  # access key ids
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)",
               re.DOTALL),
)
# A secret access key: 40 base64 characters mixing cases and digits. Not applied to object keys
# and bucket names, where long path-like runs are normal.
_SECRET_KEY = re.compile(
    r"(?<![A-Za-z0-9/+=])(?=[A-Za-z0-9/+]*[a-z])(?=[A-Za-z0-9/+]*[A-Z])(?=[A-Za-z0-9/+]*[0-9])"
    r"[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"
)
_PATH_FIELDS = frozenset({"key", "bucket", "version_id"})
_SECRET_ASSIGNMENT = re.compile(
    r"(?i)\b(password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|session[_-]?token|"
    r"authorization|private[_-]?key|credentials?)(\s*[=:]\s*)(\"[^\"]*\"|'[^']*'|\S+)"
)

# Attributes every LogRecord has: anything else on a record came from ``extra=``.
_STANDARD_ATTRS = frozenset(
    logging.LogRecord("", logging.INFO, "", 0, "", (), None).__dict__
) | {"message", "asctime", "taskName"}


def redact(text: str, *, path: bool = False) -> str:
    """Replace credential-looking substrings (key ids, ``token=...``, PEM keys) by ``[redacted]``.

    ``path=True`` (object keys, bucket names) skips the 40-character secret-key pattern.
    """
    for pattern in _SECRET_PATTERNS if path else (*_SECRET_PATTERNS, _SECRET_KEY):
        text = pattern.sub(REDACTED, text)
    return _SECRET_ASSIGNMENT.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)


def utc_iso(value: dt.datetime | float) -> str:
    """ISO-8601 UTC with milliseconds and a ``Z`` (naive datetimes are taken as UTC)."""
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    else:
        moment = dt.datetime.fromtimestamp(float(value), tz=dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{moment.microsecond // 1000:03d}Z")


@dataclass(frozen=True)
class AuditRecord:
    """Who accessed what, why, when, and with which result (never the data itself).

    Log it with ``logger.info("s3 read", extra={"audit": record})`` or
    ``extra=record.as_extra()``; :class:`JsonAuditFormatter` renders it.
    """

    principal: str
    action: str
    bucket: str | None = None
    key: str | None = None
    bytes: int | None = None
    purpose: str | None = None
    session: str | None = None
    source_identity: str | None = None
    when: str | None = None
    request_id: str | None = None
    outcome: Outcome = "allowed"

    def as_extra(self) -> dict[str, Any]:
        """The record's non-empty fields, ready for ``logger.info(..., extra=...)``."""
        return {k: v for k, v in asdict(self).items() if v is not None}


def validate_fields(fields: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
    """Keep the allowed, well-typed fields of ``fields``; return them and how many were dropped.

    Dropped: names not in :data:`AUDIT_FIELDS` (so ``password=``, ``token=``, ``body=`` never
    reach the log), bytes-like values, wrong types, negative byte counts, unknown outcomes,
    timestamps that do not parse. Kept strings are redacted and cut to :data:`MAX_FIELD_CHARS`.
    """
    kept: dict[str, Any] = {}
    dropped = 0
    for name, value in fields.items():
        if value is None:
            continue  # an absent value is not a dropped field
        clean = _clean(name, value)
        if clean is None:
            dropped += 1
        else:
            kept[name] = clean
    return kept, dropped


def _clean(name: Any, value: Any) -> Any:
    expected = AUDIT_FIELDS.get(name) if isinstance(name, str) else None
    if expected is None or value is None:
        return None
    if isinstance(value, bytes | bytearray | memoryview):
        return None  # never log payloads
    if name == "when":
        return _clean_when(value)
    if expected is int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return None
        return int(value)
    if not isinstance(value, str):
        return None
    if name == "outcome" and value not in OUTCOMES:
        return None
    text = redact(value, path=name in _PATH_FIELDS)
    if len(text) > MAX_FIELD_CHARS:
        text = text[: MAX_FIELD_CHARS - len(_TRUNCATED)] + _TRUNCATED
    return text


def _clean_when(value: Any) -> str | None:
    if isinstance(value, dt.datetime):
        return utc_iso(value)
    if not isinstance(value, str) or len(value) > 40:
        return None
    try:
        return utc_iso(dt.datetime.fromisoformat(value))
    except ValueError:
        return None


class JsonAuditFormatter(logging.Formatter):
    """Render each log record as exactly one line of ASCII JSON with validated audit fields.

    Output keys: ``when`` (the record's ``when`` field, else the time it was logged, ISO-8601
    UTC), ``level``, ``logger``, ``message`` (redacted), every allowed field present, and
    ``dropped_fields`` (a count, never the names or values) when something was dropped.
    Exceptions contribute their type name only: tracebacks can carry data.
    """

    def audit_fields(self, record: logging.LogRecord) -> dict[str, Any]:
        """The validated fields of ``record`` as a dict (what :meth:`format` serialises)."""
        raw: dict[str, Any] = {}
        dropped = 0
        for name, value in record.__dict__.items():
            if name in _STANDARD_ATTRS:
                continue
            if name == "audit":
                if isinstance(value, AuditRecord):
                    raw.update(value.as_extra())
                else:
                    dropped += 1
                continue
            raw[name] = value
        fields, more = validate_fields(raw)
        dropped += more
        out: dict[str, Any] = {
            "when": fields.pop("when", None) or utc_iso(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": _message(record),
            **fields,
        }
        if record.exc_info and record.exc_info[0] is not None:
            out["exc_type"] = record.exc_info[0].__name__
        if dropped:
            out["dropped_fields"] = dropped
        return out

    def format(self, record: logging.LogRecord) -> str:
        return canonical_json(self.audit_fields(record))


def _message(record: logging.LogRecord) -> str:
    try:
        text = record.getMessage()
    except Exception:  # bad %-args must not lose the audit record
        text = str(record.msg)
    text = redact(text)
    if len(text) > MAX_FIELD_CHARS:
        text = text[: MAX_FIELD_CHARS - len(_TRUNCATED)] + _TRUNCATED
    return text


def canonical_json(value: Any) -> str:
    """One-line canonical JSON: sorted keys, no spaces, ASCII only (``\\n`` and friends escaped)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False)


_KIT_HANDLER = "_securepipe_audit_handler"


def audit_logger(
    name: str,
    stream: TextIO | None = None,
    *,
    handler: logging.Handler | None = None,
    level: int = logging.INFO,
) -> logging.Logger:
    """A logger that writes :class:`JsonAuditFormatter` lines to ``stream`` or ``handler``.

    Idempotent: calling it again for the same name replaces the handler it added before (other
    handlers are left alone). The logger does not propagate, so audit lines never also go
    through the root logger's (default, field-dropping) formatter.
    """
    if not isinstance(name, str) or not name:
        raise InvalidParameterError("audit_logger needs a logger name")
    if (stream is None) == (handler is None):
        raise InvalidParameterError("pass exactly one of stream= or handler=")
    logger = logging.getLogger(name)
    for old in [h for h in logger.handlers if getattr(h, _KIT_HANDLER, False)]:
        logger.removeHandler(old)
    chosen = handler if handler is not None else logging.StreamHandler(stream)
    chosen.setFormatter(JsonAuditFormatter())
    setattr(chosen, _KIT_HANDLER, True)
    logger.addHandler(chosen)
    logger.setLevel(level)
    logger.propagate = False
    return logger


def log_access(
    logger: logging.Logger, record: AuditRecord, message: str = "data access"
) -> None:
    """Log one :class:`AuditRecord` (``denied``/``error`` at WARNING, else INFO)."""
    level = logging.INFO if record.outcome == "allowed" else logging.WARNING
    logger.log(level, message, extra={"audit": record})
