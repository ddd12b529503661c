"""Transformer building blocks shared by the encoder and decoder.

Letters in shape comments: b batch, n/m sequence lengths, d width, h heads.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn


class Attention(nn.Module):
    """Multi-head attention; self-attention when ``context`` is None."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        self.heads = heads
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(width, 2 * width)
        self.out = nn.Linear(width, width)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        # x: (b, n, d), context: (b, m, d) -> (b, n, d)
        context = x if context is None else context
        q = rearrange(self.q(x), "b n (h e) -> b h n e", h=self.heads)
        k, v = rearrange(self.kv(context), "b m (two h e) -> two b h m e", two=2, h=self.heads)
        if k.shape[2] == 1:  # one key: softmax is 1, attention is a copy of the value
            y = v.expand(-1, -1, q.shape[2], -1)
        else:
            y = F.scaled_dot_product_attention(q, k, v)
        return self.out(rearrange(y, "b h n e -> b n (h e)"))


class MLP(nn.Sequential):
    def __init__(self, width: int, ratio: float) -> None:
        hidden = int(width * ratio)
        super().__init__(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))


class SelfBlock(nn.Module):
    """Pre-norm transformer block: self-attention then MLP."""

    def __init__(self, width: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(width), Attention(width, heads)
        self.norm2, self.mlp = nn.LayerNorm(width), MLP(width, mlp_ratio)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class QueryBlock(nn.Module):
    """The query stream of a CQAE layer: self-attention, cross-attention to the source stream, MLP."""

    def __init__(self, width: int, heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1, self.self_attn = nn.LayerNorm(width), Attention(width, heads)
        self.norm_q, self.norm_kv = nn.LayerNorm(width), nn.LayerNorm(width)
        self.cross_attn = Attention(width, heads)
        self.norm2, self.mlp = nn.LayerNorm(width), MLP(width, mlp_ratio)

    def forward(self, q: Tensor, source: Tensor) -> Tensor:
        # q: (b, n, d) queries, source: (b, m, d) hidden state of the source stream at the same layer
        q = q + self.self_attn(self.norm1(q))
        q = q + self.cross_attn(self.norm_q(q), self.norm_kv(source))
        return q + self.mlp(self.norm2(q))


class CQAE(nn.Module):
    """Cross-attention Query AutoEncoder stack (paper Fig. 3).

    The source stream runs K self-attention blocks; after each, the query stream runs a ``QueryBlock``
    that reads the source's hidden state of that same layer. In the encoder the source is the patch
    stream and the queries are the latent tokens; in the decoder the source is the quantized latents and
    the queries are the mask-token canvas.
    """

    def __init__(self, width: int, heads: int, layers: int, mlp_ratio: float) -> None:
        super().__init__()
        self.source = nn.ModuleList(SelfBlock(width, heads, mlp_ratio) for _ in range(layers))
        self.query = nn.ModuleList(QueryBlock(width, heads, mlp_ratio) for _ in range(layers))
        self.norm = nn.LayerNorm(width)

    def forward(self, source: Tensor, queries: Tensor) -> Tensor:
        # source: (b, m, d), queries: (b, n, d) -> (b, n, d)
        for source_block, query_block in zip(self.source, self.query):
            source = source_block(source)
            queries = query_block(queries, source)
        return self.norm(queries)


def sincos_1d(length: int, width: int) -> Tensor:
    """Fixed sine-cosine position table, (length, width)."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * (-torch.log(torch.tensor(10000.0)) / width))
    table = torch.zeros(length, width)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq[: width // 2])
    return table
