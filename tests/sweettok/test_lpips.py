"""LPIPS without torchvision: torchvision-format VGG16 weights load by key name, lpips' linear layers
load from the file inside the lpips wheel, and the distance behaves like a distance."""

from __future__ import annotations

import pytest
import torch

from sweettok.train.lpips import LPIPS, TAP_WIDTHS, LPIPSConfig, VGG16Features, lpips_weights_file

# torchvision.models.vgg16().features: conv layers sit at these indices
VGG_CONV_INDICES = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory) -> str:
    """A torchvision-format VGG16 state dict (features.N.* plus classifier keys) with random weights."""
    torch.manual_seed(0)
    state, cin = {}, 3
    widths = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)
    for i, w in zip(VGG_CONV_INDICES, widths):
        state[f"features.{i}.weight"] = torch.randn(w, cin, 3, 3) * (2 / (9 * cin)) ** 0.5
        state[f"features.{i}.bias"] = torch.randn(w) * 0.01
        cin = w
    state["classifier.0.weight"] = torch.zeros(2, 2)  # dropped by the loader (real ones are 4096 x 25088)
    state["classifier.6.bias"] = torch.zeros(2)
    path = tmp_path_factory.mktemp("vgg") / "vgg16.pth"
    torch.save(state, path)
    return str(path)


@pytest.fixture(scope="module")
def lpips(vgg_file) -> LPIPS:
    return LPIPS(LPIPSConfig(vgg_weights=vgg_file))


def test_trunk_has_torchvision_layout_and_loads_by_key(vgg_file, lpips):
    keys = set(VGG16Features().state_dict())
    assert keys == {f"features.{i}.{p}" for i in VGG_CONV_INDICES for p in ("weight", "bias")}
    saved = torch.load(vgg_file)
    for i in VGG_CONV_INDICES:
        assert torch.equal(lpips.net.features[i].weight, saved[f"features.{i}.weight"])
    assert lpips.pretrained_trunk


def test_linear_layers_come_from_the_lpips_wheel(lpips):
    path = lpips_weights_file()
    assert path.name == "vgg.pth" and path.parent.name == "v0.1" and "lpips" in str(path)
    shipped = torch.load(path, map_location="cpu")
    for i, width in enumerate(TAP_WIDTHS):
        w = shipped[f"lin{i}.model.1.weight"]
        assert w.shape == (1, width, 1, 1) and torch.equal(lpips.lins[i].weight, w)
        assert (w >= 0).all()  # lpips' learned weights are non-negative


def test_distance_is_zero_on_itself_and_grows_with_noise(lpips):
    torch.manual_seed(0)
    x = torch.rand(2, 3, 32, 32) - 0.5
    assert torch.allclose(lpips(x, x), torch.zeros(2), atol=1e-6)
    d = [lpips(x, (x + s * torch.randn_like(x)).clamp(-0.5, 0.5)).mean().item() for s in (0.02, 0.1, 0.3)]
    assert 0 < d[0] < d[1] < d[2], d
    assert lpips(x, x.flip(-1)).mean() > 0


def test_clips_are_compared_frame_by_frame_and_gradients_reach_the_input(lpips):
    torch.manual_seed(0)
    x = torch.rand(2, 3, 3, 32, 32) - 0.5
    y = (x + 0.1 * torch.randn_like(x)).requires_grad_()
    d = lpips(y, x)
    assert d.shape == (2,)
    per_frame = torch.stack([lpips(y[:, :, i], x[:, :, i]) for i in range(3)], dim=1).mean(1)
    assert torch.allclose(d, per_frame, atol=1e-5)
    d.sum().backward()
    assert y.grad is not None and y.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in lpips.parameters()) and not lpips.train().training


def test_missing_weights_are_clear_errors_and_no_trunk_warns(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        LPIPS(LPIPSConfig(vgg_weights=str(tmp_path / "nowhere.pth")))
    with pytest.raises(FileNotFoundError, match="lin.pth"), pytest.warns(UserWarning):
        LPIPS(LPIPSConfig(lin_weights=str(tmp_path / "lin.pth")))
    bad = tmp_path / "bad.pth"
    torch.save({"lin0.weight": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="expected LPIPS keys"), pytest.warns(UserWarning):
        LPIPS(LPIPSConfig(lin_weights=str(bad)))
    with pytest.warns(UserWarning, match="randomly initialised"):
        LPIPS()
