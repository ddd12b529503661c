"""The encode/decode endpoint over real HTTP, on the session's local Ray cluster (Ray Serve + FastAPI).

Ids from the endpoint must equal ids from the same model (same preset and seed) called in-process on the
same clips; every bad request gets its 4xx with a reason, and the service answers afterwards. S3 URI inputs
and hostile clients: test_serve_hostile.py.
"""

from __future__ import annotations

import io
import json
import os
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests
import torch

from sweettok import SweetTokenizer, from_uint8, to_uint8
from sweettok_platform.core.media import ClipSpec, read_clips, read_image

KEY = "test-key-6"
AUTH = {"X-API-Key": KEY}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def endpoint(ray_cluster, s3_endpoint):
    """The app on serve.run (tiny preset, seed 0, API key on, 2 MiB body limit); yields its base URL."""
    from ray import serve

    from sweettok_platform.serve import LimitsConfig, ServeConfig, start

    aws = {k: v for k, v in os.environ.items() if k.startswith("AWS_")}
    config = ServeConfig(preset="tiny", seed=0, port=_free_port(), api_key=KEY, env=aws,
                         limits=LimitsConfig(max_body_bytes=2 * 2**20, max_clips=8, decode_timeout_s=30))
    url = start(config)
    yield url
    serve.shutdown()  # give the CPUs back to the other tests; the Ray cluster stays up


@pytest.fixture(scope="module")
def png(real_video: Path) -> bytes:
    """A PNG of a real frame."""
    import decord
    from PIL import Image

    frame = decord.VideoReader(str(real_video))[10].asnumpy()
    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="PNG")
    return buf.getvalue()


def _direct(model: SweetTokenizer, frames: np.ndarray) -> list[list[int]]:
    return model.encode(from_uint8(torch.from_numpy(frames))).tolist()


def _post_video(url: str, data: bytes, **params) -> requests.Response:
    return requests.post(f"{url}/v1/encode", data=data, params=params,
                         headers={**AUTH, "Content-Type": "video/mp4"}, timeout=60)


def _alive(url: str) -> None:
    assert requests.get(f"{url}/healthz", timeout=30).status_code == 200
    frames = np.zeros((1, 32, 32, 3), np.uint8)
    buf = io.BytesIO()
    np.save(buf, frames)
    r = requests.post(f"{url}/v1/encode", data=buf.getvalue(),
                      headers={**AUTH, "Content-Type": "application/x-npy"}, timeout=60)
    assert r.status_code == 200, r.text


def test_encode_video_matches_model(endpoint, model, spec, real_video):
    r = _post_video(endpoint, real_video.read_bytes(), words="true", policy="windows", stride=60)
    assert r.status_code == 200, r.text
    body = r.json()
    clips = read_clips(str(real_video), ClipSpec(**{**spec.__dict__, "policy": "windows", "stride": 60}))
    expected = _direct(model, np.stack([c.frames for c in clips]))
    assert body["kind"] == "video" and body["layout"] == {"spatial": 8, "temporal": 16}
    assert [c["ids"] for c in body["clips"]] == expected
    assert [c["start"] for c in body["clips"]] == [c.start for c in clips]
    assert [c["words"] for c in body["clips"]] == model.ids_to_words(torch.tensor(expected))
    assert body["tokenizer"] == "preset:tiny:seed0"


def test_encode_image_raw_and_multipart_match_model(endpoint, model, spec, png):
    expected = _direct(model, read_image(png, spec).frames[None])
    raw = requests.post(f"{endpoint}/v1/encode", data=png, headers={**AUTH, "Content-Type": "image/png"}, timeout=60)
    form = requests.post(f"{endpoint}/v1/encode", files={"file": ("frame.png", png, "image/png")}, headers=AUTH,
                         timeout=60)
    for r in (raw, form):
        assert r.status_code == 200, r.text
        assert r.json()["kind"] == "image" and r.json()["layout"]["temporal"] == 0
        assert [c["ids"] for c in r.json()["clips"]] == expected


def test_npy_frames_give_the_same_ids_as_the_video(endpoint, model, spec, real_video):
    clip = read_clips(str(real_video), spec)[0]
    buf = io.BytesIO()
    np.save(buf, clip.frames)
    r = requests.post(f"{endpoint}/v1/encode", data=buf.getvalue(),
                      headers={**AUTH, "Content-Type": "application/x-npy"}, timeout=60)
    assert r.status_code == 200, r.text
    assert r.json()["clips"][0]["ids"] == _post_video(endpoint, real_video.read_bytes()).json()["clips"][0]["ids"]


