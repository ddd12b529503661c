"""``sweettok_platform.client`` against a real local endpoint (Ray Serve on the session's Ray cluster), and
the endpoint's offline API docs in headless Chromium.

The client's ids and pixels must equal the same model (tiny preset, seed 0) called in this process on the
same clips; refusals carry the server's reason; retries are checked through a real HTTP relay in front of the
endpoint that answers 503 first; mixed tokenizers come from a second app (seed 1) on the same Serve proxy.
"""

from __future__ import annotations

import http.server
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import requests
import torch

from conftest import REPO
from sweettok import SweetTokenizer, from_uint8, to_uint8
from sweettok_platform.client import (Client, RequestRefused, ServiceUnavailable, Tokens, TokenizerMismatch,
                                      Unauthorized)
from sweettok_platform.tokenize.samples import corrupt_file
from sweettok_platform.core.media import ClipSpec, read_clips

KEY = "client-key-23"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def endpoints(ray_cluster):
    """Two apps on one Serve proxy: the tiny preset seed 0 at / and seed 1 at /b (API key on both)."""
    from ray import serve

    from sweettok_platform.serve import ServeConfig, start

    port = _free_port()
    main = start(ServeConfig(preset="tiny", seed=0, port=port, api_key=KEY))
    other = start(ServeConfig(name="sweettok-b", route_prefix="/b", preset="tiny", seed=1, port=port, api_key=KEY))
    yield main, other
    serve.shutdown()  # give the CPUs back to the other tests; the Ray cluster stays up


@pytest.fixture(scope="module")
def endpoint(endpoints) -> str:
    return endpoints[0]


@pytest.fixture(scope="module")
def videos() -> list[Path]:
    """Real videos committed with the project (UCF-101 layout)."""
    return sorted((REPO / "jobs" / "data" / "ucf-tiny").rglob("*.avi"))


def _encode(model: SweetTokenizer, frames: np.ndarray) -> np.ndarray:
    return model.encode(from_uint8(torch.from_numpy(frames))).numpy()


def _decode(model: SweetTokenizer, ids: np.ndarray) -> np.ndarray:
    return to_uint8(model.decode_ids(torch.from_numpy(ids))).permute(0, 2, 3, 4, 1).numpy()


def test_encode_and_decode_equal_the_model_in_process(endpoint, model, spec, videos) -> None:
    client = Client(endpoint, api_key=KEY)
    clips = read_clips(str(videos[0]), ClipSpec(**{**spec.__dict__, "policy": "windows"}))
    tokens = client.encode(videos[0], policy="windows", words=True)
    expected = _encode(model, np.stack([c.frames for c in clips]))
    assert tokens.ids.dtype == np.int64 and np.array_equal(tokens.ids, expected)
    assert tokens.tokenizer == "preset:tiny:seed0" and tokens.kind == "video"
    assert tokens.starts == [c.start for c in clips] and tokens.fps == pytest.approx(clips[0].fps)
    assert tokens.words is not None and len(tokens.words[0]) == tokens.ids.shape[1]

    frames = client.decode(tokens)
    assert frames.tokenizer == tokens.tokenizer
    assert frames.frames.dtype == np.uint8 and np.array_equal(frames.frames, _decode(model, expected))

    raw = client.encode(clips[0].frames)  # uint8 frames go as .npy: the same ids as the file's first window
    assert np.array_equal(raw.ids, expected[:1])
    one_row = client.decode(expected[0].tolist())  # plain ids, one row
    assert np.array_equal(one_row.frames, _decode(model, expected[:1]))


def test_batched_calls_keep_order_and_bound_concurrency(endpoint, model, spec, videos) -> None:
    client = Client(endpoint, api_key=KEY, concurrency=3)
    tokens = client.encode_many(videos[:6])
    expected = [_encode(model, np.stack([c.frames for c in read_clips(str(v), spec)])) for v in videos[:6]]
    assert all(np.array_equal(t.ids, e) for t, e in zip(tokens, expected))
    frames = client.decode_many(tokens)
    for f, e in zip(frames, expected):  # concurrent requests share a model call: float sums may round 1 level apart
        assert f.frames.shape == (1, 5, 32, 32, 3)
        assert np.abs(f.frames.astype(int) - _decode(model, e).astype(int)).max() <= 1


