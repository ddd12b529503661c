"""``sweettok eval``: score a tokenizer bundle on a dataset (PSNR/SSIM, codebook usage, and LPIPS, rFVD, rFID
from user-supplied weights), as a Ray Data job. ``evaluate(EvalConfig.from_dict({...}))`` -> the eval.json dict."""

from sweettok_platform.eval.config import EvalConfig
from sweettok_platform.eval.run import evaluate

__all__ = ["EvalConfig", "evaluate"]
