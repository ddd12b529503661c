"""Quantizer interface and the learned-codebook baseline (the paper's "w/o LLC").

Both branches share the interface: ``quantize(z, branch)`` finds the nearest code per query
(straight-through, eq. 5 loss), ``embed(ids, branch)`` turns ids back into latents, ``words`` names ids.
The language codebook (``sweettok.codebook``) implements the same interface.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sweettok.config import QuantizerConfig

Branch = Literal["spatial", "temporal"]
BRANCHES: tuple[Branch, Branch] = ("spatial", "temporal")


@dataclass
class Quantized:
    """Result of quantizing one branch: ``z_q`` (b, n, d) straight-through, ``ids`` (b, n), ``loss`` scalar."""

    z_q: Tensor
    ids: Tensor
    loss: Tensor


def nearest(z: Tensor, codes: Tensor) -> Tensor:
    """Index of the nearest code (L2) for each vector: z (b, n, d), codes (L, d) -> (b, n)."""
    flat = z.reshape(-1, z.shape[-1]).to(codes.dtype)
    dist = flat.pow(2).sum(-1, keepdim=True) - 2 * flat @ codes.t() + codes.pow(2).sum(-1)[None]
    return dist.argmin(-1).view(z.shape[:-1])


def quantize_with(z: Tensor, codes: Tensor, beta: float, codebook_weight: float = 1.0) -> Quantized:
    """Nearest-neighbour quantization against ``codes`` with the loss of eq. 5:
    ``codebook_weight * ||sg(z) - q||^2 + beta * ||z - sg(q)||^2`` (codebook term, commitment term)."""
    ids = nearest(z.detach(), codes)
    q = F.embedding(ids, codes).to(z.dtype)
    loss = codebook_weight * F.mse_loss(q, z.detach()) + beta * F.mse_loss(z, q.detach())
    z_q = z + (q - z).detach() if z.requires_grad else q  # straight-through only when training
    return Quantized(z_q=z_q, ids=ids, loss=loss)


class Quantizer(nn.Module):
    """Interface: two codebooks, one per branch, over a shared latent space."""

    config: QuantizerConfig

    def size(self, branch: Branch) -> int:
        raise NotImplementedError

    def codes(self, branch: Branch) -> Tensor:
        """The branch's codebook in latent space, (L, latent_dim)."""
        raise NotImplementedError

    def lookup_codes(self, branch: Branch) -> Tensor:
        """The codes latents are matched against: unit vectors when ``config.l2_normalize``."""
        codes = self.codes(branch)
        return F.normalize(codes, dim=-1) if self.config.l2_normalize else codes

    def quantize(self, z: Tensor, branch: Branch) -> Quantized:
        if self.config.l2_normalize:
            z = F.normalize(z, dim=-1)
        return quantize_with(z, self.lookup_codes(branch), self.config.beta, self.config.codebook_weight)

    def embed(self, ids: Tensor, branch: Branch) -> Tensor:
        """ids (b, n) -> latents (b, n, latent_dim)."""
        return F.embedding(ids, self.lookup_codes(branch))

    def words(self, ids: Tensor, branch: Branch) -> list[list[str]]:
        """ids (b, n) -> a word per id."""
        raise NotImplementedError


class LearnedQuantizer(Quantizer):
    """Two freely learned codebooks; ids are named ``s<id>`` / ``t<id>``."""

    def __init__(self, config: QuantizerConfig) -> None:
        super().__init__()
        self.config = config
        self.spatial = nn.Parameter(torch.randn(config.spatial_size, config.latent_dim) / config.latent_dim**0.5)
        self.temporal = nn.Parameter(torch.randn(config.temporal_size, config.latent_dim) / config.latent_dim**0.5)

    def size(self, branch: Branch) -> int:
        return self.codes(branch).shape[0]

    def codes(self, branch: Branch) -> Tensor:
        return self.spatial if branch == "spatial" else self.temporal

    def words(self, ids: Tensor, branch: Branch) -> list[list[str]]:
        prefix = branch[0]
        return [[f"{prefix}{i}" for i in row] for row in ids.tolist()]