def test_refusals_are_typed_and_carry_the_servers_reason(endpoint, tmp_path) -> None:
    bad = tmp_path / "broken.mp4"
    corrupt_file(bad)
    relay = Relay(endpoint, fail_first=0)
    client = Client(relay.url, api_key=KEY, retries=3, backoff_s=0.01)
    with pytest.raises(RequestRefused) as e:
        client.encode(bad)
    assert e.value.status == 422 and "cannot decode video" in e.value.detail
    assert relay.calls == 1  # a 4xx is never retried
    with pytest.raises(RequestRefused) as e:
        client.decode([[1, 2, 3]])
    assert e.value.status == 422 and "ids" in e.value.detail
    with pytest.raises(Unauthorized) as e:
        Client(endpoint, api_key="wrong").info()
    assert e.value.status == 401 and "X-API-Key" in e.value.detail
    (tmp_path / "notes.txt").write_text("not a video")
    with pytest.raises(RequestRefused) as e:
        client.encode(tmp_path / "notes.txt")
    assert e.value.status == 415 and "unsupported content type 'text/plain'" in e.value.detail
    (tmp_path / "clip.sweet").write_bytes(b"?")
    with pytest.raises(ValueError, match="unknown file type"):
        client.encode(tmp_path / "clip.sweet")
    relay.close()


def test_503_and_lost_connections_are_retried_with_backoff(endpoint, model, spec, videos) -> None:
    relay = Relay(endpoint, fail_first=2)
    client = Client(relay.url, api_key=KEY, retries=3, backoff_s=0.05)
    began = time.monotonic()
    tokens = client.encode(videos[1])
    assert relay.calls == 3 and time.monotonic() - began >= 0.15  # 0.05 + 0.1 of backoff, Retry-After 0
    assert np.array_equal(tokens.ids, _encode(model, read_clips(str(videos[1]), spec)[0].frames[None]))

    relay = Relay(endpoint, fail_first=10)
    with pytest.raises(ServiceUnavailable) as e:
        Client(relay.url, api_key=KEY, retries=2, backoff_s=0.01).info()
    assert relay.calls == 3 and e.value.status == 503 and "pool full" in e.value.detail
    relay.close()

    closed = f"http://127.0.0.1:{_free_port()}"
    began = time.monotonic()
    with pytest.raises(ServiceUnavailable, match="connection failed.*after 3 attempts"):
        Client(closed, retries=2, backoff_s=0.1).info()
    assert time.monotonic() - began >= 0.3


def test_a_batch_answered_by_two_tokenizers_is_refused(endpoints, videos) -> None:
    main, other = endpoints
    relay = Relay(main, alternate=other)  # every other request goes to the seed-1 app: a rollout mid-batch
    client = Client(relay.url, api_key=KEY, concurrency=1)
    with pytest.raises(TokenizerMismatch) as e:
        client.encode_many(videos[:2])
    assert e.value.tokenizers == ["preset:tiny:seed0", "preset:tiny:seed1"]
    relay.close()
    tokens = Client(other, api_key=KEY).encode(videos[0])
    with pytest.raises(TokenizerMismatch, match="seed1 were decoded by preset:tiny:seed0"):
        Client(main, api_key=KEY).decode(tokens)
    assert isinstance(tokens, Tokens) and tokens.tokenizer == "preset:tiny:seed1"


