"""``lpips``: LPIPS v0.1 with a torchvision VGG16 trunk, per frame, averaged per clip then over clips."""

from __future__ import annotations

from typing import Any

from sweettok_platform.eval.metrics.base import Metric


def _load(path: str) -> Any:
    from sweettok.metrics.lpips_vgg import load_lpips

    return load_lpips(path)


def _per_clip(net: Any, real: Any, fake: Any) -> Any:
    from sweettok import from_uint8

    return net(from_uint8(real), from_uint8(fake)).double()


METRIC = Metric(
    name="lpips", setting="lpips_vgg", load=_load, per_clip=_per_clip,
    help="torchvision VGG16 weights (vgg16-397923af.pth) for LPIPS",
    convention="LPIPS v0.1 (VGG16 trunk from the given torchvision-format weights, linear layers from the lpips "
               "wheel), per frame at the clip resolution, averaged per clip then over clips",
)
