"""Static rules on migration files: `upgrade()` never drops a table or a column."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

VERSIONS = sorted((Path(__file__).resolve().parents[2] / "migrations" / "versions").glob("*.py"))
FORBIDDEN = {"drop_table", "drop_column"}


def _calls_in(func: ast.FunctionDef) -> set[str]:
    names = set()
    for node in ast.walk(func):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            names.add(node.func.attr)
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            text = node.value.upper()
            if "DROP TABLE" in text or "DROP COLUMN" in text:
                names.add("raw DROP")
    return names


def test_there_are_revisions() -> None:
    assert VERSIONS


@pytest.mark.parametrize("path", VERSIONS, ids=lambda p: p.name)
def test_upgrade_never_drops(path: Path) -> None:
    tree = ast.parse(path.read_text())
    funcs = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef)}
    assert "upgrade" in funcs and "downgrade" in funcs
    reachable = {"upgrade"}
    # Follow module-level helpers called from upgrade() (e.g. _security()).
    for node in ast.walk(funcs["upgrade"]):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in funcs:
            reachable.add(node.func.id)
    for name in reachable:
        bad = _calls_in(funcs[name]) & (FORBIDDEN | {"raw DROP"})
        assert not bad, f"{path.name}:{name}() drops: {bad}"
