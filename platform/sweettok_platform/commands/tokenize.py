"""``sweettok tokenize``: a dataset (local or s3://) -> a Parquet token corpus, with Ray Data."""

from __future__ import annotations

import argparse
import json

from sweettok.config import PRESETS
from sweettok_platform.core.bundles import with_default_bundle
from sweettok_platform.core.config import add_config_args, resolve_settings
from sweettok_platform.core.sources import SOURCE_FLAGS, add_source_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "tokenize", help="tokenize a dataset into a Parquet token corpus (Ray Data)",
        description="Tokenize UCF-101, Kinetics, ImageNet, class folders, a manifest, WebDataset .tar shards or plain "
                    "files (local or s3://) into "
                    "Parquet token corpora. Rerunning with the same output resumes: finished shards are skipped.",
    )
    add_config_args(p)
    add_source_args(p, "only the first N files (source.limit)")
    p.add_argument("-o", "--output", help="corpus directory to write (local or s3://)")
    p.add_argument("--bundle", help="tokenizer bundle (encode.bundle); default: the shipped small-study bundle")
    p.add_argument("--preset", choices=sorted(PRESETS), help="untrained preset instead of a bundle")
    p.add_argument("--batch-size", type=int, help="clips per forward pass (encode.batch_size)")
    p.add_argument("--actors", type=int, help="encode actors (encode.concurrency)")
    p.add_argument("--num-gpus", type=float, help="GPUs per encode actor (default: 1 if the cluster has GPUs)")
    p.add_argument("--files-per-shard", type=int, help="files per output shard (files_per_shard)")
    p.add_argument("--timeout", type=float, help="per-file decode time limit in seconds (decode_timeout_s)")
    p.add_argument("--overwrite", action="store_true", default=None, help="delete the output instead of resuming")
    p.add_argument("--retry-errors", dest="retry_errors", action="store_true", default=None,
                   help="redo the shards whose recorded errors were storage faults (S3 outages), not bad files")
    p.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS or a local cluster)")
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None, help="no progress bars")
    p.set_defaults(func=run)


FLAGS = {  # argparse dest -> dotted setting
    **SOURCE_FLAGS,
    "output": "output", "bundle": "encode.bundle", "preset": "encode.preset", "batch_size": "encode.batch_size",
    "actors": "encode.concurrency", "num_gpus": "encode.num_gpus", "files_per_shard": "files_per_shard",
    "timeout": "decode_timeout_s", "overwrite": "overwrite", "retry_errors": "retry_errors",
    "address": "ray_address", "progress": "progress",
}


def settings_from_args(args: argparse.Namespace) -> dict:
    """YAML < ``--set`` < flags (``core.config``); neither bundle nor preset: the shipped bundle."""
    settings = resolve_settings(args, FLAGS, one_of=(("encode.bundle", "encode.preset"),))
    with_default_bundle(settings.setdefault("encode", {}))
    return settings


def run(args: argparse.Namespace) -> int:
    from sweettok_platform.tokenize.pipeline import TokenizeJobConfig, tokenize_dataset

    card = tokenize_dataset(TokenizeJobConfig.from_dict(settings_from_args(args)))
    print(json.dumps({"output": card.output, "rows": card.clips, "files": card.files, "errors": card.files_failed,
                      "shards": f"{card.shards_done}/{card.shards}", "skipped_shards": card.shards_skipped,
                      "seconds": card.seconds, "tokenizer": card.tokenizer}))
    return 0 if card.complete else 1
