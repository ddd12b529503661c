"""The language quantizer: frozen LLM word embeddings, projected by a GCN, one codebook per branch.

Spatial ids index the codebook's nouns and adjectives, temporal ids its verbs and adverbs (paper eq. 3-4),
each branch searching only its own word subset. ``gcn_graph='per_branch'`` (the release, default) gives
each branch its own projector over the edges among that branch's words; ``'joint'`` runs one projector
over the whole graph (nouns joined to verbs). The frozen embeddings and the graph are non-persistent
buffers (they travel in ``codebook.safetensors``, not in the model's state dict); the GCN weights are
trained. In eval mode the projected codebook is computed once and cached until the weights, device or
dtype change; in train mode it is recomputed so gradients reach the GCN.
"""

from __future__ import annotations

import dataclasses
import json

import torch
from torch import Tensor

from sweettok.codebook.files import Codebook, read_codebook
from sweettok.codebook.gcn import GCNConfig, GCNProjector
from sweettok.codebook.graph import normalized_adjacency, subgraph
from sweettok.config import QuantizerConfig, TokenizerConfig
from sweettok.quantizer import BRANCHES, Branch, Quantizer


class LanguageQuantizer(Quantizer):
    def __init__(self, config: QuantizerConfig, codebook: Codebook | None = None) -> None:
        super().__init__()
        if codebook is None:
            if not config.codebook:
                raise ValueError("quantizer kind 'language' needs quantizer.codebook: the URI of a built codebook")
            codebook = read_codebook(config.codebook)
        for branch in BRANCHES:
            expected = getattr(config, f"{branch}_size")
            if expected != codebook.size(branch):
                raise ValueError(
                    f"quantizer.{branch}_size is {expected} but the codebook at {config.codebook} has "
                    f"{codebook.size(branch)} {branch} words; build the config with language_config()"
                )
        self.config = config
        self.codebook = codebook
        self._words = {b: codebook.words(b) for b in BRANCHES}
        n = codebook.embeddings.shape[0]
        self.spatial_index: Tensor
        self.temporal_index: Tensor
        self.register_buffer("spatial_index", codebook.index["spatial"].clone(), persistent=False)
        self.register_buffer("temporal_index", codebook.index["temporal"].clone(), persistent=False)
        gcn = GCNConfig(in_dim=codebook.embeddings.shape[1], out_dim=config.latent_dim, hidden=config.gcn_hidden)
        self.per_branch = config.gcn_graph == "per_branch"
        graphs = {branch: codebook.index[branch] for branch in BRANCHES} if self.per_branch else {"joint": None}
        self.projectors = torch.nn.ModuleDict()
        for name, keep in graphs.items():
            if keep is None:  # the whole graph, rows in entry order
                embeddings, (edges, weight), size = codebook.embeddings, (codebook.edges, codebook.edge_weight), n
            else:  # the branch's words, rows in token-id order
                embeddings, size = codebook.embeddings[keep], keep.numel()
                edges, weight = subgraph(codebook.edges, codebook.edge_weight, keep, n)
            adj_index, adj_value = normalized_adjacency(edges, weight, size)
            self.register_buffer(f"{name}_embeddings", embeddings.clone(), persistent=False)  # (V_b, D) frozen
            self.register_buffer(f"{name}_adj_index", adj_index, persistent=False)  # (2, nnz)
            self.register_buffer(f"{name}_adj_value", adj_value, persistent=False)  # (nnz,)
            self.projectors[name] = GCNProjector(gcn)
        self._cache: tuple[tuple, dict[str, Tensor]] | None = None

    # ---- codebook --------------------------------------------------------------------------------
    def size(self, branch: Branch) -> int:
        return len(self._words[branch])

    def _project(self, name: str) -> Tensor:
        """P(c) for the words of one graph (a branch, or ``joint``: every entry), (V_name, latent_dim)."""
        return self.projectors[name](
            getattr(self, f"{name}_embeddings"), getattr(self, f"{name}_adj_index"), getattr(self, f"{name}_adj_value")
        )

    def _branch_codes(self, branch: Branch) -> Tensor:
        if self.per_branch:
            return self._project(branch)
        index = self.spatial_index if branch == "spatial" else self.temporal_index
        return self._project("joint")[index]

    def _cache_key(self) -> tuple:
        params = tuple((id(p), p._version, p.dtype) for p in self.projectors.parameters())
        return (params, self.spatial_index.device)

    def codes(self, branch: Branch) -> Tensor:
        """The branch's projected codebook (L, latent_dim) in token-id order; cached while in eval mode."""
        if self.training:
            self._cache = None
            return self._branch_codes(branch)
        key = self._cache_key()
        if self._cache is None or self._cache[0] != key:
            with torch.inference_mode(False), torch.no_grad():
                self._cache = (key, {b: self._branch_codes(b) for b in BRANCHES})
        return self._cache[1][branch]

    def train(self, mode: bool = True) -> "LanguageQuantizer":
        self._cache = None
        return super().train(mode)

    def _apply(self, fn, recurse: bool = True):  # .to(), .cuda(), .half(): cached codes are stale
        self._cache = None
        return super()._apply(fn, recurse)

    # ---- words -----------------------------------------------------------------------------------
    def words(self, ids: Tensor, branch: Branch) -> list[list[str]]:
        """ids (b, n) -> the word of every id."""
        vocab = self._words[branch]
        return [[vocab[i] for i in row] for row in ids.tolist()]

    def word_ids(self, words: list[list[str]], branch: Branch) -> Tensor:
        """The inverse of ``words``: (b, n) ids; a word appears once per branch."""
        lookup = {w: i for i, w in enumerate(self._words[branch])}
        missing = sorted({w for row in words for w in row if w not in lookup})
        if missing:
            raise ValueError(f"not in the {branch} codebook: {missing[:5]}")
        return torch.tensor([[lookup[w] for w in row] for row in words], dtype=torch.int64)

    def bundle_files(self) -> dict[str, bytes]:
        """The codebook files, byte for byte, for ``save_bundle``."""
        return dict(self.codebook.raw)


def codebook_sizes(codebook_uri: str) -> dict[str, int]:
    """Branch sizes recorded in a codebook's metadata."""
    from sweettok import storage
    from sweettok.codebook.files import METADATA

    if not storage.exists(storage.join(codebook_uri, METADATA)):
        raise FileNotFoundError(f"{codebook_uri} holds no language codebook (no {METADATA})")
    return json.loads(storage.read_bytes(storage.join(codebook_uri, METADATA)))["sizes"]


def language_config(config: TokenizerConfig, codebook_uri: str) -> TokenizerConfig:
    """``config`` with the language quantizer: kind, codebook URI and branch sizes taken from the codebook."""
    sizes = codebook_sizes(codebook_uri)
    quantizer = dataclasses.replace(
        config.quantizer, kind="language", codebook=codebook_uri,
        spatial_size=sizes["spatial"], temporal_size=sizes["temporal"],
    )
    return dataclasses.replace(config, quantizer=quantizer)
