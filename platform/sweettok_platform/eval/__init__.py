"""``sweettok eval``: score a tokenizer bundle on a dataset (PSNR/SSIM, codebook usage, and LPIPS, rFVD, rFID
from user-supplied weights), as a Ray Data job. ``evaluate(EvalConfig.from_dict({...}))`` -> the eval.json dict.

The names load on first use: the CLI reads ``eval.metrics`` (the registry) to build its flags without importing
torch."""

from typing import Any

__all__ = ["EvalConfig", "evaluate"]


def __getattr__(name: str) -> Any:
    if name == "EvalConfig":
        from sweettok_platform.eval.config import EvalConfig

        return EvalConfig
    if name == "evaluate":
        from sweettok_platform.eval.run import evaluate

        return evaluate
    raise AttributeError(f"module 'sweettok_platform.eval' has no attribute {name!r}")
