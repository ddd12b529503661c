"""The release's perceptual loss: MSE between ConvNeXt-S ImageNet logits of a reconstruction and its input.

The official release (adxcreative/SweetTok, ``modeling/modules/perceptual_loss.py``) takes torchvision's
``convnext_small(weights=IMAGENET1K_V1)``, resizes both frames to 224x224 (bilinear, antialiased), scales them
with the ImageNet mean and std, and returns the MSE between the two 1000-way logit vectors; ``losses.py``
applies it to one random frame per clip with weight 0.1. torchvision does not work with this torch build,
so the network is written here in plain PyTorch with torchvision's module layout: a torchvision
``convnext_small`` state dict (``features.*``, ``classifier.*``) loads by key name, strictly.
Letters: n images, c channels, h w height and width.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from sweettok.train.lpips import per_frame

# ConvNeXt-S: widths and blocks per stage (Liu et al. 2022, Table 9 / torchvision convnext_small)
SMALL_WIDTHS = (96, 192, 384, 768)
SMALL_DEPTHS = (3, 3, 27, 3)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(kw_only=True)
class ConvNeXtConfig:
    """``weights``: a torchvision-format ``convnext_small`` state dict (IMAGENET1K_V1). None: a random network,
    allowed only where the caller says so (tests); a training job refuses to start without weights."""

    weights: str | None = None
    size: int = 224  # both images are resized to size x size, as the release does


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of (n, c, h, w)."""

    def forward(self, x: Tensor) -> Tensor:
        x = rearrange(x, "n c h w -> n h w c")
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return rearrange(x, "n h w c -> n c h w")


class Permute(nn.Module):
    def __init__(self, *dims: int) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, x: Tensor) -> Tensor:
        return x.permute(*self.dims)


class Block(nn.Module):
    """Depth-wise 7x7 conv, LayerNorm, 4x MLP with GELU, layer scale, residual (keys ``block.{0,2,3,5}``)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(dim, dim, 7, padding=3, groups=dim), Permute(0, 2, 3, 1), nn.LayerNorm(dim, eps=1e-6),
            nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim), Permute(0, 3, 1, 2),
        )
        self.layer_scale = nn.Parameter(torch.full((dim, 1, 1), 1e-6))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.layer_scale * self.block(x)


class ConvNeXtSmall(nn.Module):
    """ConvNeXt-S classifier, (n, 3, h, w) ImageNet-scaled -> (n, 1000) logits; torchvision's key names."""

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Sequential(nn.Conv2d(3, SMALL_WIDTHS[0], 4, stride=4),
                                                 LayerNorm2d(SMALL_WIDTHS[0], eps=1e-6))]
        for i, (width, depth) in enumerate(zip(SMALL_WIDTHS, SMALL_DEPTHS)):
            layers.append(nn.Sequential(*(Block(width) for _ in range(depth))))
            if i + 1 < len(SMALL_WIDTHS):
                layers.append(nn.Sequential(LayerNorm2d(width, eps=1e-6),
                                            nn.Conv2d(width, SMALL_WIDTHS[i + 1], 2, stride=2)))
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(LayerNorm2d(SMALL_WIDTHS[-1], eps=1e-6), nn.Flatten(1),
                                        nn.Linear(SMALL_WIDTHS[-1], num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.avgpool(self.features(x)))


def load_convnext_state(path: str) -> dict[str, Tensor]:
    """A torchvision-format ConvNeXt-S state dict (safetensors or a tensors-only torch file)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"ConvNeXt-S weights not found: {path}")
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        return load_file(path)
    state = torch.load(path, map_location="cpu", weights_only=True)
    if "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    return state


class ConvNeXtLogitsLoss(nn.Module):
    """Frozen; ``(x, y)`` pixel batches in [-0.5, 0.5], images (n, c, h, w) or clips (b, c, t, h, w) (each
    frame compared) -> the per-sample MSE between their logits, (n,) or (b,) (mean over frames)."""

    def __init__(self, config: ConvNeXtConfig | None = None, *, allow_random: bool = False) -> None:
        super().__init__()
        config = config or ConvNeXtConfig()
        if config.weights is None and not allow_random:
            raise ValueError("the convnext_logits perceptual loss needs ConvNeXt-S weights (torchvision "
                             "convnext_small IMAGENET1K_V1 state dict): set convnext_weights")
        self.size = config.size
        self.net = ConvNeXtSmall()
        if config.weights is not None:
            self.net.load_state_dict(load_convnext_state(config.weights), strict=True)
        self.mean: Tensor
        self.std: Tensor
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "ConvNeXtLogitsLoss":
        return super().train(False)  # frozen: never in training mode

    def logits(self, x: Tensor) -> Tensor:
        """(n, 3, h, w) in [-0.5, 0.5] -> (n, 1000)."""
        x = (x.float() + 0.5).clamp(0.0, 1.0)
        x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
        return self.net((x - self.mean) / self.std)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        return per_frame(lambda a, b: (self.logits(a) - self.logits(b)).pow(2).mean(dim=1), x, y)
