"""The POP's layers depend downwards only: the origin layer (pop/origin) knows nothing of
client streams, sessions, routing or HTTP (it gets an ``OriginStream`` handle), the
engines' base knows no engine, and no server module uses the development tools."""

from __future__ import annotations

import ast
from pathlib import Path

POP = Path(__file__).resolve().parents[1] / "pop"
ABOVE_THE_ORIGIN = ("pop.streams", "pop.session", "pop.routing", "pop.service", "pop.http")


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_the_origin_layer_imports_nothing_above_it() -> None:
    modules = sorted((POP / "origin").glob("*.py"))
    assert len(modules) >= 3, modules
    for module in modules:
        above = {name for name in _imports(module) if name.startswith(ABOVE_THE_ORIGIN)}
        assert not above, f"{module.name} imports {sorted(above)}"


def test_the_engine_base_imports_no_engine() -> None:
    """The engines import the base; the base importing them back was a cycle."""
    imported = _imports(POP / "engines" / "base.py")
    assert not {name for name in imported if name.startswith("pop.engines")}, imported


def test_only_the_command_line_reaches_the_development_tools() -> None:
    """pop.devtools starts processes for the demo, tests and benchmarks; a server module
    importing it would be reaching for test machinery."""
    modules = [m for m in POP.rglob("*.py") if "devtools" not in m.parts and m.name != "cli.py"]
    assert len(modules) >= 30, modules
    for module in modules:
        reached = {name for name in _imports(module) if name.startswith("pop.devtools")}
        assert not reached, f"{module.relative_to(POP)} imports {sorted(reached)}"
