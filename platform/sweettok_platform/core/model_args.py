"""Choosing a tokenizer on the command line: a bundle, a preset with fresh weights, or (neither given) the
bundle that ships with the project (``sweettok_platform.core.bundles``)."""

from __future__ import annotations

import argparse

from sweettok import SweetTokenizer
from sweettok.config import PRESETS
from sweettok_platform.core.tokenizer import build_tokenizer


def add_model_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--bundle", metavar="URI",
                       help="tokenizer bundle directory (local or s3://); default: the shipped small-study bundle")
    group.add_argument(
        "--preset", choices=sorted(PRESETS),
        help="a preset with freshly initialised weights (for trying the pipeline; ids carry no meaning)",
    )
    parser.add_argument("--seed", type=int, default=0, help="initialisation seed with --preset")


def load_model(args: argparse.Namespace) -> SweetTokenizer:
    """``--bundle``, ``--preset`` (seeded by ``--seed``), or the shipped bundle."""
    return build_tokenizer(args.bundle, args.preset, args.seed)
