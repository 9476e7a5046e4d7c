"""A sandbox account hardened the kit's way, with the checks' configuration for it: the shared
fixture of the scorecard tests (each test introduces one misconfiguration on top)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from securepipe.checks import CheckConfig, Scorecard, run_checks
from securepipe.checks.scenarios import Scenario, hardened_account
from securepipe.sandbox.account import Sandbox


@dataclasses.dataclass
class Hardened:
    sb: Sandbox
    scenario: Scenario
    config: CheckConfig

    @property
    def session(self) -> Any:
        return self.sb.session

    def bucket(self, role: str) -> str:
        return self.sb.resources.bucket(role)

    def run(self, **kwargs: Any) -> Scorecard:
        return run_checks(self.session, config=kwargs.pop("config", self.config), **kwargs)

    def rediscover(self) -> None:
        self.config = self.scenario.check_config(self.session)


@contextmanager
def hardened_world() -> Iterator[Hardened]:
    with Sandbox() as sb:
        scenario = hardened_account(sb, contractors=("c02", "c03"), pending=1)
        yield Hardened(sb, scenario, scenario.check_config(sb.session))
