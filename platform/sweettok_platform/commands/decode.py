"""``sweettok decode``: token ids (JSON from ``sweettok encode``) -> video, image or raw frames."""

from __future__ import annotations

import argparse
import json
import os

import torch

from sweettok import to_uint8
from sweettok_platform.core.media import write_media
from sweettok_platform.core.model_args import add_model_args, load_model


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("decode", help="decode tokens back into a video or image",
                       description="Decode a tokens JSON (from `sweettok encode`) into .mp4/.gif, .png or .npy.")
    p.add_argument("tokens", help="tokens JSON")
    add_model_args(p)
    p.add_argument("-o", "--output", required=True,
                   help="output file; with several clips, _<n> is added before the suffix")
    p.add_argument("--fps", type=float, default=8.0, help="frame rate of a video output")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    with open(args.tokens) as f:
        record = json.load(f)
    if not isinstance(record, dict) or "clips" not in record:
        raise ValueError(f"{args.tokens}: not a tokens file (expected an object with 'clips')")
    model = load_model(args)
    ids = torch.tensor([clip["ids"] for clip in record["clips"]])
    pixels = to_uint8(model.decode_ids(ids)).permute(0, 2, 3, 4, 1).numpy()  # (b, t, h, w, c)
    stem, suffix = os.path.splitext(args.output)
    outputs = [args.output] if len(pixels) == 1 else [f"{stem}_{i}{suffix}" for i in range(len(pixels))]
    for frames, path in zip(pixels, outputs):
        write_media(frames, path, fps=args.fps)
    print(f"{args.tokens}: {tuple(ids.shape)} tokens -> {len(outputs)} x {tuple(pixels.shape[1:])} -> {', '.join(outputs)}")
    return 0
