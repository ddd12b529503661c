"""Every name a benchmark imports from the project exists (their imports sit inside ``main()``, so a renamed
function would otherwise surface only when someone runs ``make bench``)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("script", sorted((REPO / "benchmarks").glob("*.py")), ids=lambda p: p.name)
def test_project_imports_of_benchmarks_resolve(script: Path) -> None:
    tree = ast.parse(script.read_text())
    trees = [tree]
    for node in ast.walk(tree):  # code a benchmark runs in a child process, kept as a string
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and "import" in node.value:
            try:
                trees.append(ast.parse(node.value))
            except SyntaxError:  # a template with format fields, or prose
                pass
    checked = 0
    for node in (n for t in trees for n in ast.walk(t)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ("sweettok",
                                                                                                "sweettok_platform"):
            module = importlib.import_module(node.module)
            for alias in node.names:
                assert hasattr(module, alias.name) or importlib.util.find_spec(f"{node.module}.{alias.name}"), (
                    f"{script.name}: from {node.module} import {alias.name}")
                checked += 1
    assert checked, f"{script.name} imports nothing from the project"
