"""The kit's one clock: moved by the sandbox, read by every time-dependent default."""

from __future__ import annotations

import datetime as dt

import pytest

from securepipe import clock
from securepipe.errors import InvalidParameterError


@pytest.fixture(autouse=True)
def _reset():
    clock.reset()
    yield
    clock.reset()


def test_now_is_aware_utc_and_moves() -> None:
    start = clock.now()
    assert start.tzinfo is not None and start.utcoffset() == dt.timedelta(0)
    moved = clock.move(dt.timedelta(days=400))
    assert moved - start >= dt.timedelta(days=400)
    clock.reset()
    assert abs(clock.now() - dt.datetime.now(dt.UTC)) < dt.timedelta(seconds=5)


def test_set_to_reads_that_moment() -> None:
    target = dt.datetime(2099, 6, 30, 12, tzinfo=dt.UTC)
    clock.set_to(target)
    assert abs(clock.now() - target) < dt.timedelta(seconds=5)
    with pytest.raises(InvalidParameterError):
        clock.set_to(dt.datetime(2099, 6, 30))


def test_the_sandbox_moves_the_kit_clock() -> None:
    from securepipe.sandbox import Sandbox

    with Sandbox() as sb:
        sb.move_clock(dt.timedelta(days=1))
        assert clock.now() > dt.datetime.now(dt.UTC) + dt.timedelta(hours=23)
    assert abs(clock.now() - dt.datetime.now(dt.UTC)) < dt.timedelta(seconds=5)
