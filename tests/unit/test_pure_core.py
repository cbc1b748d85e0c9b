"""The pure core stays pure: rules/, contracts/ (but its store) and outcomes/catalog.py import no
framework, database driver or chain client, and read neither the clock nor the environment."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PURE_FILES = sorted(
    [
        *ROOT.glob("rules/*.py"),
        *ROOT.glob("contracts/*.py"),
        ROOT / "outcomes" / "catalog.py",
        ROOT / "outcomes" / "events.py",
    ]
)
ADAPTERS = {ROOT / "contracts" / "store.py"}
FORBIDDEN_MODULES = {
    "flask",
    "sqlalchemy",
    "web3",
    "apscheduler",
    "psycopg",
    "alembic",
    "click",
    "api",
}
FORBIDDEN_CALLS = {
    ("os", "environ"),
    ("os", "getenv"),
    ("datetime", "now"),
    ("date", "today"),
    ("time", "time"),
    ("datetime", "utcnow"),
}


def _imports(tree: ast.AST) -> set[str]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module.split(".")[0])
    return found


def _attribute_uses(tree: ast.AST) -> set[tuple[str, str]]:
    return {
        (node.value.id, node.attr)
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
    }


@pytest.mark.parametrize(
    "path", [p for p in PURE_FILES if p not in ADAPTERS], ids=lambda p: str(p.relative_to(ROOT))
)
def test_a_pure_module_imports_no_framework_and_reads_no_clock_or_environment(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    assert not (_imports(tree) & FORBIDDEN_MODULES), _imports(tree) & FORBIDDEN_MODULES
    assert not (_attribute_uses(tree) & FORBIDDEN_CALLS), _attribute_uses(tree) & FORBIDDEN_CALLS


def test_the_rule_language_never_uses_eval_exec_or_compile():
    for path in ROOT.glob("rules/*.py"):
        tree = ast.parse(path.read_text())
        calls = {
            n.func.id
            for n in ast.walk(tree)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
        }
        assert not calls & {"eval", "exec", "compile", "getattr", "__import__"}, path
