"""Discriminators for clips (b, c, t, h, w); images are clips with t = 1.

``2d_groupnorm`` (this project's default): a 3-d PatchGAN strided in height and width only, GroupNorm.
``tats3d``: the release's ``NLayerDiscriminator3D`` layout (adxcreative/SweetTok
``modeling/modules/discriminator.py``, from TATS/OmniTokenizer): 4x4x4 convolutions strided in time too,
BatchNorm, LeakyReLU, and the intermediate feature maps its generator loss matches (``losses.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


DISCRIMINATORS = ("2d_groupnorm", "tats3d")


@dataclass(kw_only=True)
class DiscriminatorConfig:
    channels: int = 3
    width: int = 64
    layers: int = 3  # stride-2 blocks; each doubles the width (2d_groupnorm: up to 8x; tats3d: up to 512)
    kind: str = "2d_groupnorm"  # see DISCRIMINATORS

    def __post_init__(self) -> None:
        if self.kind not in DISCRIMINATORS:
            raise ValueError(f"discriminator must be one of {list(DISCRIMINATORS)}, got {self.kind!r}")


class LeCamMixin(nn.Module):
    """The LeCam regulariser's running means of real and fake logits (saved with the weights)."""

    lecam_ema: Tensor

    def init_lecam(self) -> None:
        self.register_buffer("lecam_ema", torch.zeros(2))

    def lecam(self, real_logits: Tensor, fake_logits: Tensor, decay: float = 0.999) -> Tensor:
        """LeCam regulariser (Tseng et al. 2021): ||relu(D(real) - ema_fake)||^2 + ||relu(ema_real - D(fake))||^2;
        updates the running means (as the release's ``lecam_ema``)."""
        ema_real, ema_fake = self.lecam_ema[0], self.lecam_ema[1]
        reg = F.relu(real_logits - ema_fake).pow(2).mean() + F.relu(ema_real - fake_logits).pow(2).mean()
        with torch.no_grad():
            self.lecam_ema.mul_(decay).add_((1 - decay) * torch.stack([real_logits.mean(), fake_logits.mean()]).float())
        return reg


def build_discriminator(config: DiscriminatorConfig | None = None) -> "PatchDiscriminator | Tats3dDiscriminator":
    config = config or DiscriminatorConfig()
    return Tats3dDiscriminator(config) if config.kind == "tats3d" else PatchDiscriminator(config)


class PatchDiscriminator(LeCamMixin):
    """Clip -> a grid of real/fake logits (b, 1, t, h / 2^layers, w / 2^layers); time is never strided."""

    def __init__(self, config: DiscriminatorConfig | None = None) -> None:
        super().__init__()
        config = config or DiscriminatorConfig()
        w = config.width
        blocks: list[nn.Module] = [nn.Conv3d(config.channels, w, (3, 4, 4), (1, 2, 2), (1, 1, 1)), nn.LeakyReLU(0.2)]
        for i in range(1, config.layers):
            w_in, w = w, config.width * min(2**i, 8)
            blocks += [
                nn.Conv3d(w_in, w, (3, 4, 4), (1, 2, 2), (1, 1, 1)), nn.GroupNorm(min(32, w // 4), w), nn.LeakyReLU(0.2)
            ]
        blocks.append(nn.Conv3d(w, 1, 3, 1, 1))
        self.net = nn.Sequential(*blocks)
        self.init_lecam()

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def forward_features(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Logits and the activation after each LeakyReLU (the feature-matching taps)."""
        feats = []
        for layer in self.net:
            x = layer(x)
            if isinstance(layer, nn.LeakyReLU):
                feats.append(x)
        return x, feats


class Tats3dDiscriminator(LeCamMixin):
    """The release's video discriminator: ``layers`` 4x4x4 convolutions of stride 2 (in t, h and w), one of
    stride 1, a 1-channel stride-1 convolution, each but the first followed by BatchNorm and LeakyReLU (the
    release also normalises and activates the logits); (b, c, t, h, w) -> (b, 1, t'', h'', w'')."""

    def __init__(self, config: DiscriminatorConfig | None = None) -> None:
        super().__init__()
        config = config or DiscriminatorConfig(kind="tats3d")
        width = config.width
        groups: list[nn.Module] = [nn.Sequential(nn.Conv3d(config.channels, width, 4, 2, 2), nn.LeakyReLU(0.2))]
        for _ in range(1, config.layers):
            w_in, width = width, min(width * 2, 512)
            groups.append(nn.Sequential(nn.Conv3d(w_in, width, 4, 2, 2), nn.BatchNorm3d(width), nn.LeakyReLU(0.2)))
        w_in, width = width, min(width * 2, 512)
        groups.append(nn.Sequential(nn.Conv3d(w_in, width, 4, 1, 2), nn.BatchNorm3d(width), nn.LeakyReLU(0.2)))
        groups.append(nn.Sequential(nn.Conv3d(width, 1, 4, 1, 2), nn.BatchNorm3d(1), nn.LeakyReLU(0.2)))
        self.groups = nn.ModuleList(groups)
        self.init_lecam()

    def forward(self, x: Tensor) -> Tensor:
        return self.forward_features(x)[0]

    def forward_features(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Logits and every group's output but the last (the release matches these)."""
        feats = []
        for group in self.groups:
            x = group(x)
            feats.append(x)
        return x, feats[:-1]


def d_loss(real_logits: Tensor, fake_logits: Tensor, kind: str) -> Tensor:
    """Discriminator loss: hinge or non-saturating (softplus)."""
    if kind == "hinge":
        return 0.5 * (F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean())
    return 0.5 * (F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean())


def g_loss(fake_logits: Tensor, kind: str) -> Tensor:
    """Generator adversarial term for the same loss family."""
    if kind == "hinge":
        return -fake_logits.mean()
    return F.softplus(-fake_logits).mean()


def feature_matching(fake_feats: list[Tensor], real_feats: list[Tensor]) -> Tensor:
    """Sum over layers of the L1 distance between the features of fakes and (detached) reals. The release
    weighs each layer 4 / (layers + 1) x 0.01 and the sum x 4 (``losses.py``): 0.04 per layer at 3 layers."""
    return torch.stack([F.l1_loss(f, r.detach()) for f, r in zip(fake_feats, real_feats)]).sum()
