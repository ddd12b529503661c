"""``sweettok serve`` stopped with SIGTERM (kill, systemd, Kubernetes) exits cleanly and leaves no Ray process
of the cluster it started behind."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import psutil


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sigterm_stops_the_endpoint_and_its_ray_cluster():
    import tempfile
    from pathlib import Path

    temp = Path(tempfile.mkdtemp(prefix="st-", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    env = {**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, "RAY_TMPDIR": str(temp)}
    proc = subprocess.Popen([sys.executable, "-m", "sweettok_platform.cli", "serve", "--preset", "tiny", "--port",
                             str(_free_port())], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        deadline, seen = time.monotonic() + 240, []
        while "ready in" not in (line := proc.stdout.readline()):
            seen.append(line)
            assert line and time.monotonic() < deadline, "the endpoint did not start: " + "".join(seen[-20:])

        def cluster() -> list[psutil.Process]:
            return [p for p in psutil.process_iter(["cmdline"]) if str(temp) in " ".join(p.info["cmdline"] or [])]

        assert cluster(), "no Ray process found under the cluster's temp dir"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0
        deadline = time.monotonic() + 30
        while (left := cluster()) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert left == [], [" ".join(p.cmdline()[:3]) for p in left]
    finally:
        if proc.poll() is None:
            proc.kill()
