"""Sampling a trained generator and decoding its ids through the tokenizer named by the corpus card.

Output directory: ``ids.npz`` (``ids`` (n, N_s + N_t) in the canonical layout, ``labels`` (n,)),
``sample_<i>_<class>.mp4`` per sample, ``grid.png`` (one row per sample, its frames left to right) and
``samples.json`` (settings, classes, tokenizer hash). A tokenizer whose hash differs from the one the
corpus was made with is refused: its ids would mean other words.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from sweettok import storage
from sweettok.ar import ArConfig, ArTransformer, SampleConfig, generate
from sweettok_platform.ar.runner import GENERATOR
from sweettok_platform.core.raytrain import checkpoint as ck


def load_generator(checkpoint: str) -> tuple[ArTransformer, dict[str, Any]]:
    """A checkpoint directory (``<run>/step_NNNNNNNN``) -> (model in eval mode, the run's generator.json)."""
    run = checkpoint.rstrip("/").rsplit("/", 1)[0]
    info_uri = storage.join(run, GENERATOR)
    if not storage.exists(info_uri):
        raise FileNotFoundError(f"{checkpoint} is not a generator checkpoint (no {info_uri})")
    info = json.loads(storage.read_bytes(info_uri))
    model = ArTransformer(ArConfig(**info["model"]))
    model.load_state_dict(ck.read_weights(storage.join(checkpoint, ck.WEIGHTS)), strict=True)
    return model.eval(), info


def class_indices(classes: list[str], label_names: dict[str, str]) -> list[int]:
    """Class names or indices -> indices, checked against the corpus's label names."""
    by_name = {v: int(k) for k, v in label_names.items()}
    out = []
    for c in classes:
        if c in by_name:
            out.append(by_name[c])
        elif c.isdigit() and c in label_names:
            out.append(int(c))
        else:
            raise ValueError(f"unknown class {c!r}; the corpus has {sorted(by_name)}")
    return out


def resolve_recorded_bundle(recorded: str, content_hash: str) -> str:
    """The bundle a record names, to load: its durable URI as recorded (``package://`` names resolve to this
    installation), or, where the recorded path is gone (a record from before durable URIs named a Ray session's
    temporary copy), the shipped bundle with the recorded hash. The caller checks the loaded bundle's hash."""
    from sweettok_platform.core.bundles import bundle_location, shipped_bundle_by_hash

    if storage.exists(storage.join(bundle_location(recorded), "bundle.json")):
        return recorded
    found = shipped_bundle_by_hash(content_hash)
    if found is None:
        raise FileNotFoundError(f"the corpus's tokenizer bundle {recorded} (hash {content_hash[:12]}) is gone and no "
                                "shipped bundle has that hash; pass --bundle with a copy of it")
    return found


def load_decoder(info: dict[str, Any], bundle: str | None) -> Any:
    """The tokenizer that decodes: ``bundle`` if given, else the one the corpus card names; its hash must match."""
    from sweettok_platform.core.tokenizer import build_tokenizer

    if bundle is None and info["bundle"] is None:
        model = build_tokenizer(None, info["preset"], info["seed"])
        return model
    uri = bundle or resolve_recorded_bundle(info["bundle"], info["tokenizer"])
    model = build_tokenizer(uri)
    if model.bundle_hash != info["tokenizer"]:
        raise ValueError(f"tokenizer mismatch: the bundle {uri} has hash {model.bundle_hash[:12]}, but the corpus "
                         f"{info['corpus']} was tokenized by {info['tokenizer'][:12]}; its ids would decode to "
                         "other words. Decode with the corpus's own bundle")
    return model


def sample_videos(checkpoint: str, classes: list[str], n: int, output: str, *, bundle: str | None = None,
                  config: SampleConfig | None = None, seed: int = 0, fps: float = 8.0) -> dict[str, Any]:
    """``n`` samples of each class -> ids, mp4s and a grid under ``output``; returns the summary."""
    from sweettok import to_uint8
    from sweettok_platform.core.media import write_media

    model, info = load_generator(checkpoint)
    decoder = load_decoder(info, bundle)  # refused before any sampling when it does not match
    labels = torch.tensor([c for c in class_indices(classes, info["label_names"]) for _ in range(n)])
    config = config or SampleConfig()
    ids = generate(model, labels, config, torch.Generator().manual_seed(seed))  # (b, N_s + N_t)
    os.makedirs(output, exist_ok=True)
    np.savez(os.path.join(output, "ids.npz"), ids=ids.numpy(), labels=labels.numpy())
    with torch.no_grad():
        frames = to_uint8(decoder.decode_ids(ids)).permute(0, 2, 3, 4, 1).numpy()  # (b, t, h, w, c)
    names = info["label_names"]
    for i, (clip, label) in enumerate(zip(frames, labels.tolist())):
        write_media(clip, os.path.join(output, f"sample_{i:03d}_{names[str(label)]}.mp4"), fps)
    grid = np.concatenate([np.concatenate(list(clip), axis=1) for clip in frames], axis=0)  # rows: samples
    write_media(grid[None], os.path.join(output, "grid.png"))
    summary = {"checkpoint": checkpoint, "classes": [names[str(c)] for c in labels.tolist()], "seed": seed,
               "sampling": asdict(config), "tokenizer": info["tokenizer"], "ids_shape": list(ids.shape)}
    with open(os.path.join(output, "samples.json"), "w") as f:
        json.dump(summary, f, indent=2)
    return summary
