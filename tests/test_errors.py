"""The exported errors are exactly the kit's typed errors that its code raises on purpose."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import securepipe
from securepipe import errors

ROOT = Path(securepipe.__file__).parent


def _raised_names() -> set[str]:
    names: set[str] = set()
    for path in ROOT.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise) and node.exc is not None:
                target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
                if isinstance(target, ast.Name):
                    names.add(target.id)
    return names


def _kit_errors() -> set[str]:
    return {name for name, obj in inspect.getmembers(errors, inspect.isclass)
            if issubclass(obj, errors.SecurePipeError)}


def test_exports_match_the_errors_raised() -> None:
    exported = {n for n in securepipe.__all__ if n != "__version__"}
    raised = _raised_names() & _kit_errors()
    assert exported == raised


def test_every_kit_error_is_raised_somewhere() -> None:
    assert _kit_errors() - _raised_names() == set(), "an error class nothing raises"


def test_one_hierarchy() -> None:
    for name in securepipe.__all__:
        if name != "__version__":
            assert issubclass(getattr(securepipe, name), securepipe.SecurePipeError)


@pytest.mark.parametrize("name", sorted(_kit_errors()))
def test_each_error_is_reachable_from_the_top(name: str) -> None:
    assert getattr(securepipe, name) is getattr(errors, name)
