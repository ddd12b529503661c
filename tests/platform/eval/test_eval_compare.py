"""``sweettok eval compare``: per-file PSNR and SSIM against scikit-image's implementations on real video, the
TokenBench per-video PSNR against its formula, pairing by relative path with the suffix dropped, unmatched
and unreadable files listed, and LPIPS/FVD with weights (identical files score 0, altered ones do not)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import decord
import numpy as np
import pytest
import torch
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from conftest import REPO
from sweettok_platform.cli import main
from sweettok_platform.tokenize.samples import corrupt_file
from sweettok_platform.eval.compare import CompareConfig, compare_dirs
from sweettok_platform.core.media import ClipSpec, resize_frames

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "sweettok"))
from test_metrics_weights import scripted_detector  # noqa: E402  (the TorchScript I3D stand-in)

UCF = REPO / "jobs" / "data" / "ucf-tiny"
VIDEOS = ["Bikes/v_Bikes_g01_c01.avi", "CarphoneDistorted/v_CarphoneDistorted_g01_c01.avi"]


def frames_of(path: Path) -> np.ndarray:
    reader = decord.VideoReader(str(path))
    return reader.get_batch(list(range(len(reader)))).asnumpy()


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """real/: two real videos, a PNG, a video with no reconstruction; fake/: the videos with noise as .npy (one
    at half size), the PNG with noise, a corrupt file and one with no original."""
    real, fake = tmp_path_factory.mktemp("real"), tmp_path_factory.mktemp("fake")
    rng = np.random.default_rng(0)
    for i, name in enumerate(VIDEOS):
        (real / name).parent.mkdir(parents=True, exist_ok=True)
        (real / name).write_bytes((UCF / name).read_bytes())
        frames = frames_of(UCF / name)
        if i == 1:  # a reconstruction at another size: scored at its size
            frames = resize_frames(frames, ClipSpec(frames=len(frames), height=36, width=48))
        noisy = np.clip(frames.astype(int) + rng.integers(-20, 21, frames.shape), 0, 255).astype(np.uint8)
        (fake / name).parent.mkdir(parents=True, exist_ok=True)
        np.save(fake / Path(name).with_suffix(".npy"), noisy)
    image = frames_of(UCF / VIDEOS[0])[5]
    Image.fromarray(image).save(real / "still.png")
    Image.fromarray(np.clip(image.astype(int) + 9, 0, 255).astype(np.uint8)).save(fake / "still.png")
    (real / "Bikes" / "only_real.avi").write_bytes((UCF / "Bikes/v_Bikes_g02_c01.avi").read_bytes())
    (fake / "extra.png").write_bytes((fake / "still.png").read_bytes())
    (real / "broken.avi").write_bytes((UCF / "Bikes/v_Bikes_g03_c01.avi").read_bytes())
    corrupt_file(fake / "broken.mp4")
    return real, fake


def reference(real: np.ndarray, fake: np.ndarray) -> dict[str, float]:
    """scikit-image per frame (PSNR; SSIM with the Wang et al. settings), and TokenBench's per-video PSNR."""
    psnr = [peak_signal_noise_ratio(r, f, data_range=255) for r, f in zip(real, fake)]
    ssim = [structural_similarity(r, f, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                  data_range=255, channel_axis=-1) for r, f in zip(real, fake)]
    mse = ((real.astype(np.float64) - fake.astype(np.float64)) ** 2).mean()
    return {"psnr": float(np.mean(psnr)), "ssim": float(np.mean(ssim)),
            "psnr_video": float(20 * np.log10(255 / (np.sqrt(mse) + np.finfo(np.float32).eps)))}


