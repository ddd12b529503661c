"""Endpoint parts without Ray: config and the serve-deploy YAML, limits, input parsing (the decoding sandbox:
test_sandbox_wire.py)."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import numpy as np
import pytest
import yaml

from sweettok_platform.cli import main
from sweettok_platform.media import ClipSpec
from sweettok_platform.serve import LimitsConfig, ServeConfig, deploy_config
from sweettok_platform.serve.inputs import decode_file, decode_npy, suffix_for
from sweettok_platform.serve.limits import RequestError, check_ids, read_body

REPO = Path(__file__).resolve().parents[2]
SPEC = ClipSpec(frames=5, height=32, width=32)


def test_config_checks_and_round_trips():
    with pytest.raises(ValueError, match="max_ongoing_requests"):
        ServeConfig(max_batch_size=64, max_ongoing_requests=32)
    with pytest.raises(ValueError, match="unknown serve settings"):
        ServeConfig.from_dict({"max_batch": 3})
    with pytest.raises(ValueError, match="unknown limits"):
        ServeConfig.from_dict({"limits": {"max_body": 3}})
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
        decode_file(real_video.read_bytes(), ".mp4", SPEC, LimitsConfig(max_video_frames=100))
    assert e.value.status == 413
