"""``sweettok eval compare --real DIR --fake DIR [-o OUT]``: per-file and summary scores of reconstructions
against their originals (``sweettok_platform.eval.compare``); registered under ``sweettok eval``."""

from __future__ import annotations

import argparse
import json


def run_compare(args: argparse.Namespace) -> int:
    from sweettok import storage
    from sweettok_platform.eval.compare import CompareConfig, compare_dirs

    if not args.real or not args.fake:
        raise ValueError("eval compare needs --real DIR_OR_URI (originals) and --fake DIR_OR_URI (reconstructions)")
    result = compare_dirs(CompareConfig(real=args.real, fake=args.fake, lpips_vgg=args.lpips_vgg, i3d=args.i3d,
                                        limit=args.limit, progress=args.progress is not False))
    if args.output:
        storage.write_bytes(storage.join(args.output, "compare.json"), json.dumps(result, indent=1).encode())
    for error in result["errors"]:
        print(f"sweettok eval compare: {error['path']}: {error['reason']}")
    print(json.dumps({**result["summary"], "unmatched_real": len(result["unmatched_real"]),
                      "unmatched_fake": len(result["unmatched_fake"])}))
    return 0
