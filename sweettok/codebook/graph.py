"""The word graph the GCN projector runs on.

Edges are stored as an (E, 2) int64 tensor of entry indices with i < j, plus an (E,) float32 weight:
co-occurrence counts of two codebook words within a 5-token window of a caption (paper §4.1), or, when
no caption corpus is given, the k nearest neighbours of each word in the frozen embedding space.
``normalized_adjacency`` turns them into the GCN's D^-1/2 (A + I) D^-1/2.
"""

from __future__ import annotations

from collections import Counter

import torch
import torch.nn.functional as F
from torch import Tensor


def cooccurrence_edges(sequences: list[list[int | None]], window: int = 5) -> tuple[Tensor, Tensor]:
    """Edges between entries that occur within ``window`` consecutive tokens (j - i < window) of a caption.

    ``sequences`` holds, per caption, the codebook entry of each token (None for other tokens). Weights are
    pair counts.
    """
    pairs: Counter[tuple[int, int]] = Counter()
    for seq in sequences:
        for i, a in enumerate(seq):
            if a is None:
                continue
            for b in seq[i + 1 : i + window]:
                if b is not None and b != a:
                    pairs[(min(a, b), max(a, b))] += 1
    return _to_tensors(pairs)


def knn_edges(embeddings: Tensor, k: int = 8, chunk: int = 2048) -> tuple[Tensor, Tensor]:
    """Edges from each entry to its ``k`` most cosine-similar entries (symmetrized, weight 1).

    Candidates come from a float32 search; they are re-scored in float64, rounded, and ties broken by
    index, so the graph does not depend on BLAS blocking or thread count (the build stays deterministic).
    """
    x = F.normalize(embeddings.double(), dim=-1)
    n = x.shape[0]
    k = min(k, n - 1)
    if k <= 0:
        return _to_tensors({})
    x32 = x.float()
    pairs: set[tuple[int, int]] = set()
    for start in range(0, n, chunk):
        rows = torch.arange(start, min(start + chunk, n))
        sim = x32[rows] @ x32.t()  # (c, n)
        sim[rows - start, rows] = -2.0  # no self edges
        candidates = sim.topk(min(k + 8, n - 1), dim=-1).indices  # (c, k + 8)
        exact = torch.einsum("cd,ckd->ck", x[rows], x[candidates]).mul(1e6).round()  # (c, k + 8)
        exact[candidates == rows[:, None]] = -1e7
        key = exact * (n + 1) - candidates.double()  # higher similarity first, then lower index
        best = candidates.gather(1, key.argsort(dim=-1, descending=True)[:, :k])  # (c, k)
        for i, neighbours in zip(rows.tolist(), best.tolist()):
            pairs.update((min(i, j), max(i, j)) for j in neighbours)
    return _to_tensors({p: 1 for p in pairs})


def _to_tensors(pairs) -> tuple[Tensor, Tensor]:
    keys = sorted(pairs)
    edges = torch.tensor(keys, dtype=torch.int64).reshape(-1, 2)
    weights = torch.tensor([float(pairs[k]) for k in keys], dtype=torch.float32)
    return edges, weights


def normalized_adjacency(edges: Tensor, weights: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """Sparse D^-1/2 (A + I) D^-1/2 of the symmetric graph: (indices (2, nnz) sorted row-major, values (nnz,))."""
    loops = torch.arange(n)
    rows = torch.cat([edges[:, 0], edges[:, 1], loops])
    cols = torch.cat([edges[:, 1], edges[:, 0], loops])
    vals = torch.cat([weights, weights, torch.ones(n)]).float()
    adj = torch.sparse_coo_tensor(torch.stack([rows, cols]), vals, (n, n), check_invariants=True).coalesce()
    idx, val = adj.indices(), adj.values()
    degree = torch.zeros(n).index_add_(0, idx[0], val)
    inv = degree.rsqrt()
    return idx, val * inv[idx[0]] * inv[idx[1]]


def subgraph(edges: Tensor, weights: Tensor, keep: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """The edges among the entries ``keep`` (k,), renumbered 0..k-1 in ``keep``'s order: (E', 2), (E',)."""
    local = torch.full((n,), -1, dtype=torch.int64)
    local[keep] = torch.arange(keep.numel())
    pairs = local[edges]  # (E, 2)
    inside = (pairs >= 0).all(dim=1)
    return pairs[inside], weights[inside]
