"""Choosing a tokenizer on the command line: a bundle, a preset with fresh weights, or (neither given) the
bundle that ships with the project (``sweettok_platform.pretrained``)."""

from __future__ import annotations

import argparse

import torch

from sweettok import SweetTokenizer, load_bundle, preset


def add_model_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--bundle", metavar="URI",
                       help="tokenizer bundle directory (local or s3://); default: the shipped small-study bundle")
    group.add_argument(
        "--preset", choices=["paper", "small", "tiny"],
        help="a preset with freshly initialised weights (for trying the pipeline; ids carry no meaning)",
    )
    parser.add_argument("--seed", type=int, default=0, help="initialisation seed with --preset")


def load_model(args: argparse.Namespace) -> SweetTokenizer:
    if args.preset is None:
        from sweettok_platform.pretrained import default_bundle

        return load_bundle(args.bundle or default_bundle())
    torch.manual_seed(args.seed)
    return SweetTokenizer(preset(args.preset)).eval()
