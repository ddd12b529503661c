"""``sweettok eval`` end to end on real video: the Ray job with 2 actors against the in-process loop, a
corrupt file in errors, teacher-only scoring, weight checks before any work, and ``eval fvd``."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch

import sweettok
from sweettok_platform.cli import main
from sweettok_platform.tokenize.samples import corrupt_file, make_sample_dataset
from sweettok_platform.eval import EvalConfig, evaluate

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sweettok"))
from test_metrics_weights import scripted_detector  # noqa: E402  (the TorchScript I3D stand-in)

NO_WEIGHTS_KEYS = {"psnr", "ssim", "tokens_per_clip", "codes_used", "usage", "perplexity", "bits_per_pixel",
                   "bundle_hash", "clips", "errors", "floor", "per_clip", "conventions", "weights"}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory, real_videos: list[Path]) -> Path:
    """Class folders: 2 classes x 2 videos of 12 frames cut from real videos, and one corrupt file."""
    root = tmp_path_factory.mktemp("eval-data")
    videos = [p for p in real_videos if p.name in ("bikes.mp4", "carphone_pristine.mp4")]
    make_sample_dataset(root, videos, layout="folders", per_class=2, frames=12)
    corrupt_file(root / "Bikes" / "zz_corrupt.mp4")
    return root


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> str:
    torch.manual_seed(0)
    uri = str(tmp_path_factory.mktemp("bundle"))
    sweettok.save_bundle(sweettok.SweetTokenizer(sweettok.preset("tiny")), uri)
    return uri


@pytest.fixture(scope="module")
def i3d(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(scripted_detector(tmp_path_factory.mktemp("w") / "i3d_torchscript.pt"))


def settings(bundle: str, dataset: Path, out: Path, **extra) -> dict:
    return {"bundle": bundle, "source": {"kind": "folders", "root": str(dataset)}, "clips": {"policy": "windows"},
            "output": str(out), "strips": False, **extra}


def test_ray_job_with_2_actors_equals_the_in_process_loop(ray_cluster, dataset, bundle, i3d, tmp_path) -> None:
    ray_result = evaluate(EvalConfig.from_dict(settings(bundle, dataset, tmp_path / "ray", actors=2, i3d=i3d,
                                                        files_per_shard=2, strips=True, progress=False)))
    assert NO_WEIGHTS_KEYS <= set(ray_result) and "rfvd" in ray_result
    assert "lpips" not in ray_result and "no weights" in ray_result["notes"]["lpips"]
    assert ray_result["clips"] == 8 and len(ray_result["per_clip"]) == 8  # 4 videos x 2 windows of 5 frames
    assert [e["source"] for e in ray_result["errors"]] == ["Bikes/zz_corrupt.mp4"]
    assert 0 < ray_result["psnr"] < 60 and -1 <= ray_result["ssim"] <= 1 and ray_result["floor"]["psnr"] > 0
    assert ray_result["tokens_per_clip"] == 8 + 16 and set(ray_result["codes_used"]) == {"spatial", "temporal"}
    assert ray_result["bits_per_pixel"] == pytest.approx((8 * 8 + 16 * 8) / (5 * 32 * 32))
    assert ray_result["weights"]["i3d"]["sha256"] and ray_result["bundle_hash"] == sweettok.load_bundle(bundle).bundle_hash
    assert {"uri", "clip_start", "psnr", "ssim"} <= set(ray_result["per_clip"][0])
    out = tmp_path / "ray"
    assert json.loads((out / "eval.json").read_text())["psnr"] == ray_result["psnr"]
    assert "PSNR" in (out / "card.md").read_text() and (out / "strips.png").stat().st_size > 1000
    # the same clips in one process: same numbers, and the Fréchet statistics merged from 2 actors agree
    local = evaluate(EvalConfig.from_dict(settings(bundle, dataset, tmp_path / "local", in_process=True, i3d=i3d,
                                                   files_per_shard=3, decode_timeout_s=None)))
    assert local["per_clip"] == ray_result["per_clip"]
    for key in ("psnr", "ssim", "floor", "codes_used", "perplexity", "usage"):
        assert local[key] == ray_result[key], key
    assert local["rfvd"] == pytest.approx(ray_result["rfvd"], rel=1e-6)


def test_teacher_only_scores_the_teacher_on_its_own_codes(dataset, bundle, tmp_path) -> None:
    result = evaluate(EvalConfig.from_dict(settings(bundle, dataset, tmp_path, in_process=True, teacher_only=True,
                                                    decode_timeout_s=None)))
    assert result["teacher_only"] and result["tokens_per_clip"] == 2 * 4 * 4  # t' x h' x w' for 5x32x32
    assert set(result["codes_used"]) == {"teacher"} and 0 < result["codes_used"]["teacher"] <= 128
    assert result["bits_per_pixel"] == pytest.approx(32 * 7 / (5 * 32 * 32))
    assert result["clips"] == 8 and len(result["errors"]) == 1


def test_cli_refuses_a_requested_metric_without_weights_before_any_work(dataset, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    assert main(["eval", "--preset", "tiny", "--source", "folders", "--root", str(dataset), "-o", str(out),
                 "--metrics", "rfvd"]) == 1
    assert "set i3d (--i3d" in capsys.readouterr().err and not out.exists()
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"junk" * 100)
    assert main(["eval", "--preset", "tiny", "--source", "folders", "--root", str(dataset), "-o", str(out),
                 "--inception", str(junk)]) == 1
    assert "inception:" in capsys.readouterr().err and not out.exists()


def test_cli_eval_with_config_and_set(dataset, tmp_path, capsys) -> None:
    job = tmp_path / "job.yaml"
    job.write_text(f"source: {{kind: folders, root: {dataset}}}\npreset: tiny\noutput: {tmp_path / 'x'}\n"
                   "clips: {policy: center}\nstrips: false\ndecode_timeout_s: null\n")
    assert main(["eval", "--config", str(job), "--set", "in_process=true", "--limit", "2"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["clips"] == 2 and summary["tokens_per_clip"] == 24


def test_eval_fvd_scores_two_directories(dataset, real_videos, i3d, tmp_path, capsys) -> None:
    real, same, other = tmp_path / "real", tmp_path / "same", tmp_path / "other"
    make_sample_dataset(real, [p for p in real_videos if p.name == "bikes.mp4"], layout="folders", per_class=3,
                        frames=10, seed=1)
    shutil.copytree(real, same)
    make_sample_dataset(other, [p for p in real_videos if p.name == "carphone_pristine.mp4"], layout="folders",
                        per_class=3, frames=10, seed=1)
    args = ["eval", "fvd", "--i3d", i3d, "--frames", "9", "--resolution", "32", "--real", str(real)]
    assert main([*args, "--fake", str(same)]) == 0
    zero = json.loads(capsys.readouterr().out)
    assert zero["fvd"] == pytest.approx(0.0, abs=1e-6) and zero["real"] == zero["fake"] == 3
    assert main([*args, "--fake", str(other)]) == 0
    apart = json.loads(capsys.readouterr().out)
    assert apart["fvd"] > 1e-3 and apart["i3d_layout"] == "torchscript" and apart["weights"]["i3d"]["sha256"]
    assert main(["eval", "fvd", "--real", str(real), "--fake", str(other)]) == 1
    assert "set i3d" in capsys.readouterr().err


def test_images_are_one_frame_clips_with_spatial_tokens_only(real_video, bundle, tmp_path) -> None:
    from sweettok_platform.tokenize.samples import frames_of
    from sweettok_platform.core.media import write_media

    frames = frames_of(real_video)
    for i in range(3):
        (tmp_path / "images" / "bikes").mkdir(parents=True, exist_ok=True)
        write_media(frames[i * 10 : i * 10 + 1], str(tmp_path / "images" / "bikes" / f"{i}.png"))
    result = evaluate(EvalConfig.from_dict({"bundle": bundle, "source": {"kind": "folders", "root": str(tmp_path / "images")},
                                            "output": str(tmp_path / "out"), "in_process": True, "strips": False,
                                            "decode_timeout_s": None}))
    assert result["clips"] == 3 and result["tokens_per_clip"] == 8 and result["codes_used"]["temporal"] == 0
    assert result["bits_per_pixel"] == pytest.approx(8 * 8 / (32 * 32)) and "rfvd" not in result
