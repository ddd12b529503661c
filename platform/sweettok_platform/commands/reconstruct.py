"""``sweettok reconstruct PATTERN... -o OUT/``: encode and decode every video/image the patterns match into
OUT/, mirroring the input tree (``sweettok_platform.reconstruct``)."""

from __future__ import annotations

import argparse

from sweettok_platform.core.model_args import add_model_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "reconstruct", help="encode + decode every video/image of files, folders, globs or s3:// prefixes",
        description="Reconstruct every video and image the patterns match (files, folders, globs, s3:// prefixes) "
                    "through the tokenizer into OUT, at the same relative paths (.mp4 or .npy for videos, .png for "
                    "images). Long videos go through in windows, stitched back. A rerun skips finished outputs; "
                    "unreadable files are listed in OUT/reconstruct.json and the run goes on.")
    p.add_argument("inputs", nargs="+", metavar="PATTERN", help="file, folder, glob ('data/**/*.mp4') or s3:// prefix")
    p.add_argument("-o", "--output", required=True, help="output folder (local or s3://)")
    add_model_args(p)
    p.add_argument("--format", dest="video_format", choices=["mp4", "npy"], default="mp4",
                   help="video output: mp4 (h264, lossy) or npy (the decoded uint8 frames, lossless)")
    p.add_argument("--batch-size", type=int, default=8, help="windows per forward pass")
    p.add_argument("--ray", action="store_true", help="spread the files over a Ray actor pool (large inputs)")
    p.add_argument("--actors", type=int, default=2, help="with --ray: actors (each loads the tokenizer once)")
    p.add_argument("--address", help="with --ray: Ray cluster address (default: RAY_ADDRESS or a local cluster)")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sweettok_platform.reconstruct import ReconstructConfig, reconstruct

    if args.batch_size < 1 or args.actors < 1:
        raise ValueError("--batch-size and --actors must be >= 1")
    result = reconstruct(ReconstructConfig(
        inputs=args.inputs, output=args.output, bundle=args.bundle, preset=args.preset, seed=args.seed,
        video_format=args.video_format, batch_size=args.batch_size, progress=args.progress, ray=args.ray,
        actors=args.actors, ray_address=args.address))
    for error in result.errors:
        print(f"sweettok reconstruct: {error['input']}: {error['reason']}")
    if not result.written and not result.skipped:
        raise ValueError(f"no file was reconstructed ({len(result.errors)} errors; see above)")
    return 0
