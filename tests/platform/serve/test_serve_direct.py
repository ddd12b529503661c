"""`sweettok serve --direct-ingress`: the ingress replica answers on its own port, past Serve's proxy; and
``sweettok serve`` stopped with SIGTERM (kill, systemd, Kubernetes) exits cleanly and leaves no Ray process of
the cluster it started behind.

Runs the real CLI in a subprocess (it starts its own local Ray cluster with the direct-ingress switch in
its environment, which the session cluster does not have), compares ids over both URLs with the model, then
stops it with SIGTERM (one cluster start for both checks).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import requests
import torch

from sweettok import SweetTokenizer, from_uint8, preset
from sweettok_platform.core.media import ClipSpec, read_clips

from conftest import REPO  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_direct_ingress_url_answers_like_the_proxy_and_sigterm_leaves_no_ray_process(real_video, tmp_path):
    import tempfile

    port = _free_port()
    temp = Path(tempfile.mkdtemp(prefix="st-", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    env = {**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, "RAY_TMPDIR": str(temp)}
    log = tmp_path / "serve.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "sweettok_platform.cli", "serve", "--preset", "tiny",
                                 "--port", str(port), "--direct-ingress"], cwd=REPO, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        urls = None
        while urls is None:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            found = re.search(r"ingress replicas \(direct, no proxy hop\): (\S+)", log.read_text())
            urls = found.group(1) if found else None
            time.sleep(0.5)
        direct, proxy = urls, f"http://127.0.0.1:{port}"
        assert direct != proxy and int(direct.rsplit(":", 1)[1]) != port

        torch.manual_seed(0)
        model = SweetTokenizer(preset("tiny")).eval()
        p = model.config.patch
        clips = read_clips(str(real_video), ClipSpec(frames=p.frames, height=p.height, width=p.width))
        expected = model.encode(from_uint8(torch.from_numpy(np.stack([c.frames for c in clips])))).tolist()
        for url in (direct, proxy):
            r = requests.post(f"{url}/v1/encode", data=real_video.read_bytes(),
                              headers={"Content-Type": "video/mp4"}, timeout=120)
            assert r.status_code == 200, r.text
            assert [c["ids"] for c in r.json()["clips"]] == expected
        bad = requests.post(f"{direct}/v1/encode", data=b"not a video", headers={"Content-Type": "video/mp4"},
                            timeout=60)
        assert bad.status_code == 422 and bad.json()["detail"]
        assert requests.get(f"{direct}/healthz", timeout=30).status_code == 200

        def cluster() -> list[psutil.Process]:
            return [p for p in psutil.process_iter(["cmdline"]) if str(temp) in " ".join(p.info["cmdline"] or [])]

        assert cluster(), "no Ray process found under the cluster's temp dir"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0, log.read_text()[-3000:]
        deadline = time.monotonic() + 30
        while (left := cluster()) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert left == [], [" ".join(p.cmdline()[:3]) for p in left]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
