"""``rfvd``: reconstruction FVD, the Frechet distance between I3D features of input clips and reconstructions."""

from __future__ import annotations

from typing import Any

from sweettok_platform.eval.metrics.base import Metric


def _load(path: str) -> Any:
    from sweettok.metrics.i3d import load_i3d

    return load_i3d(path)


def _features(net: Any, clips: Any) -> Any:
    return net(clips) if clips.shape[2] > 1 else None  # images (one frame) carry no motion


def _check(net: Any, frames: int | None) -> str | None:
    if frames is not None and frames < net.min_frames:
        return (f"the {net.layout} I3D needs clips of at least {net.min_frames} frames; this tokenizer's clips have "
                f"{frames} (rfvd cannot be computed: drop i3d)")
    return None


METRIC = Metric(
    name="rfvd", setting="i3d", load=_load, features=_features, check=_check,
    help="I3D weights (i3d_torchscript.pt or i3d_pretrained_400.pt) for rFVD",
    convention="Frechet distance between I3D features (400-d logits, Kinetics-400 I3D) of the input clips and their "
               "reconstructions: each clip as the tokenizer sees it (its frames x height x width, e.g. 17x256x256 for "
               "the paper preset; the clip policy picks the frames), scaled to [0,1], shorter side resized to 224 "
               "bilinearly (align_corners=False, no antialias), centre-cropped to 224x224, scaled to [-1,1], as the "
               "SweetTok/OmniTokenizer evaluation (common_metrics_on_video_quality, VideoGPT and StyleGAN-V "
               "detectors); covariance unbiased (n-1); statistics merged exactly across actors",
)
