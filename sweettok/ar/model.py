"""A class-conditional decoder-only transformer over SweetTok ids (pure PyTorch).

Sequence (length ``1 + N_s + N_t``): ``[class | s_0 .. s_{N_s-1} | t_0 .. t_{N_t-1}]``, the tokenizer's
canonical layout after one class token. The hidden state at input position ``p`` predicts token ``p``
(position 0, the class token, predicts ``s_0``).

Vocabulary choice: **one embedding table and one output head per branch**, not an offset vocabulary.
A token's branch is fixed by its position, so a shared ``V_s + V_t`` softmax would spend probability on
ids that can never occur there, and sampling would need masking to stay in range. With a head per branch
every sampled id lies in its branch's range by construction, and the paper-size heads are
``10,481`` / ``6,939``-way instead of ``17,420``-way at each position. The class table has
``num_classes + 1`` rows; the last is the "no class" row used for classifier-free guidance (labels are
replaced by it with probability ``class_dropout`` in training).

Shapes: ``b`` batch, ``n`` input positions, ``w`` width, ``h`` heads, ``d = w / h``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(kw_only=True)
class ArConfig:
    """The generator: token geometry (from the corpus card) and transformer size."""

    spatial_vocab: int
    temporal_vocab: int
    spatial_tokens: int
    temporal_tokens: int
    num_classes: int
    width: int = 256
    depth: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    class_dropout: float = 0.1  # probability a training label becomes the "no class" row (CFG)

    def __post_init__(self) -> None:
        if self.width % self.heads:
            raise ValueError(f"width {self.width} must be divisible by heads {self.heads}")
        if self.spatial_tokens < 1 or self.spatial_vocab < 1 or self.num_classes < 1:
            raise ValueError("spatial_tokens, spatial_vocab and num_classes must be >= 1")
        if self.temporal_tokens and self.temporal_vocab < 1:
            raise ValueError("temporal_vocab must be >= 1 when temporal_tokens > 0")
        if not 0.0 <= self.class_dropout < 1.0:
            raise ValueError(f"class_dropout must be in [0, 1), got {self.class_dropout}")

    @property
    def tokens(self) -> int:
        return self.spatial_tokens + self.temporal_tokens

    @property
    def null_class(self) -> int:
        return self.num_classes

    def to_dict(self) -> dict:
        return asdict(self)


# transformer sizes; the geometry comes from the corpus. "b" follows LlamaGen-B's width and depth.
AR_SIZES: dict[str, dict[str, int]] = {
    "tiny": {"width": 64, "depth": 2, "heads": 4},
    "small": {"width": 256, "depth": 4, "heads": 4},
    "b": {"width": 768, "depth": 12, "heads": 12},
}


class KVCache:
    """Keys and values of every layer for ``length`` positions; ``filled`` positions are valid."""

    def __init__(self, config: ArConfig, batch: int, length: int, device: torch.device, dtype: torch.dtype) -> None:
        shape = (config.depth, batch, config.heads, length, config.width // config.heads)  # (L, b, h, n, d)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.filled = 0


class Attention(nn.Module):
    def __init__(self, config: ArConfig) -> None:
        super().__init__()
        self.heads = config.heads
        self.qkv = nn.Linear(config.width, 3 * config.width)
        self.out = nn.Linear(config.width, config.width)
        self.dropout = config.dropout

    def forward(self, x: Tensor, cache: KVCache | None = None, layer: int = 0) -> Tensor:
        b, n, w = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)  # (b, h, n, d)
        start = 0
        if cache is not None:
            start = cache.filled
            cache.k[layer, :, :, start:start + n] = k
            cache.v[layer, :, :, start:start + n] = v
            k, v = cache.k[layer, :, :, :start + n], cache.v[layer, :, :, :start + n]
        drop = self.dropout if self.training else 0.0
        if start == 0:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=n > 1, dropout_p=drop)
        elif n == 1:  # one new position sees every cached one
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=drop)
        else:  # new positions start..start+n-1 see keys up to their own position
            keep = torch.ones(n, start + n, dtype=torch.bool, device=x.device).tril(start)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=keep, dropout_p=drop)
        return self.out(y.transpose(1, 2).reshape(b, n, w))


class Block(nn.Module):
    def __init__(self, config: ArConfig) -> None:
        super().__init__()
        hidden = int(config.width * config.mlp_ratio)
        self.norm1, self.norm2 = nn.LayerNorm(config.width), nn.LayerNorm(config.width)
        self.attn = Attention(config)
        self.mlp = nn.Sequential(nn.Linear(config.width, hidden), nn.GELU(), nn.Linear(hidden, config.width),
                                 nn.Dropout(config.dropout))

    def forward(self, x: Tensor, cache: KVCache | None = None, layer: int = 0) -> Tensor:
        x = x + self.attn(self.norm1(x), cache, layer)
        return x + self.mlp(self.norm2(x))


class ArTransformer(nn.Module):
    """``forward(labels, ids)``: hidden states of ``[class | ids]``; ``logits`` maps them to each branch."""

    def __init__(self, config: ArConfig) -> None:
        super().__init__()
        self.config = config
        w = config.width
        self.class_embed = nn.Embedding(config.num_classes + 1, w)  # last row: no class (CFG)
        self.spatial_embed = nn.Embedding(config.spatial_vocab, w)
        self.temporal_embed = nn.Embedding(max(1, config.temporal_vocab), w)
        self.pos_embed = nn.Parameter(torch.zeros(1 + config.tokens, w))
        self.blocks: list[Block] = nn.ModuleList(Block(config) for _ in range(config.depth))  # type: ignore[assignment]
        self.norm = nn.LayerNorm(w)
        self.spatial_head = nn.Linear(w, config.spatial_vocab)
        self.temporal_head = nn.Linear(w, max(1, config.temporal_vocab))
        self.apply(self._init)
        nn.init.normal_(self.pos_embed, std=0.02)
        for block in self.blocks:  # GPT-2: residual projections scaled by depth
            nn.init.normal_(block.attn.out.weight, std=0.02 / math.sqrt(2 * config.depth))

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def embed(self, labels: Tensor, ids: Tensor, start: int = 0) -> Tensor:
        """Input embeddings of positions ``start .. ids.shape[1]`` of ``[class | ids]``: (b, n, w)."""
        ns = self.config.spatial_tokens
        parts = []
        if start == 0:
            parts.append(self.class_embed(labels)[:, None])  # (b, 1, w)
        first = max(start - 1, 0)  # token index fed at input position max(start, 1)
        if ids.shape[1] > first:
            s = ids[:, first:ns]
            t = ids[:, max(first, ns):]
            if s.shape[1]:
                parts.append(self.spatial_embed(s))
            if t.shape[1]:
                parts.append(self.temporal_embed(t))
        x = torch.cat(parts, dim=1)
        return x + self.pos_embed[start:start + x.shape[1]]

    def forward(self, labels: Tensor, ids: Tensor, cache: KVCache | None = None) -> Tensor:
        """labels (b,), ids (b, k) with k <= N -> hidden (b, n, w) of the input positions not yet in ``cache``
        (all k + 1 without one). The state at input position p predicts token p."""
        start = cache.filled if cache is not None else 0
        x = self.embed(labels, ids, start)
        for layer, block in enumerate(self.blocks):
            x = block(x, cache, layer)
        if cache is not None:
            cache.filled = start + x.shape[1]
        return self.norm(x)

    def logits(self, hidden: Tensor, start: int = 0) -> tuple[Tensor, Tensor]:
        """Hidden states of input positions ``start ..`` -> (spatial logits (b, n_s, V_s), temporal (b, n_t, V_t))
        for the positions of each branch among them."""
        split = max(0, self.config.spatial_tokens - start)
        return self.spatial_head(hidden[:, :split]), self.temporal_head(hidden[:, split:])

    def loss(self, ids: Tensor, labels: Tensor, drop: Tensor | None = None) -> Tensor:
        """Next-token cross-entropy of whole sequences ids (b, N); ``drop`` (b,) bool: labels replaced by the
        no-class row (classifier-free guidance training)."""
        if drop is not None:
            labels = torch.where(drop, torch.full_like(labels, self.config.null_class), labels)
        s_logits, t_logits = self.logits(self(labels, ids[:, :-1]))
        ns = self.config.spatial_tokens
        loss = F.cross_entropy(s_logits.flatten(0, 1), ids[:, :ns].flatten(), reduction="sum")
        if t_logits.shape[1]:
            loss = loss + F.cross_entropy(t_logits.flatten(0, 1), ids[:, ns:].flatten(), reduction="sum")
        return loss / ids.numel()


def class_drop_mask(batch: int, p: float, generator: torch.Generator) -> Tensor:
    """(batch,) bool: which labels to drop this step, from ``generator`` (seeded per step for exact resume)."""
    return torch.rand(batch, generator=generator) < p
