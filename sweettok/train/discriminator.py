"""A small 3-d PatchGAN discriminator for clips (b, c, t, h, w); images are clips with t = 1."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(kw_only=True)
class DiscriminatorConfig:
    channels: int = 3
    width: int = 64
    layers: int = 3  # stride-2 (spatial) blocks; each doubles the width up to 8x


class PatchDiscriminator(nn.Module):
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
        # running means of the real and fake logits for the LeCam regulariser (saved with the weights)
        self.lecam_ema: Tensor
        self.register_buffer("lecam_ema", torch.zeros(2))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def lecam(self, real_logits: Tensor, fake_logits: Tensor, decay: float = 0.999) -> Tensor:
        """LeCam regulariser (Tseng et al. 2021): ||relu(D(real) - ema_fake)||^2 + ||relu(ema_real - D(fake))||^2;
        updates the running means (as the release's ``lecam_ema``)."""
        ema_real, ema_fake = self.lecam_ema[0], self.lecam_ema[1]
        reg = F.relu(real_logits - ema_fake).pow(2).mean() + F.relu(ema_real - fake_logits).pow(2).mean()
        with torch.no_grad():
            self.lecam_ema.mul_(decay).add_((1 - decay) * torch.stack([real_logits.mean(), fake_logits.mean()]).float())
        return reg


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
