"""Guards on the repository layout (see the `platform` trap in DESIGN.md)."""

from __future__ import annotations

import ast
import subprocess
import sys

from conftest import REPO


def test_platform_from_repo_root_is_the_standard_library():
    code = "import platform, sysconfig, os; print(os.path.dirname(platform.__file__) == sysconfig.get_paths()['stdlib']); platform.system()"
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
