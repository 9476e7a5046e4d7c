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


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--aws-profile", default=None,
                     help="AWS profile for the opt-in real-account run (-m aws)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "aws: runs against a real AWS account (opt-in: "
                            "-m aws --aws-profile PROFILE; costs a few cents)")
