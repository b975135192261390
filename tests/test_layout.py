"""Package boundaries: which top-level package may import which, and module sizes."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "flwr_split": {"strategies", "simulations", "tests"},
    "strategies": {"simulations", "tests"},
}
"""Top-level packages each package must never import (data flows one way)."""
MAX_LINES = 450
MAX_BASE_LINES = 300


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_package_imports_the_packages_above_it(package):
    offenders = {
        str(path.relative_to(ROOT)): sorted(_imported_roots(path) & FORBIDDEN[package])
        for path in _modules(package)
        if _imported_roots(path) & FORBIDDEN[package]
    }
    assert offenders == {}


@pytest.mark.parametrize("package", ["flwr_split", "strategies"])
def test_every_module_is_small_enough_to_read_in_one_sitting(package):
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in _modules(package)}
    assert {name: n for name, n in sizes.items() if n > MAX_LINES} == {}


def test_the_strategy_base_stays_small():
    assert len((ROOT / "strategies" / "base.py").read_text().splitlines()) < MAX_BASE_LINES
