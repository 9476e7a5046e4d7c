"""The kit's one clock: every time-dependent function takes its default "now" from here.

On a real account it is UTC wall time. The sandbox moves it (:func:`move`) so lessons and tests
can show an expired session, a retention date passing, or a lesson run years ahead; nothing else
should move it. Functions that need time accept a ``clock`` callable and default to :func:`now`,
as pyca/cryptography passes time in rather than reading it.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable

from securepipe.errors import InvalidParameterError

#: A source of the current time; always timezone-aware UTC.
Clock = Callable[[], dt.datetime]

_offset = dt.timedelta(0)
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
    """Put the clock back to real time."""
    global _offset
    with _lock:
        _offset = dt.timedelta(0)


def offset() -> dt.timedelta:
    """How far the clock currently is from real time."""
    return _offset
