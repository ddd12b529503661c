"""SweetTokenizer: the public tokenizer interface.

``encode(x) -> ids`` in the canonical layout ``[N_s spatial | N_t temporal]`` (row-major, one id per
query; images carry only the N_s spatial ids), ``decode_ids(ids) -> pixels``, ``forward`` for training,
``ids_to_words`` for reading tokens as words. Pixels are floats in [-0.5, 0.5], ``b c t h w`` (or
``b t h w c`` on input).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from sweettok.config import TokenizerConfig
from sweettok.decoder import CodeHead, build_decoder
from sweettok.encoder import Encoder
from sweettok.flat import FlatDecoder, FlatEncoder
from sweettok.patchify import ClipError, to_bcthw
from sweettok.codebook.quantizer import LanguageQuantizer
from sweettok.config import QuantizerConfig
from sweettok.quantizer import Branch, LearnedQuantizer, Quantizer
from sweettok.teacher import Teacher, build_teacher


QUANTIZERS: dict[str, type[Quantizer]] = {"learned": LearnedQuantizer, "language": LanguageQuantizer}


def build_quantizer(config: QuantizerConfig) -> Quantizer:
    """The quantizer named by ``config.kind``."""
    if config.kind not in QUANTIZERS:
        raise ValueError(f"unknown quantizer kind {config.kind!r}; expected one of {sorted(QUANTIZERS)}")
    return QUANTIZERS[config.kind](config)


@dataclass
class Latents:
    """Quantized latents and ids of a batch; ``*_t`` are None for images."""

    zq_s: Tensor  # (b, N_s, l)
    zq_t: Tensor | None  # (b, N_t, l)
    ids: Tensor  # (b, N_s [+ N_t])
    vq_loss: Tensor


@dataclass
class TokenizerOutput:
    """What the training losses need."""

    logits: Tensor  # (b, t', h', w', teacher codebook size)
    latents: Latents
    pixels: Tensor | None  # (b, c, t, h, w) when asked for (stage 3)


class SweetTokenizer(nn.Module):
    quantizer: Quantizer
    teacher: Teacher

    def __init__(
        self, config: TokenizerConfig, quantizer: Quantizer | None = None, teacher: Teacher | None = None,
        *, weights_follow: bool = False,
    ) -> None:
        """``weights_follow``: the caller loads a full state dict next (a bundle or checkpoint), so a
        pretrained teacher may be built without its checkpoint."""
        super().__init__()
        t = config.teacher
        if t.kind == "omnitokenizer" and t.checkpoint is None and teacher is None and not weights_follow:
            raise ValueError(
                "teacher.kind 'omnitokenizer' needs teacher.checkpoint (the OmniTokenizer release checkpoint); "
                "for the ablation with this project's VQ teacher set teacher.kind='vq' (see PAPER_ABLATION)"
            )
        self.config = config
        q = config.quantizer
        flat = config.architecture == "flat"
        encoder = FlatEncoder if flat else Encoder
        self.encoder = encoder(config.patch, config.encoder, config.spatial_queries, q.latent_dim)
        self.quantizer = quantizer if quantizer is not None else build_quantizer(q)
        args = (config.patch, config.decoder, config.spatial_queries, q.latent_dim)
        self.decoder = FlatDecoder(*args) if flat else build_decoder(*args)
        self.head = CodeHead(config.decoder.width, config.teacher.codebook_size)
        self.teacher = teacher if teacher is not None else build_teacher(config.patch, config.teacher)
        self.teacher.requires_grad_(False)

    # ---- token layout -------------------------------------------------------------------------
    @property
    def num_spatial(self) -> int:
        return self.config.spatial_queries

    @property
    def num_temporal(self) -> int:
        return self.config.temporal_queries

    def split_ids(self, ids: Tensor) -> tuple[Tensor, Tensor | None]:
        """Canonical ids (b, N_s [+ N_t]) -> spatial (b, N_s), temporal (b, N_t) or None; validated."""
        if not isinstance(ids, Tensor) or ids.ndim != 2:
            raise ClipError(f"expected ids of shape (batch, tokens), got {getattr(ids, 'shape', type(ids))}")
        if ids.dtype.is_floating_point or ids.dtype == torch.bool:
            raise ClipError(f"expected integer ids, got dtype {ids.dtype}")
        n = ids.shape[1]
        if n not in (self.num_spatial, self.num_spatial + self.num_temporal):
            raise ClipError(
                f"expected {self.num_spatial} (image) or {self.num_spatial + self.num_temporal} (video) ids "
                f"per row, got {n}"
            )
        spatial, temporal = ids[:, : self.num_spatial], ids[:, self.num_spatial :]
        parts: tuple[tuple[Branch, Tensor], ...] = (("spatial", spatial), ("temporal", temporal))
        for name, part in parts:
            size = self.quantizer.size(name)
            if part.numel() and (part.min() < 0 or part.max() >= size):
                raise ClipError(
                    f"{name} ids out of range: got [{int(part.min())}, {int(part.max())}], codebook has {size}"
                )
        return spatial.long(), (temporal.long() if temporal.shape[1] else None)

    # ---- encode -------------------------------------------------------------------------------
    def quantize(self, x: Tensor) -> Latents:
        """Pixels -> quantized latents and ids (training and inference share this path)."""
        z_s, z_t = self.encoder(to_bcthw(x, self.config.patch))
        qs = self.quantizer.quantize(z_s, "spatial")
        if z_t is None:
            return Latents(zq_s=qs.z_q, zq_t=None, ids=qs.ids, vq_loss=qs.loss)
        qt = self.quantizer.quantize(z_t, "temporal")
        return Latents(
            zq_s=qs.z_q, zq_t=qt.z_q, ids=torch.cat([qs.ids, qt.ids], dim=1), vq_loss=qs.loss + qt.loss
        )

    @torch.no_grad()
    def encode(self, x: Tensor) -> Tensor:
        """Pixels (b t h w c or b c t h w; t = 1 for images) -> ids (b, N_s [+ N_t])."""
        return self.quantize(x).ids

    # ---- decode -------------------------------------------------------------------------------
    def code_logits(self, zq_s: Tensor, zq_t: Tensor | None) -> Tensor:
        """Quantized latents -> teacher-code logits (b, t', h', w', v)."""
        return self.head(self.decoder(zq_s, zq_t))

    def logits_to_pixels(self, logits: Tensor) -> Tensor:
        """softmax(logits) x teacher codebook -> teacher pixel decoder (the stage-3 path)."""
        embeddings = logits.softmax(-1) @ self.teacher.codebook.to(logits.dtype)
        return self.teacher.decode_embeddings(embeddings)

    def decode(self, zq_s: Tensor, zq_t: Tensor | None = None) -> Tensor:
        """Quantized latents -> pixels (b, c, t, h, w)."""
        return self.logits_to_pixels(self.code_logits(zq_s, zq_t))

    @torch.no_grad()
    def decode_ids(self, ids: Tensor) -> Tensor:
        """Canonical ids (b, N_s [+ N_t]) -> pixels (b, c, t, h, w), t = 1 for spatial-only ids."""
        spatial, temporal = self.split_ids(ids)
        zq_s = self.quantizer.embed(spatial, "spatial")
        zq_t = None if temporal is None else self.quantizer.embed(temporal, "temporal")
        return self.decode(zq_s, zq_t)

    # ---- training -----------------------------------------------------------------------------
    def forward(self, x: Tensor, pixels: bool = False) -> TokenizerOutput:
        latents = self.quantize(x)
        logits = self.code_logits(latents.zq_s, latents.zq_t)
        return TokenizerOutput(
            logits=logits, latents=latents, pixels=self.logits_to_pixels(logits) if pixels else None
        )

    # ---- words --------------------------------------------------------------------------------
    def ids_to_words(self, ids: Tensor) -> list[list[str]]:
        """Canonical ids -> one word per token (spatial words, then temporal words)."""
        spatial, temporal = self.split_ids(ids)
        words = self.quantizer.words(spatial, "spatial")
        if temporal is not None:
            words = [s + t for s, t in zip(words, self.quantizer.words(temporal, "temporal"))]
        return words
