"""``rfid``: reconstruction FID over every frame, Inception-v3 pool3 features (pytorch-fid weights)."""

from __future__ import annotations

from typing import Any

from sweettok_platform.eval.metrics.base import Metric


def _load(path: str) -> Any:
    from sweettok.metrics.inception import load_inception

    return load_inception(path)


def _features(net: Any, clips: Any) -> Any:
    from einops import rearrange

    return net(rearrange(clips, "b c t h w -> (b t) c h w"))


METRIC = Metric(
    name="rfid", setting="inception", load=_load, features=_features,
    help="pytorch-fid Inception weights (pt_inception-2015-12-05-*.pth) for rFID",
    convention="Frechet distance between Inception-v3 pool3 features (2048-d, pytorch-fid weights "
               "pt_inception-2015-12-05) of every input frame and its reconstruction: [0,1] pixels resized to 299x299 "
               "bilinearly (align_corners=False), scaled to [-1,1]; covariance unbiased (n-1)",
)