def test_decode_matches_model(endpoint, model, spec, real_video, png):
    import decord
    from PIL import Image

    ids = _post_video(endpoint, real_video.read_bytes()).json()["clips"][0]["ids"]
    expected = to_uint8(model.decode_ids(torch.tensor([ids]))).permute(0, 2, 3, 4, 1).numpy()[0]  # (t, h, w, c)
    r = requests.post(f"{endpoint}/v1/decode", json={"ids": ids, "format": "npy"}, headers=AUTH, timeout=60)
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-npy", r.text
    got = np.load(io.BytesIO(r.content))
    assert got.shape == expected.shape == (5, 32, 32, 3)
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1

    r = requests.post(f"{endpoint}/v1/decode", json={"ids": ids}, headers=AUTH, timeout=60)
    assert r.status_code == 200 and r.headers["content-type"] == "video/mp4"
    video = decord.VideoReader(io.BytesIO(r.content))
    assert len(video) == 5 and video[0].shape == (32, 32, 3)

    image_ids = requests.post(f"{endpoint}/v1/encode", data=png, headers={**AUTH, "Content-Type": "image/png"},
                              timeout=60).json()["clips"][0]["ids"]
    r = requests.post(f"{endpoint}/v1/decode", json={"ids": image_ids}, headers=AUTH, timeout=60)
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    image = np.asarray(Image.open(io.BytesIO(r.content)))
    expected = to_uint8(model.decode_ids(torch.tensor([image_ids]))).permute(0, 2, 3, 4, 1).numpy()[0, 0]
    assert np.abs(image.astype(int) - expected.astype(int)).max() <= 1


def test_concurrent_requests_are_batched_and_keep_their_ids(endpoint, model, spec, real_videos):
    windows = ClipSpec(**{**spec.__dict__, "policy": "windows", "stride": 40})
    clips = [c for path in real_videos[:3] for c in read_clips(str(path), windows)][:16]
    bodies = []
    for c in clips:
        buf = io.BytesIO()
        np.save(buf, c.frames)
        bodies.append(buf.getvalue())
    before = requests.get(f"{endpoint}/v1/stats", headers=AUTH, timeout=30).json()

    def call(data: bytes) -> list[int]:
        r = requests.post(f"{endpoint}/v1/encode", data=data,
                          headers={**AUTH, "Content-Type": "application/x-npy"}, timeout=60)
        assert r.status_code == 200, r.text
        return r.json()["clips"][0]["ids"]

    with ThreadPoolExecutor(16) as pool:
        got = list(pool.map(call, bodies))
    after = requests.get(f"{endpoint}/v1/stats", headers=AUTH, timeout=30).json()
    assert got == [_direct(model, c.frames[None])[0] for c in clips]
    calls = after["encode_calls"] - before.get("encode_calls", 0)
    assert after["encode_clips"] - before.get("encode_clips", 0) == len(clips)
    assert calls < len(clips), "16 concurrent requests should share model calls"


def _big_ids(n: int) -> dict:
    return {"ids": list(range(n))}


BAD_REQUESTS = {
    "wrong content type": (415, dict(data=b"hello", headers={"Content-Type": "text/plain"})),
    "corrupt video": (422, dict(data=os.urandom(4096), headers={"Content-Type": "video/mp4"})),
    "corrupt image": (422, dict(data=b"\x89PNG\r\n\x1a\n" + os.urandom(500), headers={"Content-Type": "image/png"})),
    "empty body": (400, dict(data=b"", headers={"Content-Type": "video/mp4"})),
    "oversize body": (413, dict(data=b"\0" * (3 * 2**20), headers={"Content-Type": "video/mp4"})),
    "bad clip policy": (422, dict(params={"policy": "middle"}, data=b"x", headers={"Content-Type": "video/mp4"})),
    "npy of floats": (422, dict(data=(lambda b: (np.save(b, np.zeros((5, 32, 32, 3))), b.getvalue())[1])(io.BytesIO()),
                                headers={"Content-Type": "application/x-npy"})),
    "local uri": (403, dict(json={"uri": "/etc/passwd"})),  # URI input is off by default (no allowed prefixes)
    "s3 uri, URI input off": (403, dict(json={"uri": "s3://bucket/clip.mp4"})),
    "no api key": (401, dict(data=b"x", headers={"Content-Type": "video/mp4", "X-API-Key": ""})),
    "wrong api key": (401, dict(data=b"x", headers={"Content-Type": "video/mp4", "X-API-Key": "nope"})),
}
BAD_DECODES = {
    "wrong ids length": (422, dict(json=_big_ids(23))),
    "ids out of range": (422, dict(json={"ids": [300] * 24})),
    "negative ids": (422, dict(json={"ids": [-1] * 8})),
    "ids not integers": (422, dict(json={"ids": ["a"] * 8})),
    "ids not json": (415, dict(data=b"1,2,3", headers={"Content-Type": "text/csv"})),
    "several clips as mp4": (422, dict(json={"ids": [[0] * 24, [1] * 24], "format": "mp4"})),
}


