"""The weighted eval metrics: one module each, one line each in ``METRICS``. The eval config, the CLI flags,
the scorer, ``eval.json``, the card and ``sweettok submit`` all iterate this registry. PSNR, SSIM, the
mean-colour floor and codebook usage need no weights and always run (``eval/scorer.py``)."""

from __future__ import annotations

from sweettok_platform.eval.metrics import lpips, rfid, rfvd
from sweettok_platform.eval.metrics.base import Metric

METRICS: dict[str, Metric] = {m.name: m for m in (
    lpips.METRIC,
    rfvd.METRIC,
    rfid.METRIC,
)}
WEIGHT_SETTINGS: dict[str, Metric] = {m.setting: m for m in METRICS.values()}  # setting -> metric

__all__ = ["Metric", "METRICS", "WEIGHT_SETTINGS"]
