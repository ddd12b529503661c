"""I3D video features for FVD, from either public weight file:

- ``i3d_torchscript.pt`` (StyleGAN-V / fvd-comparison): a TorchScript detector called as
  ``detector(x, rescale=False, resize=False, return_features=True)`` on ``(b, 3, t, 224, 224)`` in [-1, 1],
  returning (b, 400).
- ``i3d_pretrained_400.pt`` (VideoGPT): a state dict of the Inception-I3D of Carreira & Zisserman in the
  piergiaj/pytorch-i3d layout (``Conv3d_1a_7x7.conv3d.weight``, ``Mixed_3b.b1b.bn.running_mean``, ...,
  ``logits.conv3d.weight`` (400, 1024, 1, 1, 1)); the network is rebuilt here and returns the 400 logits
  averaged over time, as VideoGPT's FVD does.

Both get the same preprocessing (the SweetTok/OmniTokenizer evaluation's): uint8 clips (b, c, t, h, w) ->
[0, 1] -> shorter side bilinearly resized to 224 (align_corners=False) -> centre crop 224x224 -> [-1, 1].
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

RESOLUTION = 224
CLASSES = 400
# (name, in, [b0, b1a, b1b, b2a, b2b, b3b]) of the Inception modules, and the pools between them
MIXED = {
    "Mixed_3b": (192, (64, 96, 128, 16, 32, 32)), "Mixed_3c": (256, (128, 128, 192, 32, 96, 64)),
    "Mixed_4b": (480, (192, 96, 208, 16, 48, 64)), "Mixed_4c": (512, (160, 112, 224, 24, 64, 64)),
    "Mixed_4d": (512, (128, 128, 256, 24, 64, 64)), "Mixed_4e": (512, (112, 144, 288, 32, 64, 64)),
    "Mixed_4f": (528, (256, 160, 320, 32, 128, 128)), "Mixed_5b": (832, (256, 160, 320, 32, 128, 128)),
    "Mixed_5c": (832, (384, 192, 384, 48, 128, 128)),
}


def _same_pad(x: Tensor, kernel: tuple[int, ...], stride: tuple[int, ...]) -> Tensor:
    """TensorFlow 'SAME' padding of (b, c, t, h, w) for a kernel and stride (zeros)."""
    pads = []
    for size, k, s in zip(x.shape[2:], kernel, stride):
        total = max(k - s, 0) if size % s == 0 else max(k - size % s, 0)
        pads.append((total // 2, total - total // 2))
    (tf, tb), (hf, hb), (wf, wb) = pads
    return F.pad(x, (wf, wb, hf, hb, tf, tb))


class Unit3D(nn.Module):
    """SAME-padded Conv3d + BatchNorm3d (eps 1e-3) + ReLU; the logits unit has a bias and neither."""

    def __init__(self, c_in: int, c_out: int, kernel: tuple[int, int, int] = (1, 1, 1),
                 stride: tuple[int, int, int] = (1, 1, 1), logits: bool = False) -> None:
        super().__init__()
        self.kernel, self.stride, self.logits = kernel, stride, logits
        self.conv3d = nn.Conv3d(c_in, c_out, kernel, stride, bias=logits)
        if not logits:
            self.bn = nn.BatchNorm3d(c_out, eps=0.001, momentum=0.01)

    def forward(self, x: Tensor) -> Tensor:
        if self.logits:
            return self.conv3d(x)
        return F.relu(self.bn(self.conv3d(_same_pad(x, self.kernel, self.stride))))


class MaxPoolSame(nn.Module):
    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: Tensor) -> Tensor:
        return F.max_pool3d(_same_pad(x, self.kernel, self.stride), self.kernel, self.stride)


class Mixed(nn.Module):
    def __init__(self, c_in: int, c: tuple[int, ...]) -> None:
        super().__init__()
        self.b0 = Unit3D(c_in, c[0])
        self.b1a, self.b1b = Unit3D(c_in, c[1]), Unit3D(c[1], c[2], (3, 3, 3))
        self.b2a, self.b2b = Unit3D(c_in, c[3]), Unit3D(c[3], c[4], (3, 3, 3))
        self.b3a, self.b3b = MaxPoolSame((3, 3, 3), (1, 1, 1)), Unit3D(c_in, c[5])

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat([self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))], 1)


class InceptionI3d(nn.Module):
    """(b, 3, t, 224, 224) in [-1, 1] -> (b, 400) logits averaged over time (t >= 9)."""

    def __init__(self, classes: int = CLASSES) -> None:
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(3, 64, (7, 7, 7), (2, 2, 2))
        self.MaxPool3d_2a_3x3 = MaxPoolSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3))
        self.MaxPool3d_3a_3x3 = MaxPoolSame((1, 3, 3), (1, 2, 2))
        self.Mixed_3b, self.Mixed_3c = Mixed(*MIXED["Mixed_3b"]), Mixed(*MIXED["Mixed_3c"])
        self.MaxPool3d_4a_3x3 = MaxPoolSame((3, 3, 3), (2, 2, 2))
        for name in ("Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f"):
            setattr(self, name, Mixed(*MIXED[name]))
        self.MaxPool3d_5a_2x2 = MaxPoolSame((2, 2, 2), (2, 2, 2))
        self.Mixed_5b, self.Mixed_5c = Mixed(*MIXED["Mixed_5b"]), Mixed(*MIXED["Mixed_5c"])
        self.logits = Unit3D(1024, classes, logits=True)

    def forward(self, x: Tensor) -> Tensor:
        for name, module in self.named_children():
            if name == "logits":
                break
            x = module(x)
        x = F.avg_pool3d(x, (2, 7, 7), (1, 1, 1))  # (b, 1024, t'', 1, 1)
        return self.logits(x).flatten(2).mean(2)  # (b, classes)


def preprocess(clips: Tensor) -> Tensor:
    """uint8 (b, c, t, h, w) -> float (b, c, t, 224, 224) in [-1, 1] (see the module docstring)."""
    b, c, t, h, w = clips.shape
    x = clips.float().div(255).transpose(1, 2).flatten(0, 1)  # (b t, c, h, w)
    scale = RESOLUTION / min(h, w)
    size = (RESOLUTION, math.ceil(w * scale)) if h < w else (math.ceil(h * scale), RESOLUTION)
    x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
    top, left = (x.shape[-2] - RESOLUTION) // 2, (x.shape[-1] - RESOLUTION) // 2
    x = x[..., top : top + RESOLUTION, left : left + RESOLUTION]
    return (x * 2 - 1).view(b, t, c, RESOLUTION, RESOLUTION).transpose(1, 2).contiguous()


class I3DFeatures(nn.Module):
    """uint8 clips (b, c, t, h, w) -> I3D features (b, 400), from either public layout."""

    dim = CLASSES

    def __init__(self, net: nn.Module, layout: str) -> None:
        super().__init__()
        self.net, self.layout = net, layout
        self.min_frames = 9 if layout == "videogpt" else 1

    @torch.no_grad()
    def forward(self, clips: Tensor) -> Tensor:
        x = preprocess(clips)
        if self.layout == "torchscript":
            out = self.net(x, rescale=False, resize=False, return_features=True)
        else:
            out = self.net(x)
        if out.ndim != 2 or out.shape[1] != self.dim:
            raise ValueError(f"the I3D detector returned features of shape {tuple(out.shape)}, expected (b, {self.dim})")
        return out.double()


def load_i3d(path: str) -> I3DFeatures:
    """An I3D from ``i3d_torchscript.pt`` (TorchScript) or ``i3d_pretrained_400.pt`` (VideoGPT state dict);
    anything else is refused with a ValueError that says what was expected."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"I3D weights not found: {path}")
    try:
        detector = torch.jit.load(path, map_location="cpu")
    except Exception:
        detector = None
    if detector is not None:
        schema = str(detector.forward.schema) if hasattr(detector.forward, "schema") else ""
        if not all(arg in schema for arg in ("rescale", "resize", "return_features")):
            raise ValueError(f"{path}: a TorchScript module, but not the StyleGAN-V I3D detector (its forward takes "
                             f"rescale, resize, return_features; got {schema or 'an unknown signature'})")
        return I3DFeatures(detector.eval(), "torchscript")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(f"{path}: neither a TorchScript I3D detector nor a torch state dict "
                         f"({type(e).__name__})") from e
    if not isinstance(state, dict) or "logits.conv3d.weight" not in state:
        raise ValueError(f"{path}: not an I3D state dict of the VideoGPT/pytorch-i3d layout (no logits.conv3d.weight)")
    net = InceptionI3d(classes=state["logits.conv3d.weight"].shape[0])
    missing, unexpected = net.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{path}: I3D state dict does not match the pytorch-i3d layout: missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]}")
    if net.logits.conv3d.out_channels != CLASSES:
        raise ValueError(f"{path}: an I3D with {net.logits.conv3d.out_channels} classes; FVD uses the 400-class one")
    return I3DFeatures(net.eval(), "videogpt")
