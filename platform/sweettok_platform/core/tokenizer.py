"""Which tokenizer a job uses: a bundle (local or ``s3://``) or an untrained preset, and its identity."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sweettok import SweetTokenizer, TokenizerConfig, load_bundle, preset, storage
from sweettok.bundle import read_verified

WORDS_FILE = "vocab.json"


@dataclass(kw_only=True)
class EncodeConfig:
    """The tokenizer and the encode actor pool."""

    bundle: str | None = None  # tokenizer bundle directory (local or s3://)
    preset: str | None = None  # or an untrained preset (ids carry no meaning; for trying the pipeline)
    seed: int = 0  # initialisation seed for ``preset``
    batch_size: int = 8  # clips per forward pass
    concurrency: int = 1  # encode actors
    num_gpus: float | None = None  # per actor; None: 1 when the cluster has GPUs, else CPU actors
    num_cpus: float = 1.0  # per CPU actor (also its torch threads)


@dataclass(kw_only=True)
class TokenizerInfo:
    """What the driver needs to know about the tokenizer without loading its weights."""

    config: TokenizerConfig
    hash: str
    words_file: str | None = None


def _check(config: EncodeConfig) -> None:
    if (config.bundle is None) == (config.preset is None):
        raise ValueError("set exactly one of encode.bundle (a tokenizer bundle URI) or encode.preset")
    if config.batch_size < 1 or config.concurrency < 1:
        raise ValueError("encode.batch_size and encode.concurrency must be >= 1")


def describe_tokenizer(config: EncodeConfig) -> TokenizerInfo:
    """The tokenizer's config, verified content hash and words file (reads the bundle's files and checks them
    against its manifest, so a bundle whose files changed never passes as the recorded hash)."""
    from sweettok_platform.core.bundles import bundle_location, durable_bundle_uri

    _check(config)
    if config.preset is not None:
        return TokenizerInfo(config=preset(config.preset), hash=f"preset:{config.preset}:seed{config.seed}")
    manifest, files = read_verified(bundle_location(config.bundle))
    model_config = TokenizerConfig.from_dict(json.loads(files["config.json"]))
    words = storage.join(durable_bundle_uri(config.bundle), WORDS_FILE)
    return TokenizerInfo(config=model_config, hash=manifest["hash"], words_file=words if WORDS_FILE in files else None)


def build_tokenizer(bundle: str | None, preset_name: str | None = None, seed: int = 0) -> SweetTokenizer:
    """The one way a job, a command or the endpoint makes its tokenizer: the bundle (its hash verified on
    load), or the preset with weights initialised from ``seed``, or (neither given) the shipped bundle; in eval
    mode on the CPU."""
    import torch

    from sweettok_platform.core.bundles import bundle_location, default_bundle

    if bundle is not None:
        return load_bundle(bundle_location(bundle))
    if preset_name is None:
        return load_bundle(default_bundle())
    torch.manual_seed(seed)
    return SweetTokenizer(preset(preset_name)).eval()


def load_tokenizer(config: EncodeConfig, expected_hash: str | None = None) -> SweetTokenizer:
    """The job's model (``build_tokenizer``). With ``expected_hash`` (what a job's plan recorded) a bundle
    that was re-exported since is refused."""
    _check(config)
    model = build_tokenizer(config.bundle, config.preset, config.seed)
    if config.bundle is not None:
        if expected_hash is not None and model.bundle_hash != expected_hash:
            raise ValueError(f"the bundle {config.bundle} now has hash {model.bundle_hash[:12]}, but this job's plan "
                             f"records {expected_hash[:12]}: it changed since the job started; rerun with the "
                             "original bundle, or write to a new output")
    return model
