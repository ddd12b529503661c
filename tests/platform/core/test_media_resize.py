"""resize_frames against an outside reference: Pillow's antialiased bilinear resize."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from sweettok_platform.core.media import ClipSpec, resize_frames


@pytest.mark.parametrize("size", [(32, 32), (64, 48), (200, 300), (120, 160)])
def test_squash_matches_pillow_bilinear_within_one_level(size):
    frames = np.random.default_rng(0).integers(0, 256, (2, 120, 160, 3), dtype=np.uint8)
    h, w = size
    out = resize_frames(frames, ClipSpec(height=h, width=w))
    reference = np.stack([np.asarray(Image.fromarray(f).resize((w, h), Image.BILINEAR)) for f in frames])
    assert out.shape == (2, h, w, 3) and out.dtype == np.uint8 and out.flags["C_CONTIGUOUS"]
    assert np.abs(out.astype(int) - reference.astype(int)).max() <= 1


def test_crop_is_short_side_resize_then_centre_crop():
    frames = np.random.default_rng(1).integers(0, 256, (1, 60, 120, 3), dtype=np.uint8)
    out = resize_frames(frames, ClipSpec(height=30, width=30, resize="crop"))
    scaled = np.asarray(Image.fromarray(frames[0]).resize((60, 30), Image.BILINEAR))  # short side 60 -> 30
    assert np.abs(out[0].astype(int) - scaled[:, 15:45].astype(int)).max() <= 1
