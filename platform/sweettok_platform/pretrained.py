"""The tokenizer bundle that ships with the project: what the CLI, the demo, tokenize and serve use when
no ``--bundle`` or ``--preset`` is given on this machine.

It is the best ``small``-preset bundle of the quality study (full curriculum, seed 0 of 2, the higher mean of
the median PSNR over four held-out content types; ``benchmarks/quality_study.py``, ``docs/results.md``):
9x64x64 clips, 32 spatial + 64 temporal tokens, the language codebook, trained on 2 CPU cores on 670 clips
from 11 sources (camera motion over photographs and game art, procedural video, one real video;
``jobs/data/varied``). It reconstructs content it never saw above a constant colour; it is not the paper's
model.
"""

from __future__ import annotations

from pathlib import Path

BUNDLE_DIR = Path(__file__).parent / "bundles" / "small-study"


def default_bundle() -> str:
    """The shipped bundle's directory; a clear error if the package was installed without it."""
    if not (BUNDLE_DIR / "bundle.json").is_file():
        raise FileNotFoundError(
            f"the shipped tokenizer bundle is missing ({BUNDLE_DIR}); give --bundle URI or --preset NAME"
        )
    return str(BUNDLE_DIR)
