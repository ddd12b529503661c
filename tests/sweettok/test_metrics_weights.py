"""The metric-weight loaders accept files of the public layouts (made here) and refuse other files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sweettok.metrics.i3d import InceptionI3d, load_i3d
from sweettok.metrics.inception import FIDInception, load_inception
from sweettok.metrics.lpips_vgg import load_lpips
from sweettok.train.lpips import VGG16Features


class ScriptedDetector(nn.Module):
    """A stand-in with the StyleGAN-V ``i3d_torchscript.pt`` interface: (b, 3, t, 224, 224) -> (b, 400)."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(3 * 2 * 4 * 4, 400)

    def forward(self, x: Tensor, rescale: bool = False, resize: bool = False, return_features: bool = False) -> Tensor:
        return self.proj(F.adaptive_avg_pool3d(x, (2, 4, 4)).flatten(1))


def scripted_detector(path: Path) -> Path:
    torch.manual_seed(0)
    torch.jit.save(torch.jit.script(ScriptedDetector()), str(path))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    out = {"torchscript": scripted_detector(root / "i3d_torchscript.pt"), "videogpt": root / "i3d_pretrained_400.pt",
           "inception": root / "pt_inception-2015-12-05.pth", "vgg": root / "vgg16.pth", "junk": root / "junk.pt"}
    torch.save(InceptionI3d().state_dict(), out["videogpt"])
    torch.save(FIDInception().state_dict(), out["inception"])
    vgg = {f"features.{k.split('.', 1)[1]}": v for k, v in VGG16Features().state_dict().items()}
    vgg["classifier.0.weight"] = torch.zeros(2, 2)  # torchvision files carry the classifier too
    torch.save(vgg, out["vgg"])
    out["junk"].write_bytes(b"not a weights file" * 100)
    return out


def test_i3d_torchscript_layout_loads_and_gives_400_features(files) -> None:
    i3d = load_i3d(str(files["torchscript"]))
    assert i3d.layout == "torchscript"
    feats = i3d(torch.randint(0, 256, (2, 3, 5, 32, 48), dtype=torch.uint8))  # any size: resized to 224, cropped
    assert feats.shape == (2, 400) and feats.dtype == torch.float64


def test_i3d_videogpt_layout_loads(files) -> None:
    i3d = load_i3d(str(files["videogpt"]))
    assert i3d.layout == "videogpt" and i3d.min_frames == 9
    assert set(i3d.net.state_dict()) == set(torch.load(files["videogpt"], weights_only=True))


@pytest.mark.slow
def test_i3d_videogpt_forward(files) -> None:
    feats = load_i3d(str(files["videogpt"]))(torch.randint(0, 256, (1, 3, 9, 32, 32), dtype=torch.uint8))
    assert feats.shape == (1, 400) and torch.isfinite(feats).all()


def test_i3d_refuses_other_files(files, tmp_path: Path) -> None:
    for name in ("junk", "inception", "vgg"):
        with pytest.raises(ValueError, match="I3D|TorchScript"):
            load_i3d(str(files[name]))
    other = tmp_path / "other.pt"
    torch.jit.save(torch.jit.script(nn.Linear(2, 2)), str(other))
    with pytest.raises(ValueError, match="not the StyleGAN-V I3D detector"):
        load_i3d(str(other))
    broken = {k: v for k, v in torch.load(files["videogpt"], weights_only=True).items() if "Mixed_5c" not in k}
    torch.save(broken, tmp_path / "broken.pt")
    with pytest.raises(ValueError, match="does not match"):
        load_i3d(str(tmp_path / "broken.pt"))
    with pytest.raises(FileNotFoundError):
        load_i3d(str(tmp_path / "missing.pt"))


def test_inception_pytorch_fid_layout_loads_and_refuses_others(files) -> None:
    net = load_inception(str(files["inception"]))
    assert net.dim == 2048 and set(net.net.state_dict()) == set(torch.load(files["inception"], weights_only=True))
    for name in ("junk", "videogpt", "vgg"):
        with pytest.raises(ValueError, match="Inception|pytorch-fid|state dict"):
            load_inception(str(files[name]))


@pytest.mark.slow
def test_inception_forward_gives_pool3(files) -> None:
    feats = load_inception(str(files["inception"]))(torch.randint(0, 256, (1, 3, 40, 40), dtype=torch.uint8))
    assert feats.shape == (1, 2048) and (feats >= 0).all()  # after ReLU and average pooling


def test_lpips_vgg_loads_torchvision_layout_and_refuses_others(files) -> None:
    lpips = load_lpips(str(files["vgg"]))
    assert lpips.pretrained_trunk
    x = torch.rand(1, 3, 2, 32, 32) - 0.5
    assert lpips(x, x).abs().max() < 1e-6
    for name in ("junk", "inception", "videogpt"):
        with pytest.raises(ValueError, match="VGG16"):
            load_lpips(str(files[name]))
