"""Training metrics helpers. ``codebook_stats`` (usage, perplexity, codes used) lives with the codebook."""

from __future__ import annotations

from sweettok.codebook.stats import codebook_stats

__all__ = ["codebook_stats", "prefixed"]


def prefixed(stats: dict[str, float], prefix: str) -> dict[str, float]:
    """``{"usage": u}`` -> ``{"<prefix>_usage": u}``."""
    return {f"{prefix}_{k}": float(v) for k, v in stats.items()}
