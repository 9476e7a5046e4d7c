"""pyproject.toml and environment.yml must list the same dependencies."""

from __future__ import annotations

import tomllib

import yaml
from conftest import ROOT
from packaging.requirements import Requirement


def _normalise(spec: str) -> tuple[str, frozenset[str], str]:
    req = Requirement(spec)
    return req.name.lower().replace("_", "-"), frozenset(req.extras), str(req.specifier)


def test_environment_yml_mirrors_pyproject() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = {_normalise(s) for s in project["dependencies"]}
    wanted |= {_normalise(s) for group in project["optional-dependencies"].values() for s in group}

    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = [_normalise(s) for s in pip_section]

    assert len(listed) == len(set(listed)), "duplicate entry in environment.yml"
    assert set(listed) == wanted
    assert "python=3.11" in env["dependencies"]
