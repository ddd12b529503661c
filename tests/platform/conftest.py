"""Fixtures shared by the platform tests: the tiny model every endpoint and reconstruction test compares with."""

from __future__ import annotations

import pytest
import torch

from sweettok import SweetTokenizer, preset
from sweettok_platform.media import ClipSpec


@pytest.fixture(scope="module")
def model() -> SweetTokenizer:
    """Fresh ``tiny`` weights from seed 0: what ``--preset tiny`` (seed 0) builds on the server side too."""
    torch.manual_seed(0)
    return SweetTokenizer(preset("tiny")).eval()


@pytest.fixture(scope="module")
def spec(model: SweetTokenizer) -> ClipSpec:
    """The model's clip geometry, default policy."""
    p = model.config.patch
    return ClipSpec(frames=p.frames, height=p.height, width=p.width)
