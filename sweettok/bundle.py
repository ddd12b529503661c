"""Tokenizer bundles: a directory (local or ``s3://``) that the trainer exports and every consumer loads.

Layout: ``config.json`` (the resolved TokenizerConfig), ``model.safetensors`` (all weights, teacher
included), any files the quantizer adds (the language codebook's ``codebook.safetensors`` +
``vocab.json``), and ``bundle.json`` with a sha256 content hash over all of them (and each file's own sha256, so an error can name
the file). Token corpora record that hash; ``load_bundle`` verifies it before building the model.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from sweettok import storage
from sweettok.config import TokenizerConfig
from sweettok.hashing import content_hash
from sweettok.model import SweetTokenizer

MANIFEST = "bundle.json"
# what a bundle directory may hold besides its manifest (a re-export replaces only such a directory)
BUNDLE_FILE_NAMES = ("config.json", "model.safetensors", "codebook.safetensors", "vocab.json", "codebook.json")


class BundleIntegrityError(ValueError):
    """A bundle whose files do not match the content hash its manifest records."""


def save_bundle(model: SweetTokenizer, uri: str, extra: dict[str, Any] | None = None) -> str:
    """Write ``model`` as a bundle at ``uri``; returns the content hash.

    Atomic for readers: locally the files go into a temporary sibling directory that is renamed into place
    (an existing bundle at ``uri`` is swapped out); on S3 an existing manifest is removed first and the new one
    written last. Either way a reader sees the old bundle, no bundle, or the new one, never a mix that passes
    ``load_bundle``'s verification.
    """
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
    manifest = {"hash": digest, "files": sorted(files), "preset": model.config.preset,
                "sha256": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(files.items())},
                **(extra or {})}
    files[MANIFEST] = json.dumps(manifest, indent=2).encode()
    if storage.is_remote(uri):
        _write_remote(uri, files)
    else:
        _write_local(uri, files)
    return digest


def _write_remote(uri: str, files: dict[str, bytes]) -> None:
    storage.delete(storage.join(uri, MANIFEST))  # readers see "no bundle" until the new manifest lands
    for name, data in files.items():
        if name != MANIFEST:
            storage.write_bytes(storage.join(uri, name), data)
    storage.write_bytes(storage.join(uri, MANIFEST), files[MANIFEST])


def _write_local(uri: str, files: dict[str, bytes]) -> None:
    target = os.path.abspath(uri.removeprefix("file://"))
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    if os.path.isdir(target) and os.listdir(target):
        _check_replaceable(target)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.tmp-", dir=parent)
    try:
        for name, data in files.items():
            path = os.path.join(tmp, name)
            with open(path, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        os.chmod(tmp, 0o755)
        old = None
        if os.path.lexists(target):
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(target)}.old-", dir=parent)
            os.rename(target, os.path.join(old, "bundle"))
        os.rename(tmp, target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _check_replaceable(target: str) -> None:
    """A non-empty directory is replaced only if it is a bundle holding nothing but a bundle's files."""
    manifest = os.path.join(target, MANIFEST)
    known = {MANIFEST}
    if os.path.isfile(manifest):
        with open(manifest, "rb") as f:
            known.update(json.loads(f.read()).get("files", []))
    else:
        known.update(BUNDLE_FILE_NAMES)
    other = sorted(set(os.listdir(target)) - known)
    if other:
        raise FileExistsError(f"refusing to write a bundle into {target}: it holds files that are not part of "
                              f"a bundle ({', '.join(other[:3])}); choose an empty or new directory")


def read_manifest(uri: str) -> dict[str, Any]:
    if not storage.exists(storage.join(uri, MANIFEST)):
        raise FileNotFoundError(f"{uri} is not a tokenizer bundle (no {MANIFEST})")
    return json.loads(storage.read_bytes(storage.join(uri, MANIFEST)))


def read_verified(uri: str) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The manifest and the bytes of every file its hash covers, checked against the recorded hash.

    Raises ``BundleIntegrityError`` naming the file that does not match (or is missing), so a bundle whose
    weights were swapped, or whose re-export was interrupted, never loads under the old hash.
    """
    manifest = read_manifest(uri)
    names = manifest.get("files")
    if not isinstance(names, list) or not {"config.json", "model.safetensors"} <= set(names):
        raise BundleIntegrityError(f"{uri}: {MANIFEST} does not list config.json and model.safetensors")
    files: dict[str, bytes] = {}
    recorded = manifest.get("sha256") or {}
    for name in names:
        if "/" in name or name in ("", ".", "..", MANIFEST):
            raise BundleIntegrityError(f"{uri}: {MANIFEST} lists an invalid file name {name!r}")
        try:
            files[name] = storage.read_bytes(storage.join(uri, name))
        except FileNotFoundError as e:
            raise BundleIntegrityError(f"{uri}: {name} is missing (the bundle's hash covers it)") from e
        if name in recorded and hashlib.sha256(files[name]).hexdigest() != recorded[name]:
            raise BundleIntegrityError(f"{storage.join(uri, name)} does not match the bundle's recorded hash: "
                                       "the file was changed or its write was interrupted; re-export the bundle")
    if content_hash(files) != manifest.get("hash"):
        raise BundleIntegrityError(f"{uri}: the files {', '.join(names)} do not match the bundle's content hash "
                                   f"{str(manifest.get('hash'))[:12]}; re-export the bundle")
    return manifest, files


def load_bundle(uri: str, map_location: str | torch.device = "cpu") -> SweetTokenizer:
    """Load a bundle written by ``save_bundle``, after verifying its content hash; the model is returned in
    eval mode with ``bundle_hash`` set to the verified hash."""
    manifest, files = read_verified(uri)
    config = TokenizerConfig.from_dict(json.loads(files["config.json"]))
    quantizer = None
    if config.quantizer.kind == "language":
        from sweettok.codebook.files import parse_codebook
        from sweettok.codebook.quantizer import LanguageQuantizer

        config.quantizer.codebook = uri  # the codebook files travel inside the bundle (built from verified bytes)
        quantizer = LanguageQuantizer(config.quantizer, parse_codebook(files, uri))
    model = SweetTokenizer(config, quantizer=quantizer, weights_follow=True)
    model.load_state_dict(load_safetensors(files["model.safetensors"]), strict=True)
    model.bundle_hash = manifest["hash"]
    return model.to(map_location).eval()
