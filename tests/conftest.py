from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from securepipe.sandbox.account import Sandbox

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """A fresh in-process sandbox account, closed after the test."""
    with Sandbox() as sb:
        yield sb
