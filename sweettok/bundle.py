"""Tokenizer bundles: a directory (local or ``s3://``) that the trainer exports and every consumer loads.

Layout: ``config.json`` (the resolved TokenizerConfig), ``model.safetensors`` (all weights, teacher
included), any files the quantizer adds (the language codebook's ``codebook.safetensors`` +
``vocab.json``), and ``bundle.json`` with a sha256 content hash over all of them. Token corpora record
that hash.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from sweettok import storage
from sweettok.config import TokenizerConfig
from sweettok.model import SweetTokenizer

MANIFEST = "bundle.json"


def content_hash(files: dict[str, bytes]) -> str:
    """sha256 over (name, bytes) pairs in name order."""
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(name.encode() + b"\0" + hashlib.sha256(files[name]).digest())
    return h.hexdigest()


def save_bundle(model: SweetTokenizer, uri: str, extra: dict[str, Any] | None = None) -> str:
    """Write ``model`` as a bundle at ``uri``; returns the content hash."""
    config = model.config.to_dict()
    if config["quantizer"]["kind"] == "language":
        config["quantizer"]["codebook"] = None  # the codebook travels inside the bundle: keep the hash location-free
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    files = {
        "config.json": json.dumps(config, indent=2, sort_keys=True).encode(),
        "model.safetensors": save_safetensors(state),
    }
    bundle_files = getattr(model.quantizer, "bundle_files", None)
    if bundle_files is not None:
        files.update(bundle_files())
    digest = content_hash(files)
    for name, data in files.items():
        storage.write_bytes(storage.join(uri, name), data)
    manifest = {"hash": digest, "files": sorted(files), "preset": model.config.preset, **(extra or {})}
    storage.write_bytes(storage.join(uri, MANIFEST), json.dumps(manifest, indent=2).encode())
    return digest


def read_manifest(uri: str) -> dict[str, Any]:
    if not storage.exists(storage.join(uri, MANIFEST)):
        raise FileNotFoundError(f"{uri} is not a tokenizer bundle (no {MANIFEST})")
    return json.loads(storage.read_bytes(storage.join(uri, MANIFEST)))


def load_bundle(uri: str, map_location: str | torch.device = "cpu") -> SweetTokenizer:
    """Load a bundle written by ``save_bundle``; the model is returned in eval mode."""
    manifest = read_manifest(uri)
    config = TokenizerConfig.from_dict(json.loads(storage.read_bytes(storage.join(uri, "config.json"))))
    if config.quantizer.kind == "language":
        config.quantizer.codebook = uri  # the codebook files travel inside the bundle
    model = SweetTokenizer(config, weights_follow=True)
    state = load_safetensors(storage.read_bytes(storage.join(uri, "model.safetensors")))
    model.load_state_dict(state, strict=True)
    model.bundle_hash = manifest["hash"]
    return model.to(map_location).eval()
