"""Endpoint parts without Ray: config and the serve-deploy YAML, limits, input parsing (the decoding sandbox:
test_sandbox_wire.py)."""

from __future__ import annotations

import asyncio
import io

import numpy as np
import pytest
import yaml

from sweettok_platform.cli import main
from sweettok_platform.core.media import ClipSpec
from sweettok_platform.serve import LimitsConfig, ServeConfig, deploy_config
from sweettok_platform.serve.inputs import decode_upload, decode_npy, suffix_for
from sweettok_platform.serve.limits import RequestError, check_ids, read_body

from conftest import REPO  # noqa: E402
SPEC = ClipSpec(frames=5, height=32, width=32)


def test_config_checks_and_round_trips():
    with pytest.raises(ValueError, match="max_ongoing_requests"):
        ServeConfig(max_batch_size=64, max_ongoing_requests=32)
    with pytest.raises(ValueError, match="max_batch: unknown setting; ServeConfig takes"):
        ServeConfig.from_dict({"max_batch": 3})
    with pytest.raises(ValueError, match="limits.max_body: unknown setting; LimitsConfig takes"):
        ServeConfig.from_dict({"limits": {"max_body": 3}})
    with pytest.raises(ValueError, match="max_replicas: expected an integer, got 'many'"):
        ServeConfig.from_dict({"max_replicas": "many"})
    assert ServeConfig.from_dict({"max_replicas": "4", "upscale_delay_s": "1e1"}).autoscaling["upscale_delay_s"] == 10
    config = ServeConfig(preset="small", max_replicas=4, limits=LimitsConfig(max_clips=4))
    args = deploy_config(config)["applications"][0]["args"]
    assert ServeConfig.from_dict(args) == ServeConfig(**{**config.__dict__, "host": "127.0.0.1", "port": 8000})


def test_cluster_config_is_a_valid_serve_deploy_file():
    from ray.serve.schema import ServeDeploySchema

    from sweettok_platform.serve.app import build_app

    raw = yaml.safe_load((REPO / "cluster" / "serve-config.yaml").read_text())
    ServeDeploySchema.model_validate(raw) if hasattr(ServeDeploySchema, "model_validate") else ServeDeploySchema.parse_obj(raw)
    app_spec = raw["applications"][0]
    assert app_spec["import_path"] == "sweettok_platform.serve.app:build_app"
    config = ServeConfig.from_dict(app_spec["args"])
    assert config.api_key_env and config.num_gpus >= 1 and config.max_replicas > config.min_replicas
    assert config.max_batch_size <= config.max_ongoing_requests
    build_app(app_spec["args"])  # the builder accepts the args (binding only; nothing starts)


