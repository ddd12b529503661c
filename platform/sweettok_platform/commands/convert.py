"""``sweettok convert-checkpoint``: a torch checkpoint (e.g. an OmniTokenizer release ``.ckpt``) -> safetensors.

Every loader in this project reads torch files with ``weights_only=True`` and never unpickles arbitrary
objects. A checkpoint that holds more than tensors and the allow-listed types is refused; a user who trusts
its source converts it once with this command (``--trust-pickle`` says so explicitly) and uses the
``.safetensors`` output from then on.
"""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert-checkpoint", help="convert a torch checkpoint you trust into .safetensors (one-off)",
        description="Write the tensors of a torch checkpoint (its state_dict) as .safetensors. Without "
                    "--trust-pickle only tensors and allow-listed types are read; with it the file is fully "
                    "unpickled, which runs any code it holds: only for files from a source you trust.",
    )
    p.add_argument("source", help="the .ckpt / .pt file")
    p.add_argument("output", help="the .safetensors file to write")
    p.add_argument("--trust-pickle", action="store_true",
                   help="fully unpickle the source (runs code it contains); you vouch for the file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sweettok.safe_load import convert_to_safetensors

    if not args.output.endswith(".safetensors"):
        raise ValueError(f"output must end with .safetensors, got {args.output}")
    count = convert_to_safetensors(args.source, args.output, trust_pickle=args.trust_pickle)
    print(json.dumps({"output": args.output, "tensors": count}))
    return 0
