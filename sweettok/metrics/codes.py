"""Codebook usage over an evaluation set: counts of every id per branch, merged by addition."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


@dataclass
class CodeCounts:
    """``counts[branch]``: int64 (codebook size,) histogram of the ids seen. Adding two merges them."""

    counts: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # one branch order whatever order the counts arrived in (a safetensors round trip sorts its keys;
        # an actor's dict does not): reports and records then come out byte-identical on a rerun
        self.counts = dict(sorted(self.counts.items()))

    @classmethod
    def empty(cls, sizes: dict[str, int]) -> "CodeCounts":
        return cls({name: np.zeros(size, np.int64) for name, size in sizes.items()})

    def add(self, branch: str, ids: np.ndarray) -> None:
        self.counts[branch] += np.bincount(np.asarray(ids).ravel(), minlength=len(self.counts[branch]))

    def __add__(self, other: "CodeCounts") -> "CodeCounts":
        return CodeCounts({k: self.counts[k] + other.counts[k] for k in self.counts})

    def used(self) -> dict[str, int]:
        """Distinct ids seen per branch."""
        return {k: int((v > 0).sum()) for k, v in self.counts.items()}

    def usage(self) -> dict[str, float]:
        """Fraction of each codebook seen."""
        return {k: round(float((v > 0).mean()), 6) for k, v in self.counts.items()}

    def perplexity(self) -> dict[str, float]:
        """exp(entropy) of each branch's id distribution over the set (1 = one id, size = uniform)."""
        out = {}
        for k, v in self.counts.items():
            total = v.sum()
            if total == 0:
                out[k] = 0.0
                continue
            p = v[v > 0] / total
            out[k] = round(math.exp(float(-(p * np.log(p)).sum())), 6)
        return out
