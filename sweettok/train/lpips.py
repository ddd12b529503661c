"""LPIPS (Zhang et al. 2018, "vgg" variant, v0.1) in plain PyTorch, without torchvision.

``import lpips`` imports torchvision, which does not work with this torch build, so the VGG16 trunk is
written here with the same layer layout as ``torchvision.models.vgg16().features``: a torchvision VGG16
state dict (keys ``features.N.weight`` / ``features.N.bias``) loads by key name. The learned linear
layers are read from the weights file that ships inside the ``lpips`` wheel (``lpips/weights/v0.1/vgg.pth``),
located with ``importlib.util.find_spec`` so the package is never imported.
"""

from __future__ import annotations

import importlib.util
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from einops import rearrange
from torch import Tensor, nn

# torchvision vgg16 "D" configuration: conv widths, "M" = max-pool
VGG16_LAYOUT = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")
# indices into ``features`` after which LPIPS taps: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
TAPS = (3, 8, 15, 22, 29)
TAP_WIDTHS = (64, 128, 256, 512, 512)


@dataclass(kw_only=True)
class LPIPSConfig:
    """``vgg_weights``: path to a torchvision-format VGG16 state dict (random trunk with a warning if None).
    ``lin_weights``: path to lpips' linear layers (default: the file inside the installed lpips wheel)."""

    vgg_weights: str | None = None
    lin_weights: str | None = None


class VGG16Features(nn.Module):
    """``torchvision.models.vgg16().features`` up to relu5_3, as ``self.features`` (same indices)."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 3
        for item in VGG16_LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                width = int(item)
                layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU()]
                channels = width
        self.features = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> list[Tensor]:
        """(n, 3, h, w) ImageNet-scaled -> the five LPIPS feature maps."""
        taps = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in TAPS:
                taps.append(x)
                if i == TAPS[-1]:
                    break
        return taps


def lpips_weights_file() -> Path:
    """The ``vgg.pth`` linear-layer weights shipped inside the installed ``lpips`` wheel."""
    spec = importlib.util.find_spec("lpips")
    if spec is None or not spec.origin:
        raise FileNotFoundError("the 'lpips' package is not installed; it ships the LPIPS linear weights (vgg.pth)")
    path = Path(spec.origin).parent / "weights" / "v0.1" / "vgg.pth"
    if not path.is_file():
        raise FileNotFoundError(f"LPIPS linear weights not found at {path}")
    return path


def load_vgg16_state(path: str) -> dict[str, Tensor]:
    """A torchvision-format VGG16 state dict -> the ``features.*`` entries (classifier keys dropped)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"VGG16 weights not found: {path}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return {k: v for k, v in state.items() if k.startswith("features.")}


class LPIPS(nn.Module):
    """Perceptual distance between pixel batches in [-0.5, 0.5]; frozen, always in eval mode.

    Accepts images (n, c, h, w) or clips (b, c, t, h, w) (frames are compared one by one); returns the
    per-sample distance (n,) or (b,) (mean over frames).
    """

    def __init__(self, config: LPIPSConfig | None = None) -> None:
        super().__init__()
        config = config or LPIPSConfig()
        self.shift: Tensor
        self.scale: Tensor
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1), persistent=False)
        self.net = VGG16Features()
        self.lins = nn.ModuleList(nn.Conv2d(w, 1, 1, bias=False) for w in TAP_WIDTHS)
        self.pretrained_trunk = config.vgg_weights is not None
        if config.vgg_weights is not None:
            self.net.load_state_dict(load_vgg16_state(config.vgg_weights), strict=True)
        else:
            warnings.warn(
                "LPIPS: no VGG16 weights given (LPIPSConfig.vgg_weights); using a randomly initialised trunk. "
                "Distances are then not the published LPIPS.",
                stacklevel=2,
            )
        self.load_lin(config.lin_weights or str(lpips_weights_file()))
        self.requires_grad_(False)
        self.eval()

    def load_lin(self, path: str) -> None:
        """Load lpips' ``lin{i}.model.1.weight`` tensors into the five 1x1 convolutions (strict)."""
        if not Path(path).is_file():
            raise FileNotFoundError(f"LPIPS linear weights not found: {path}")
        state = torch.load(path, map_location="cpu", weights_only=True)
        expected = {f"lin{i}.model.1.weight" for i in range(len(TAP_WIDTHS))}
        if set(state) != expected:
            raise ValueError(f"{path}: expected LPIPS keys {sorted(expected)}, got {sorted(state)}")
        with torch.no_grad():
            for i, lin in enumerate(self.lins):
                lin.weight.copy_(state[f"lin{i}.model.1.weight"])  # type: ignore[operator]  # a Conv2d's weight

    def train(self, mode: bool = True) -> "LPIPS":
        return super().train(False)  # frozen: never in training mode

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return per_frame(self.distance, x, y)

    def distance(self, x: Tensor, y: Tensor) -> Tensor:
        """(n, c, h, w) pairs -> (n,)."""
        # [-0.5, 0.5] -> [-1, 1] -> lpips' ScalingLayer
        fx = self.net((x * 2 - self.shift) / self.scale)
        fy = self.net((y * 2 - self.shift) / self.scale)
        dist = x.new_zeros(x.shape[0])
        for a, c, lin in zip(fx, fy, self.lins):
            diff = (_unit(a) - _unit(c)).pow(2)  # (n, w, h', w')
            dist = dist + lin(diff).mean(dim=(1, 2, 3))
        return dist


def per_frame(distance: Callable[[Tensor, Tensor], Tensor], x: Tensor, y: Tensor) -> Tensor:
    """``distance`` of image pairs (n, c, h, w) -> (n,); of clips (b, c, t, h, w): frame by frame, then the mean
    over frames, (b,)."""
    if x.ndim != 5:
        return distance(x, y)
    b = x.shape[0]
    dist = distance(rearrange(x, "b c t h w -> (b t) c h w"), rearrange(y, "b c t h w -> (b t) c h w"))
    return rearrange(dist, "(b t) -> b t", b=b).mean(1)


def _unit(f: Tensor, eps: float = 1e-10) -> Tensor:
    """Normalise features to unit length over channels."""
    return f / (f.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


def perceptual_loss(lpips: LPIPS, x: Tensor, y: Tensor) -> Tensor:
    """Mean LPIPS distance, a scalar loss."""
    return lpips(x.float(), y.float()).mean()
