"""The layering rule of DESIGN.md: core imports no module; modules meet only via service.py."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "src" / "touchstone"
ENTRY_POINTS = {"cli"}
"""Like `main.py`, they put the modules together, so they may use any of their parts."""
MODULES = {
    p.name
    for p in PACKAGE.iterdir()
    if p.is_dir() and p.name not in {"core", "__pycache__", *ENTRY_POINTS}
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {n for n in names if n.startswith("touchstone.")}


def test_core_imports_no_module() -> None:
    for path in (PACKAGE / "core").rglob("*.py"):
        offending = {n for n in _imports(path) if n.split(".")[1] in MODULES}
        assert not offending, f"{path.name} imports {offending}"


def test_modules_use_each_other_only_through_service() -> None:
    for module in MODULES:
        for path in (PACKAGE / module).rglob("*.py"):
            for name in _imports(path):
                parts = name.split(".")
                other = parts[1]
                if other in MODULES and other != module:
                    assert parts[2:3] == ["service"], f"{path} imports {name}"


FRAMEWORKS = {"fastapi", "starlette", "sqlalchemy", "psycopg", "psycopg_pool", "pydantic"}
INTERNAL_MODULES = {"psycopg.generators", "psycopg.waiting", "psycopg.pq.abc"}
"""psycopg's undocumented plumbing: public names, private contracts."""


def test_no_private_framework_api() -> None:
    """DESIGN.md: no private API of the frameworks (a `_name` or an internal module), so an
    upgrade breaks an import or a test, never the behaviour silently."""
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom) or not node.module:
                continue
            if node.module.split(".")[0] not in FRAMEWORKS:
                continue
            private = {a.name for a in node.names if a.name.startswith("_")}
            if node.module in INTERNAL_MODULES or any(
                part.startswith("_") for part in node.module.split(".")
            ):
                private.add(node.module)
            assert not private, f"{path} imports {private} from {node.module}"
