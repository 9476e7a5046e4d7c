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


def test_the_environment_sets_the_clock_at_import() -> None:
    import subprocess
    import sys

    code = "from securepipe import clock; print(clock.now().date(), clock.offset().days > 0)"
    env = {**__import__("os").environ, "SECUREPIPE_CLOCK": "2099-06-30"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         check=True).stdout.split()
    assert out == ["2099-06-30", "True"]
    bad = subprocess.run([sys.executable, "-c", "import securepipe.clock"], capture_output=True,
                         env={**env, "SECUREPIPE_CLOCK": "2026-02-30"}, text=True)
    assert bad.returncode != 0 and "InvalidParameterError" in bad.stderr


@pytest.mark.parametrize(("text", "expected"), [
    ("2030-01-01", dt.datetime(2030, 1, 1, tzinfo=dt.UTC)),
    ("2030-01-01T10:00:00+14:00", dt.datetime(2029, 12, 31, 20, tzinfo=dt.UTC)),
])
def test_parse_moment(text: str, expected: dt.datetime) -> None:
    assert clock.parse_moment(text) == expected


@pytest.mark.parametrize("text", ["2030-01-01T10:00:00", "tomorrow", "2030-13-01"])
def test_parse_moment_refuses(text: str) -> None:
    with pytest.raises(InvalidParameterError):
        clock.parse_moment(text)
