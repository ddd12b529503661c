"""One way to log: ``sweettok <component>: message`` lines on stderr, levels from SWEETTOK_LOG_LEVEL."""

from __future__ import annotations

import os
import subprocess
import sys

CODE = """
from sweettok_platform.core.log import get_logger
log = get_logger("train")
log.info("step 1/2")
log.warning("checkpoint fails verification")
print("stdout stays clean")
"""


def run(level: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SWEETTOK_LOG_LEVEL"}
    if level:
        env["SWEETTOK_LOG_LEVEL"] = level
    return subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, env=env, check=True)


def test_progress_is_info_and_problems_name_their_level():
    out = run(None)
    assert out.stderr.splitlines() == ["sweettok train: step 1/2", "sweettok train: warning: checkpoint fails verification"]
    assert out.stdout == "stdout stays clean\n"


def test_the_level_comes_from_the_environment():
    assert run("warning").stderr.splitlines() == ["sweettok train: warning: checkpoint fails verification"]
