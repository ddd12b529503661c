"""How each metric is computed (written into eval.json), and the weight checks run before any work."""

from __future__ import annotations

from sweettok_platform.eval.config import EvalConfig
from sweettok_platform.eval.metrics import METRICS

CONVENTIONS = {
    "psnr": "per frame on 8-bit pixels (the reconstruction rounded to uint8), 10*log10(255^2/MSE) over h, w, c, "
            "capped at 100 dB; averaged over the frames of a clip, then over clips",
    "ssim": "per frame on 8-bit pixels, Wang et al. 2004: 11x11 Gaussian window (sigma 1.5), K1=0.01, K2=0.03, "
            "L=255, each channel, valid positions only; averaged over channels, frames of a clip, then clips",
    "floor": "the same PSNR/SSIM for a per-clip mean-colour prediction (every pixel = the clip's mean colour, "
             "8-bit), on the same clips: the floor a tokenizer must clear",
    "tokens_per_clip": "student tokens per clip (N_s + N_t; N_s for images); with teacher_only the teacher's "
                       "code grid t' x h' x w'",
    "codes_used": "distinct ids per branch over all scored clips",
    "usage": "codes_used / codebook size, per branch",
    "perplexity": "exp(entropy) of each branch's id histogram over all scored clips",
    "bits_per_pixel": "sum over branches of tokens * log2(codebook size), divided by frames*height*width",
    **{name: metric.convention for name, metric in METRICS.items()},
}


def check_weights(config: EvalConfig, frames: int | None = None) -> None:
    """Load every given weights file once (refusing a file of the wrong layout with an error naming the
    setting) and check the clip length each metric needs. Runs in the driver before any decoding."""
    from sweettok_platform.eval.scorer import local_weights

    for metric in METRICS.values():
        uri = config.weights.get(metric.setting)
        if not uri:
            continue
        try:
            net = metric.load(local_weights(uri))
        except (FileNotFoundError, ValueError, RuntimeError) as e:
            raise ValueError(f"{metric.setting}: {uri}: {str(e).splitlines()[0]}") from e
        problem = metric.check(net, frames) if metric.check is not None else None
        if problem:
            raise ValueError(f"{metric.setting}: {problem}")
