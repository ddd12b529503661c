"""Guards on the repository layout (see the `platform` trap in DESIGN.md)."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from conftest import REPO


def test_platform_from_repo_root_is_the_standard_library():
    code = ("import platform, sysconfig, os; "
            "print(os.path.dirname(platform.__file__) == sysconfig.get_paths()['stdlib']); platform.system()")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"
    assert not (REPO / "platform" / "__init__.py").exists()


def test_sweettok_never_imports_ray():
    offenders = []
    for path in (REPO / "sweettok").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.relative_to(REPO)}: {n}" for n in names if n == "ray" or n.startswith("ray.")]
    assert offenders == []


def test_importing_sweettok_loads_no_ray():
    code = "import sys, sweettok, sweettok.bundle; print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def module_imports(package: str) -> dict[str, set[str]]:
    """Every module of ``package`` -> the modules of ``package`` it imports, anywhere in its body
    (imports inside functions count: deferring an import hides a cycle, it does not remove it)."""
    root = REPO / package if (REPO / package).is_dir() else REPO / "platform" / package
    modules = {}
    for path in root.rglob("*.py"):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        modules[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    graph: dict[str, set[str]] = {}
    for name, (path, is_package) in modules.items():
        here = name if is_package else name.rsplit(".", 1)[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = here.split(".")[: len(here.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                # ``from pkg import submodule`` needs the submodule; ``from pkg import name``, the package
                for alias in node.names:
                    targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle of ``graph`` as a list of modules (first == last), or [] when it is acyclic."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def test_find_cycle_finds_a_cycle_hidden_in_a_package():
    assert find_cycle({"a": {"a.b"}, "a.b": {"c"}, "c": {"a"}}) == ["a", "a.b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("package", ["sweettok", "sweettok_platform"])
def test_the_packages_have_no_import_cycle(package):
    graph = module_imports(package)
    assert len(graph) > 20 and sum(map(len, graph.values())) > 40, "the walk found the modules and imports"
    assert find_cycle(graph) == []
