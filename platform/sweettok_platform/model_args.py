"""Choosing a tokenizer on the command line: a bundle, or a preset with fresh weights."""

from __future__ import annotations

import argparse

import torch

from sweettok import SweetTokenizer, load_bundle, preset


def add_model_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--bundle", metavar="URI", help="tokenizer bundle directory (local or s3://)")
    group.add_argument(
        "--preset", choices=["paper", "small", "tiny"],
        help="a preset with freshly initialised weights (for trying the pipeline; ids carry no meaning)",
    )
    parser.add_argument("--seed", type=int, default=0, help="initialisation seed with --preset")


def load_model(args: argparse.Namespace) -> SweetTokenizer:
    if args.bundle:
        return load_bundle(args.bundle)
    torch.manual_seed(args.seed)
    return SweetTokenizer(preset(args.preset)).eval()
