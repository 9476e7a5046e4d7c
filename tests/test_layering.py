"""The package's layering: each subpackage imports only from layers below it, and the
subpackages form no cycle. A reader who knows the five steps finds each one's code by its path."""

from __future__ import annotations

import ast
from pathlib import Path

import securepipe

ROOT = Path(securepipe.__file__).parent

#: Lower numbers sit lower; a unit may import only units in strictly lower layers.
LAYERS: dict[str, int] = {
    "errors": 0,
    "ids": 1, "clock": 1, "policy": 1, "report": 1, "merge": 1, "clients": 1,
    "data": 2, "sandbox": 2,
    "encryption": 3, "access": 3,
    "audit": 4, "retention": 4,
    "features": 5, "provision": 5,
    "lessons": 6,
    "checks": 7,
    "exercises": 8,
    "cli": 9,
    "__main__": 10,
}


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "securepipe":
                out |= {f"securepipe.{a.name}" for a in node.names}
            elif node.module.startswith("securepipe."):
                out.add(node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("securepipe.")}
    return out


def _edges() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        module = ".".join(("securepipe", *path.relative_to(ROOT).with_suffix("").parts))
        module = module.removesuffix(".__init__")
        here = _unit(module)
        for target in _imports(path):
            there = _unit(target)
            if there != here and there != "__init__":
                edges.setdefault(here, set()).add(there)
    return edges


def test_every_unit_has_a_layer() -> None:
    units = {p.stem if p.is_file() else p.name for p in ROOT.iterdir()
             if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists()))}
    units.discard("__init__")
    assert units == set(LAYERS), "add the new module or subpackage to LAYERS"


def test_no_module_imports_a_higher_or_equal_layer() -> None:
    wrong = sorted(f"{a} (layer {LAYERS[a]}) imports {b} (layer {LAYERS[b]})"
                   for a, targets in _edges().items() for b in targets
                   if a != "__init__" and LAYERS[b] >= LAYERS[a])
    assert wrong == []


def test_the_checker_sees_a_violation() -> None:
    """The AST reading finds imports at any depth, including inside functions."""
    source = "def f():\n    from securepipe.checks import run_checks\n"
    tree_imports = {n.module for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ImportFrom)}
    assert tree_imports == {"securepipe.checks"}
    assert _imports(ROOT / "cli.py") & {"securepipe.checks", "securepipe.lessons.notebooks"}


def test_top_level_modules_are_small() -> None:
    """Issue: no top-level module longer than about 600 lines."""
    long = {p.name: n for p in ROOT.glob("*.py") if (n := len(p.read_text().splitlines())) > 600}
    assert long == {}


def test_no_private_name_is_imported_across_modules() -> None:
    offenders = []
    for path in [*ROOT.rglob("*.py"), *(ROOT.parent / "tests").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.ImportFrom) and node.module
                    and node.module.startswith("securepipe")):
                offenders += [f"{path.name}: {node.module}.{a.name}" for a in node.names
                              if a.name.startswith("_") and not a.name.startswith("__")]
    assert offenders == []
