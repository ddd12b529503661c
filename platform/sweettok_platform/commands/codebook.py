"""``sweettok codebook``: build a language codebook (``build``) or describe one (``info``)."""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass, field

from sweettok.typed import build
from sweettok_platform.core.config import add_config_args, resolve_settings


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("codebook", help="build or inspect a language codebook",
                       description="The language codebook: part-of-speech vocabulary, LLM word embeddings, word graph.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    b = actions.add_parser(
        "build", help="build a codebook from captions (or the default vocabulary)",
        description="Build codebook.safetensors + vocab.json + codebook.json. Settings come from --config "
                    "(its 'codebook:' section), --set codebook.KEY=VALUE, then the flags below.",
    )
    b.add_argument("--corpus", help="captions: text (one per line) or JSONL, local or s3://; "
                                    "omit for the default vocabulary (lexicon + wordfreq)")
    b.add_argument("--model-dir", dest="model_dir",
                   help="Hugging Face model directory for the embeddings (default: bundled all-MiniLM-L6-v2)")
    b.add_argument("-o", "--output", help="output directory or s3:// prefix")
    b.add_argument("--min-freq", dest="min_freq", type=int, help="drop words seen fewer times (default 5)")
    b.add_argument("--max-words-per-branch", dest="max_words_per_branch", type=int,
                   help="keep at most this many words per branch, most frequent first (small presets)")
    b.add_argument("--min-words-per-branch", dest="min_words_per_branch", type=int,
                   help="fail if a branch ends up smaller (default 32)")
    b.add_argument("--window", type=int, help="co-occurrence window in tokens (default 5)")
    b.add_argument("--knn", type=int, help="neighbours per word in the graph without a corpus (default 8)")
    b.add_argument("--embedding", dest="mode", choices=["input", "hidden"],
                   help="mean sub-token input embedding (default) or mean last hidden state")
    b.add_argument("--text-field", dest="text_field", help="JSONL field with the caption (default caption or text)")
    add_config_args(b)
    b.set_defaults(func=run_build)

    i = actions.add_parser("info", help="print a codebook's metadata")
    i.add_argument("uri", help="codebook directory, bundle or s3:// prefix")
    i.add_argument("--words", type=int, default=0, help="also print the first N words of each branch")
    i.set_defaults(func=run_info)


@dataclass(kw_only=True)
class CodebookBuildConfig:
    """``sweettok codebook build``'s settings (under ``codebook:`` in YAML): ``build_codebook``'s arguments."""

    output: str = ""
    corpus: str | None = None
    model_dir: str | None = None
    min_freq: int = 5
    max_words_per_branch: int | None = None
    min_words_per_branch: int = 32
    window: int = 5
    knn: int = 8
    mode: str = "input"
    text_field: str | None = None

    def __post_init__(self) -> None:
        if not self.output:
            raise ValueError("output: an output is required (-o/--output DIR or s3://bucket/prefix)")


@dataclass(kw_only=True)
class CodebookJob:
    codebook: CodebookBuildConfig = field(default_factory=CodebookBuildConfig)


FLAGS = {name: f"codebook.{name}" for name in ("corpus", "model_dir", "output", "min_freq", "max_words_per_branch",
                                               "min_words_per_branch", "window", "knn", "mode", "text_field")}


def run_build(args: argparse.Namespace) -> int:
    from sweettok.codebook import build_codebook

    job = build(CodebookJob, resolve_settings(args, FLAGS))
    info = build_codebook(**dataclasses.asdict(job.codebook))
    s = info.sizes
    print(f"codebook {info.hash[:12]} -> {info.uri}: spatial {s['spatial']} ({s['noun']} nouns + {s['adjective']} "
          f"adjectives), temporal {s['temporal']} ({s['verb']} verbs + {s['adverb']} adverbs), "
          f"{info.metadata['edges']} edges [{info.metadata['graph']['source']}], {info.seconds:.1f} s")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from sweettok.codebook import read_codebook

    codebook = read_codebook(args.uri)
    print(json.dumps(codebook.metadata, indent=2, sort_keys=True))
    for branch in ("spatial", "temporal") if args.words else ():
        print(f"{branch}: {' '.join(codebook.words(branch)[: args.words])}")
    return 0