def test_cli_prints_a_deploy_config(capsys, tmp_path):
    assert main(["serve", "--preset", "small", "--port", "9001", "--set", "max_replicas=3", "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["http_options"]["port"] == 9001
    assert printed["applications"][0]["args"]["preset"] == "small"
    assert printed["applications"][0]["args"]["max_replicas"] == 3
    out = tmp_path / "serve.yaml"
    assert main(["serve", "--config", str(REPO / "cluster" / "serve-config.yaml"), "--write-config", str(out)]) == 0
    assert yaml.safe_load(out.read_text())["applications"][0]["args"]["api_key_env"] == "SWEETTOK_API_KEY"
    # --set applies to a deploy file too, and its http_options are kept
    assert main(["serve", "--config", str(REPO / "cluster" / "serve-config.yaml"), "--set", "max_replicas=16",
                 "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["applications"][0]["args"]["max_replicas"] == 16 and printed["http_options"]["host"] == "0.0.0.0"


def test_ids_checks():
    sizes = {"spatial": 256, "temporal": 128}
    assert check_ids([[0] * 8], spatial=8, temporal=16, sizes=sizes, max_rows=4) == "image"
    assert check_ids([[1] * 24] * 2, spatial=8, temporal=16, sizes=sizes, max_rows=4) == "video"
    cases = [([[0] * 9], 422, "ids per clip"), ([[0] * 8 + [128] * 16], 422, "temporal ids out of range"),
             ([[-1] * 8], 422, "spatial ids out of range"), ([[0] * 8] * 5, 413, "limit"), ([], 422, "no ids")]
    for rows, status, reason in cases:
        with pytest.raises(RequestError, match=reason) as e:
            check_ids(rows, spatial=8, temporal=16, sizes=sizes, max_rows=4)
        assert e.value.status == status


def test_body_limit_and_content_types():
    async def chunks(n: int):
        for _ in range(n):
            yield b"x" * 1000

    assert len(asyncio.run(read_body(chunks(3), None, 5000))) == 3000
    for declared in (None, "3000"):
        with pytest.raises(RequestError) as e:
            asyncio.run(read_body(chunks(6), declared, 5000 if declared is None else 2000))
        assert e.value.status == 413
    assert suffix_for("video/mp4; codecs=avc1") == ".mp4"
    assert suffix_for("application/octet-stream", "a.JPEG") == ".jpg"
    with pytest.raises(RequestError) as e:
        suffix_for("text/html")
    assert e.value.status == 415


def test_npy_input_and_frame_limits():
    buf = io.BytesIO()
    np.save(buf, np.random.default_rng(0).integers(0, 255, (20, 48, 64, 3), dtype=np.uint8))
    clips = decode_npy(buf.getvalue(), ClipSpec(**{**SPEC.__dict__, "policy": "windows", "stride": 5}), LimitsConfig())
    assert clips.frames.shape == (4, 5, 32, 32, 3) and clips.starts == [0, 5, 10, 15] and clips.kind == "video"
    with pytest.raises(RequestError, match="limit is 2") as e:
        decode_npy(buf.getvalue(), ClipSpec(**{**SPEC.__dict__, "policy": "windows", "stride": 5}),
                   LimitsConfig(max_clips=2))
    assert e.value.status == 413
    with pytest.raises(RequestError, match="pixels per frame"):
        decode_npy(buf.getvalue(), SPEC, LimitsConfig(max_frame_pixels=1000))
    with pytest.raises(RequestError, match="cannot read"):
        decode_npy(b"\x93NUMPY garbage", SPEC, LimitsConfig())


def test_video_frame_count_limit(real_video):
    with pytest.raises(RequestError, match="frames; the limit") as e:
        decode_upload(real_video.read_bytes(), ".mp4", SPEC, LimitsConfig(max_video_frames=100))
    assert e.value.status == 413


def test_slow_body_gets_408_and_a_steady_one_is_read():
    async def trickle(n: int, every: float, size: int = 1):
        for _ in range(n):
            await asyncio.sleep(every)
            yield b"x" * size

    with pytest.raises(RequestError, match="too slow") as e:  # 1 byte / 0.2 s never earns time past the grace
        asyncio.run(read_body(trickle(100, 0.2), None, 10**6, timeout_s=0.5, min_rate=1000))
    assert e.value.status == 408
    # 1000 bytes / 0.2 s: each chunk earns 1 s, so it may take longer than the 0.5 s grace
    assert len(asyncio.run(read_body(trickle(5, 0.2, 1000), None, 10**6, timeout_s=0.5, min_rate=1000))) == 5000
    with pytest.raises(RequestError) as e:  # the hard cap holds whatever the rate
        asyncio.run(read_body(trickle(50, 0.05, 10**4), None, 10**7, timeout_s=0.5, min_rate=1000, max_s=1.0))
    assert e.value.status == 408


def test_npy_header_is_checked_before_anything_is_allocated():
    frames = np.random.default_rng(0).integers(0, 255, (5, 32, 32, 3), dtype=np.uint8)
    for array in (frames, np.asfortranarray(frames)):
        buf = io.BytesIO()
        np.save(buf, array)
        assert np.array_equal(decode_npy(buf.getvalue(), SPEC, LimitsConfig()).frames[0], frames)
    buf = io.BytesIO()
    np.save(buf, frames)
    data = buf.getvalue()
    for bad, status, reason in ((data[:-1], 422, "declares"), (data + b"\0", 422, "declares"),
                                (data.replace(b"(5, 32, 32, 3)", b"(5000, 2160, 4096, 3)"), 422, "declares"),
                                (data.replace(b"(5, 32, 32, 3)", b"(50000, 1, 1, 3)"), 413, "limit"),
                                (data.replace(b"'|u1'", b"'<f4'"), 422, "uint8")):
        with pytest.raises(RequestError, match=reason) as e:
            decode_npy(bad, SPEC, LimitsConfig())
        assert e.value.status == status


def test_s3_uris_are_parsed_strictly_and_prefixes_checked():
    from sweettok_platform.serve.uris import fetch_uri, normalise_prefix, parse_s3_uri

    assert parse_s3_uri("s3://team-a/videos/clip.mp4") == ("team-a", "videos/clip.mp4")
    for bad in ("s3:///etc/passwd", "s3://team-a", "s3://team-a/", "s3://team-a/a/../b.mp4", "s3://x/a.mp4",
                "file:///etc/passwd", "s3://Team/a.mp4", "s3://team-a/a\nb.mp4", "s3://team-a/a//b.mp4"):
        with pytest.raises(RequestError) as e:
            parse_s3_uri(bad)
        assert e.value.status == 400, bad
    assert normalise_prefix("s3://team-a") == "s3://team-a/"
    assert normalise_prefix("s3://team-a/videos/") == "s3://team-a/videos/"
    with pytest.raises(ValueError, match="allowed_uri_prefixes"):
        ServeConfig(allowed_uri_prefixes=["team-a/videos"])
    with pytest.raises(RequestError, match="URI input is off") as e:  # the default: no storage is touched
        fetch_uri("s3://team-a/videos/clip.mp4", 100, [])
    assert e.value.status == 403