@pytest.mark.parametrize("route,case", [("encode", c) for c in BAD_REQUESTS] + [("decode", c) for c in BAD_DECODES])
def test_bad_request_gets_4xx_and_service_survives(endpoint, route, case):
    status, kwargs = (BAD_REQUESTS if route == "encode" else BAD_DECODES)[case]
    kwargs = dict(kwargs)
    headers = {**AUTH, **kwargs.pop("headers", {})}
    r = requests.post(f"{endpoint}/v1/{route}", headers=headers, timeout=60, **kwargs)
    assert r.status_code == status, r.text
    assert r.json()["status"] == status and r.json()["detail"]
    _alive(endpoint)


def test_info_health_and_openapi(endpoint):
    info = requests.get(f"{endpoint}/v1/info", headers=AUTH, timeout=30).json()
    assert info["layout"] == {"spatial": 8, "temporal": 16}
    assert info["codebook_size"] == {"spatial": 256, "temporal": 256}
    assert info["preset"] == "tiny" and info["bundle_hash"] is None
    assert requests.get(f"{endpoint}/v1/info", timeout=30).status_code == 401
    assert requests.get(f"{endpoint}/healthz", timeout=30).json()["status"] == "ok"
    schema = requests.get(f"{endpoint}/openapi.json", timeout=30).json()
    assert {"/v1/encode", "/v1/decode", "/v1/info", "/healthz"} <= set(schema["paths"])
    assert "application/x-npy" in json.dumps(schema["paths"]["/v1/encode"])


def test_bad_requests_mixed_into_a_concurrent_batch_fail_alone(endpoint, model):
    good = [[i % 256] * 8 + [(3 * i) % 256] * 16 for i in range(8)]
    bad = [[0] * 8 + [256] * 16, [0] * 23] * 4

    def call(ids):
        return requests.post(f"{endpoint}/v1/decode", json={"ids": ids, "format": "npy"}, headers=AUTH, timeout=60)

    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(call, [x for pair in zip(good, bad) for x in pair]))
    for ids, r in zip([x for pair in zip(good, bad) for x in pair], answers):
        if ids in good:
            assert r.status_code == 200, r.text
            expected = to_uint8(model.decode_ids(torch.tensor([ids]))).permute(0, 2, 3, 4, 1).numpy()[0]
            assert np.abs(np.load(io.BytesIO(r.content)).astype(int) - expected.astype(int)).max() <= 1
        else:
            assert r.status_code == 422, r.text


def test_a_bundle_served_as_a_second_app(endpoint, model, spec, real_video, tmp_path):
    from sweettok import save_bundle
    from sweettok_platform.serve import ServeConfig, start, stop

    digest = save_bundle(model, str(tmp_path / "bundle"))
    port = int(endpoint.rsplit(":", 1)[1])  # the running Serve instance's port
    config = ServeConfig(bundle=str(tmp_path / "bundle"), name="bundle", route_prefix="/bundle", port=port,
                         batching=False)
    url = start(config)
    try:
        info = requests.get(f"{url}/v1/info", timeout=30).json()
        assert info["bundle_hash"] == digest and info["tokenizer"] == digest
        r = _post_video(url, real_video.read_bytes())
        assert r.status_code == 200 and r.json()["tokenizer"] == digest
        clip = read_clips(str(real_video), spec)[0]
        assert r.json()["clips"][0]["ids"] == _direct(model, clip.frames[None])[0]
    finally:
        stop(config)