def test_per_file_scores_match_scikit_image(dirs, tmp_path, capsys) -> None:
    real, fake = dirs
    args = ["eval", "compare", "--real", str(real), "--fake", str(fake), "-o", str(tmp_path), "--no-progress"]
    assert main(args) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    result = json.loads((tmp_path / "compare.json").read_text())
    files = {f["path"]: f for f in result["files"]}
    assert sorted(files) == ["Bikes/v_Bikes_g01_c01", "CarphoneDistorted/v_CarphoneDistorted_g01_c01", "still"]
    for name in VIDEOS:
        got = files[str(Path(name).with_suffix(""))]
        truth, recon = frames_of(real / name), np.load(fake / Path(name).with_suffix(".npy"))
        if truth.shape != recon.shape:
            assert got["resized_from"] == list(truth.shape[1:3])
            truth = resize_frames(truth, ClipSpec(frames=len(truth), height=recon.shape[1], width=recon.shape[2]))
        want = reference(truth, recon)
        assert got["frames"] == len(truth)
        # torchmetrics' PSNR takes float32 steps: 1e-5 dB
        for metric, tolerance in (("psnr", 1e-5), ("ssim", 1e-6), ("psnr_video", 1e-5)):
            assert got[metric] == pytest.approx(want[metric], abs=tolerance), (name, metric)
    still = reference(np.asarray(Image.open(real / "still.png"))[None],
                      np.asarray(Image.open(fake / "still.png"))[None])
    assert files["still"]["psnr"] == pytest.approx(still["psnr"], abs=1e-5)
    assert files["still"]["ssim"] == pytest.approx(still["ssim"], abs=1e-6)

    summary = result["summary"]
    assert summary["psnr"] == pytest.approx(np.mean([f["psnr"] for f in files.values()]), abs=1e-5)
    assert summary["files"] == 3 and printed["files"] == 3 and printed["unmatched_real"] == 1
    assert [Path(p).name for p in result["unmatched_real"]] == ["only_real.avi"]
    assert [Path(p).name for p in result["unmatched_fake"]] == ["extra.png"]
    assert [e["path"] for e in result["errors"]] == ["broken"]
    assert "cannot decode video" in result["errors"][0]["reason"]
    assert "lpips" not in summary and "--i3d" in result["notes"]["fvd"]
    assert "TokenBench" in result["conventions"]["ssim"]


def test_lpips_and_fvd_with_weights(dirs, tmp_path) -> None:
    from sweettok.train.lpips import VGG16Features

    real, _ = dirs
    vgg = tmp_path / "vgg16.pth"
    torch.manual_seed(0)
    torch.save({f"features.{k.split('.', 1)[1]}": v for k, v in VGG16Features().state_dict().items()}, vgg)
    i3d = scripted_detector(tmp_path / "i3d_torchscript.pt")
    truth_dir, same, noisy = tmp_path / "real", tmp_path / "same", tmp_path / "noisy"
    for name in VIDEOS:  # 6 frames at 32x32 of each video: LPIPS's VGG16 is slow on 2 CPU cores
        frames = resize_frames(frames_of(real / name)[:6], ClipSpec(frames=6, height=32, width=32))
        changed = np.clip(frames.astype(int) + 40, 0, 255).astype(np.uint8)
        for folder, x in ((truth_dir, frames), (same, frames), (noisy, changed)):
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            np.save(folder / Path(name).with_suffix(".npy"), x)
    settings = {"lpips_vgg": str(vgg), "i3d": str(i3d), "progress": False}
    identical = compare_dirs(CompareConfig(real=str(truth_dir), fake=str(same), **settings), log=lambda _: None)
    altered = compare_dirs(CompareConfig(real=str(truth_dir), fake=str(noisy), **settings), log=lambda _: None)
    assert identical["summary"]["lpips"] == pytest.approx(0, abs=1e-6) and abs(identical["summary"]["fvd"]) < 1e-3
    assert identical["summary"]["psnr"] == 100.0 and identical["summary"]["ssim"] == pytest.approx(1.0)
    assert altered["summary"]["lpips"] > 1e-4 and altered["summary"]["fvd"] > 1e-3
    assert set(altered["weights"]) == {"lpips_vgg", "i3d"} and altered["weights"]["i3d"]["sha256"]