def test_readme_client_snippet_runs_against_the_endpoint(endpoint, videos, monkeypatch, tmp_path) -> None:
    text = (REPO / "README.md").read_text()
    block = re.search(r"## Call it from Python.*?```py\n(.*?)```", text, re.S)
    assert block, "README has a 'Call it from Python' section with a ```py block"
    code = block.group(1).replace("http://127.0.0.1:8000", endpoint).replace('"clip.mp4"', repr(str(videos[0])))
    code = code.replace('os.environ.get("SWEETTOK_API_KEY")', repr(KEY))
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["frames"].frames.dtype == np.uint8


def test_client_imports_without_ray_or_torch() -> None:
    code = ("import sys, sweettok_platform.client; "
            "bad = [m for m in ('ray', 'torch', 'fastapi') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# ---- offline API docs ---------------------------------------------------------------------------------
def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    pytest.skip("no chromium binary (make test installs the Debian package 'chromium' when it can)")


def _browse(url: str, *extra: str, timeout: float = 120) -> str:
    # every host but this machine resolves to nothing: a page that needs a CDN renders blank here
    cmd = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", "--virtual-time-budget=15000",
           "--window-size=1280,1600", *extra, url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_docs_render_offline_in_headless_chromium(endpoint, tmp_path) -> None:
    from PIL import Image

    page = requests.get(f"{endpoint}/docs", timeout=30).text
    assert "cdn" not in page.lower() and "/docs-assets/swagger-ui-bundle.js" in page
    dom = _browse(f"{endpoint}/docs", "--dump-dom")
    for operation in ("/v1/encode", "/v1/decode", "/v1/info", "/healthz"):  # rendered by Swagger UI's script
        assert f'data-path="{operation}"' in dom, operation
    assert "a video or image -&gt; ids" in dom or "a video or image -> ids" in dom
    shot = tmp_path / "docs.png"
    _browse(f"{endpoint}/docs", f"--screenshot={shot}")
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.int64)
    assert (pixels.min(-1) < 240).mean() > 0.05, "the docs page rendered blank"

    def colour(rgb: tuple[int, int, int]) -> int:
        return int((np.abs(pixels - np.array(rgb)).max(-1) < 12).sum())

    # Swagger UI's stylesheet colours the method badges: POST green, GET blue (only with its CSS loaded)
    assert colour((73, 204, 144)) > 1000 and colour((97, 175, 254)) > 1000

    redoc = _browse(f"{endpoint}/redoc", "--dump-dom")
    assert "/v1/encode" in redoc and "SweetTok tokenizer endpoint" in redoc
    assert requests.get(f"{endpoint}/docs-assets/..%2Fcore.py", timeout=30).status_code == 404


def test_docs_under_a_route_prefix_load_their_assets_there(endpoints) -> None:
    _, other = endpoints  # the app at route prefix /b
    page = requests.get(f"{other}/docs", timeout=30).text
    assert '"/b/openapi.json"' in page or "'/b/openapi.json'" in page
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert f"/b/docs-assets/{asset}" in page
        r = requests.get(f"{other}/docs-assets/{asset}", timeout=30)
        assert r.status_code == 200 and len(r.content) > 100_000


# ---- a real HTTP relay in front of the endpoint ---------------------------------------------------------
class Relay:
    """Forwards requests to ``target`` after answering the first ``fail_first`` with 503 (as the endpoint's
    full request pool does); with ``alternate``, every second request goes there instead."""

    def __init__(self, target: str, fail_first: int = 0, alternate: str | None = None) -> None:
        self.calls = 0
        relay = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _forward(self) -> None:
                relay.calls += 1
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if relay.calls <= fail_first:
                    self._send(503, b'{"status":503,"detail":"busy: request pool full"}',
                               {"Content-Type": "application/json", "Retry-After": "0"})
                    return
                base = alternate if alternate and relay.calls % 2 == 0 else target
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                r = requests.request(self.command, base + self.path, data=body, headers=headers, timeout=120)
                keep = {k: v for k, v in r.headers.items() if k.lower() in ("content-type", "x-sweettok-tokenizer")}
                self._send(r.status_code, r.content, keep)

            def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
                self.send_response(status)
                for k, v in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
