"""``sweettok encode``: a local video or image -> token ids (JSON)."""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from sweettok import from_uint8
from sweettok_platform.core.media import ClipSpec, read_clips
from sweettok_platform.core.model_args import add_model_args, load_model


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("encode", help="encode a video or image file into tokens",
                       description="Encode a local video (mp4/webm/avi) or image (png/jpeg) into token ids.")
    p.add_argument("input", help="video or image file")
    add_model_args(p)
    p.add_argument("--policy", choices=["center", "random", "windows"], default="center", help="which clips to take")
    p.add_argument("--stride", type=int, help="frames between window starts (policy windows)")
    p.add_argument("--resize", choices=["squash", "crop"], default="squash", help="how frames reach the model size")
    p.add_argument("--words", action="store_true", help="also write the word of every token")
    p.add_argument("-o", "--output", required=True, help="tokens JSON to write")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    model = load_model(args)
    patch = model.config.patch
    spec = ClipSpec(frames=patch.frames, height=patch.height, width=patch.width,
                    policy=args.policy, stride=args.stride, resize=args.resize)
    clips = read_clips(args.input, spec)
    x = from_uint8(torch.from_numpy(np.stack([c.frames for c in clips])))
    ids = model.encode(x)
    record = {
        "source": args.input,
        "tokenizer": getattr(model, "bundle_hash", f"preset:{model.config.preset}"),
        "layout": {"spatial": model.num_spatial, "temporal": model.num_temporal if ids.shape[1] > model.num_spatial else 0},
        "clips": [
            {"start": c.start, "window": c.window, "fps": c.fps, "ids": row}
            for c, row in zip(clips, ids.tolist())
        ],
    }
    if args.words:
        for clip, words in zip(record["clips"], model.ids_to_words(ids)):
            clip["words"] = words
    with open(args.output, "w") as f:
        json.dump(record, f)
    kind = "image" if x.shape[1] == 1 else "video"
    print(f"{args.input}: {len(clips)} {kind} clip(s) {tuple(x.shape[1:])} -> {tuple(ids.shape)} tokens "
          f"({record['layout']['spatial']} spatial + {record['layout']['temporal']} temporal) -> {args.output}")
    return 0
