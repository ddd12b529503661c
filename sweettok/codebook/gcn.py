"""The projector P of eq. 3-4: a graph convolution network from frozen word embeddings to the latent space.

Each layer is ``H' = Â (H W + b)`` with Â = D^-1/2 (A + I) D^-1/2 over the word graph (Kipf & Welling,
as VQCT uses it); ``layers`` hidden layers of width ``hidden`` with GELU, then a last graph layer to
``out_dim``. The input is layer-normalized first so models with tiny (Qwen) or large embedding scales
start alike. Propagation is a sparse matmul in float32, whatever the autocast or parameter dtype.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(kw_only=True)
class GCNConfig:
    in_dim: int
    out_dim: int
    hidden: int = 512
    layers: int = 2


class GCNProjector(nn.Module):
    def __init__(self, config: GCNConfig) -> None:
        super().__init__()
        self.config = config
        self.norm = nn.LayerNorm(config.in_dim)
        dims = [config.in_dim] + [config.hidden] * config.layers + [config.out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: Tensor, adj_index: Tensor, adj_value: Tensor) -> Tensor:
        """x (V, in_dim) word embeddings, Â as sparse (indices (2, nnz), values (nnz,)) -> (V, out_dim)."""
        n = x.shape[0]
        adj = torch.sparse_coo_tensor(adj_index, adj_value.float(), (n, n), is_coalesced=True, check_invariants=False)
        dtype = self.norm.weight.dtype
        h = self.norm(x.to(dtype))
        for i, layer in enumerate(self.layers):
            h = torch.sparse.mm(adj, layer(h).float()).to(dtype)  # (V, d)
            if i < len(self.layers) - 1:
                h = F.gelu(h)
        return h
