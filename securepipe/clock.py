"""The kit's one clock: every time-dependent function takes its default "now" from here.

On a real account it is UTC wall time. The sandbox moves it (:func:`move`) so lessons and tests
can show an expired session, a retention date passing, or a lesson run years ahead; nothing else
should move it. Functions that need time accept a ``clock`` callable and default to :func:`now`,
as pyca/cryptography passes time in rather than reading it.

``SECUREPIPE_CLOCK``: if this environment variable holds an ISO date or an aware ISO datetime
when the module is imported, the clock starts there (a date means 00:00 UTC) and runs on in
real time. It is how a test runs a lesson "on" another day: a notebook executes in its own
kernel process, which inherits the environment but not the test process's clock, and an
environment variable reaches every notebook without adding a parameters cell to any of them.
A malformed value raises :class:`~securepipe.errors.InvalidParameterError` at import: a run
never silently falls back to today.
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Callable

from securepipe.errors import InvalidParameterError

#: A source of the current time; always timezone-aware UTC.
Clock = Callable[[], dt.datetime]

_offset = dt.timedelta(0)
_base = dt.timedelta(0)   # where reset() returns: real time, or SECUREPIPE_CLOCK's start
_lock = threading.Lock()


def now() -> dt.datetime:
    """Current UTC time plus whatever :func:`move` added."""
    return dt.datetime.now(dt.UTC) + _offset


def move(delta: dt.timedelta) -> dt.datetime:
    """Move the clock forward (or back) by ``delta``; returns the new time."""
    global _offset
    with _lock:
        _offset += delta
    return now()


def set_to(moment: dt.datetime) -> dt.datetime:
    """Move the clock so that it reads ``moment`` (timezone-aware) now."""
    if moment.tzinfo is None:
        raise InvalidParameterError("moment must be timezone-aware")
    return move(moment - now())


def reset() -> None:
    """Put the clock back to real time (or to where ``SECUREPIPE_CLOCK`` started it)."""
    global _offset
    with _lock:
        _offset = _base


def offset() -> dt.timedelta:
    """How far the clock currently is from real time."""
    return _offset


#: The environment variable that sets the clock at import (see the module docstring).
ENV_VAR = "SECUREPIPE_CLOCK"


def parse_moment(text: str) -> dt.datetime:
    """An ISO date (00:00 UTC) or aware ISO datetime as an aware UTC datetime."""
    try:
        if len(text) == 10:
            return dt.datetime.combine(dt.date.fromisoformat(text), dt.time(0), tzinfo=dt.UTC)
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InvalidParameterError(f"{ENV_VAR}: not an ISO date or datetime: {text!r}") from None
    if moment.tzinfo is None:
        raise InvalidParameterError(f"{ENV_VAR}: a datetime needs a time zone: {text!r}")
    return moment.astimezone(dt.UTC)


def _from_environment() -> None:
    global _base
    value = os.environ.get(ENV_VAR, "").strip()
    if value:
        set_to(parse_moment(value))
        _base = _offset


_from_environment()
