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


PLATFORM = REPO / "platform" / "sweettok_platform"
# folders that compose the features (the CLI) or hold data, not features
NOT_FEATURES = {"core", "commands", "bundles", "__pycache__"}


def platform_imports(path) -> list[str]:
    """The ``sweettok_platform`` modules a file imports (anywhere in its body, relative imports resolved)."""
    rel = path.relative_to(PLATFORM.parent).with_suffix("").parts
    here = list(rel[:-1])
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(here[: len(here) - node.level + 1] + ([base] if base else []))
            out += [f"{base}.{a.name}" for a in node.names] if base == "sweettok_platform" else [base]
    return [m for m in out if m.startswith("sweettok_platform.")]


def test_feature_folders_import_only_core_and_sweettok():
    features = {p.name for p in PLATFORM.iterdir() if p.is_dir() and p.name not in NOT_FEATURES}
    assert {"tokenize", "train", "ar", "eval", "serve", "reconstruct"} <= features
    sideways = []
    for feature in sorted(features):
        for path in sorted((PLATFORM / feature).rglob("*.py")):
            for module in platform_imports(path):
                target = module.split(".")[1]
                if target != feature and target != "core":
                    sideways.append(f"{path.relative_to(PLATFORM)} imports {module}")
    assert sideways == []


def test_core_imports_no_feature_and_no_top_level_module():
    upward = [f"{path.relative_to(PLATFORM)} imports {module}"
              for path in sorted((PLATFORM / "core").rglob("*.py")) for module in platform_imports(path)
              if module.split(".")[1] != "core"]
    assert upward == []


def test_platform_tests_mirror_the_source_tree():
    """Each folder of ``tests/platform`` is a folder of the package, and each test file tests one module, one
    folder (``test_<folder>_*.py``) or one end-to-end flow (``tests/platform/*.py`` at the top)."""
    tests = REPO / "tests" / "platform"
    folders = {p.name for p in tests.iterdir() if p.is_dir() and p.name != "__pycache__"}
    package = {p.name for p in PLATFORM.iterdir() if p.is_dir() and p.name not in ("bundles", "__pycache__")}
    assert folders and folders <= package, f"test folders without a package folder: {sorted(folders - package)}"
