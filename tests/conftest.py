from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from securepipe.sandbox.account import Sandbox

ROOT = Path(__file__).resolve().parents[1]
# Tests live in folders that mirror the package; shared helpers (speaker_world, id_strategies)
# sit beside this file.
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """A fresh in-process sandbox account, closed after the test."""
    with Sandbox() as sb:
        yield sb
