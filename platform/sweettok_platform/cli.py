"""The ``sweettok`` command. Each subcommand lives in ``sweettok_platform.commands.<name>`` and exposes
``register(subparsers)``; this module only parses, dispatches and turns errors into one readable line.

Exit codes: 0 success, 1 error (message on stderr), 2 usage error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback

COMMANDS = ["encode", "decode", "codebook", "train", "tokenize", "serve", "eval", "convert", "job", "ar", "reconstruct"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sweettok", description="SweetTokenizer: compact semantic video tokens.")
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"sweettok_platform.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        result = args.func(args)
    except KeyboardInterrupt:
        print("sweettok: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # one readable line unless --debug
        if args.debug:
            traceback.print_exc()
        message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"sweettok {args.command}: error: {message}", file=sys.stderr)
        return 1
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
