"""The codebook on disk (a local directory or ``s3://`` prefix).

- ``codebook.safetensors``: ``embeddings`` (V, D) float32 frozen word embeddings, ``edges`` (E, 2) int64,
  ``edge_weight`` (E,) float32, ``spatial_index`` / ``temporal_index``: entry indices of each branch in
  token-id order.
- ``vocab.json``: one ``{word, pos, frequency}`` per entry, entries in the same order as ``embeddings``.
- ``codebook.json``: metadata (sizes, sources, settings) and ``hash``, the sha256 content hash of the two
  files above (same inputs give the same bytes, so the same hash).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors
from torch import Tensor

from sweettok import storage
from sweettok.codebook.vocab import Vocabulary
from sweettok.hashing import content_hash

TENSORS, VOCAB, METADATA = "codebook.safetensors", "vocab.json", "codebook.json"
FORMAT = "sweettok-language-codebook/1"


@dataclass
class Codebook:
    """A loaded codebook; ``raw`` keeps the exact file bytes so bundles copy them unchanged."""

    vocab: Vocabulary
    embeddings: Tensor
    edges: Tensor
    edge_weight: Tensor
    index: dict[str, Tensor]
    metadata: dict[str, Any]
    raw: dict[str, bytes] = field(default_factory=dict)

    def size(self, branch: str) -> int:
        return int(self.index[branch].numel())

    def words(self, branch: str) -> list[str]:
        return [self.vocab.entries[i].word for i in self.index[branch].tolist()]


def encode_files(vocab: Vocabulary, embeddings: Tensor, edges: Tensor, weights: Tensor, metadata: dict) -> dict[str, bytes]:
    """Serialize a codebook; ``metadata`` gains the sizes, the format and the content hash."""
    index = {b: torch.tensor(vocab.branch(b), dtype=torch.int64) for b in ("spatial", "temporal")}
    tensors = {
        "embeddings": embeddings.float().contiguous(),
        "edges": edges.to(torch.int64).contiguous(),
        "edge_weight": weights.float().contiguous(),
        "spatial_index": index["spatial"],
        "temporal_index": index["temporal"],
    }
    files = {TENSORS: save_safetensors(tensors), VOCAB: vocab.to_json()}
    meta = {
        "format": FORMAT,
        "hash": content_hash(files),
        "sizes": {"spatial": len(index["spatial"]), "temporal": len(index["temporal"]), **vocab.counts()},
        "embedding_dim": int(embeddings.shape[1]),
        "edges": int(edges.shape[0]),
        **metadata,
    }
    files[METADATA] = json.dumps(meta, indent=2, sort_keys=True).encode()
    return files


def write_codebook(files: dict[str, bytes], uri: str) -> None:
    for name, data in files.items():
        storage.write_bytes(storage.join(uri, name), data)


def read_codebook(uri: str) -> Codebook:
    """Load the codebook files at ``uri`` (directory, bundle or ``s3://`` prefix)."""
    if not storage.exists(storage.join(uri, TENSORS)):
        raise FileNotFoundError(f"{uri} holds no language codebook (no {TENSORS}); build one with `sweettok codebook build`")
    raw = {name: storage.read_bytes(storage.join(uri, name)) for name in (TENSORS, VOCAB, METADATA)}
    return parse_codebook(raw, uri)


def parse_codebook(raw: dict[str, bytes], uri: str) -> Codebook:
    """A codebook from its files' bytes (e.g. the verified bytes of a bundle); ``uri`` names it in errors."""
    tensors = load_safetensors(raw[TENSORS])
    vocab = Vocabulary.from_json(raw[VOCAB])
    metadata = json.loads(raw[METADATA])
    if len(vocab.entries) != tensors["embeddings"].shape[0]:
        raise ValueError(f"{uri}: vocab.json has {len(vocab.entries)} words but {tensors['embeddings'].shape[0]} embeddings")
    return Codebook(
        vocab=vocab,
        embeddings=tensors["embeddings"],
        edges=tensors["edges"],
        edge_weight=tensors["edge_weight"],
        index={"spatial": tensors["spatial_index"], "temporal": tensors["temporal_index"]},
        metadata=metadata,
        raw=raw,
    )
