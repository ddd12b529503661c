"""A small patch VQ tokenizer, the teacher this project trains itself (curriculum stage 0).

Each cell of the (1 + k) x h' x w' grid is one patch (the first frame's p_h x p_w, or p_t x p_h x p_w of
the later frames), embedded, mixed with its neighbours by a 3-d convolution, and quantized against an
l2-normalised codebook. It makes every stage runnable with no downloaded weights; it is not a substitute
for OmniTokenizer's quality.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from sweettok.config import PatchConfig, TeacherConfig
from sweettok.patchify import Patchify, Unpatchify
from sweettok.quantizer import Quantized, quantize_with
from sweettok.teacher.base import Teacher


class ConvMix(nn.Module):
    """Residual 3x3x3 convolution over the cell grid: (b, t', h', w', d) -> same."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.conv = nn.Conv3d(width, width, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        y = rearrange(F.gelu(self.norm(x)), "b t h w d -> b d t h w")
        return x + rearrange(self.conv(y), "b d t h w -> b t h w d")


class VQTeacher(Teacher):
    def __init__(self, patch: PatchConfig, config: TeacherConfig) -> None:
        super().__init__()
        self.patch, self.config = patch, config
        d = config.hidden
        self.patchify = Patchify(patch, d)
        self.enc = nn.Sequential(ConvMix(d), ConvMix(d))
        self.to_code = nn.Linear(d, config.code_dim)
        self.codes = nn.Parameter(torch.randn(config.codebook_size, config.code_dim))
        self.from_code = nn.Linear(config.code_dim, d)
        self.dec = nn.Sequential(ConvMix(d), ConvMix(d), nn.LayerNorm(d))
        self.unpatchify = Unpatchify(patch, d)
        if config.checkpoint is not None:
            self.load_state_dict(read_teacher_state(config.checkpoint), strict=True)

    @property
    def codebook(self) -> Tensor:
        return F.normalize(self.codes, dim=-1)

    def _latents(self, x: Tensor) -> Tensor:
        # x: (b, c, t, h, w) -> unit latents (b, t', h', w', code_dim)
        h, w = self.patch.grid
        v_s, v_t = self.patchify(x)
        cells = v_s[:, None] if v_t is None else torch.cat([v_s[:, None], v_t], dim=1)
        cells = rearrange(cells, "b t (h w) d -> b t h w d", h=h, w=w)
        return F.normalize(self.to_code(self.enc(cells)), dim=-1)

    def quantize(self, x: Tensor) -> Quantized:
        """Training path: straight-through quantized latents, ids and the commitment loss."""
        return quantize_with(self._latents(x), self.codebook, beta=0.25)

    def encode_codes(self, x: Tensor) -> Tensor:
        return self.quantize(x).ids

    def decode_embeddings(self, e: Tensor) -> Tensor:
        return self.unpatchify(self.dec(self.from_code(e)))

    def pixel_decoder_parameters(self) -> list[nn.Parameter]:
        """The ``decode_embeddings`` path (what stage 3 may fine-tune)."""
        return [*self.from_code.parameters(), *self.dec.parameters(), *self.unpatchify.parameters()]

    def autoencode(self, x: Tensor) -> tuple[Tensor, Quantized, Tensor]:
        """Stage 0: reconstruction (b, c, t, h, w), quantization result, unit latents (b, t', h', w', e)."""
        z = self._latents(x)
        q = quantize_with(z, self.codebook, beta=0.25)
        return self.decode_embeddings(q.z_q), q, z

    def forward(self, x: Tensor) -> tuple[Tensor, Quantized]:
        """Reconstruction and quantization result, for stage 0 training."""
        recon, q, _ = self.autoencode(x)
        return recon, q


def read_teacher_state(path: str) -> dict[str, Tensor]:
    """A trained VQ teacher's weights: its own state dict, a SweetTokenizer state dict (``teacher.*``) or a
    trainer checkpoint (``{"model": ...}``), as ``.safetensors`` or a torch file."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"teacher checkpoint not found: {path}")
    state: Any  # a file's top level: a state dict, or a trainer checkpoint holding one
    if str(path).endswith(".safetensors"):
        from safetensors.torch import load_file

        state = load_file(path)
    else:
        from sweettok.safe_load import load_torch_file

        state = load_torch_file(path)  # weights_only: never runs code from the file
    if isinstance(state.get("model"), dict):
        state = state["model"]
    if any(k.startswith("teacher.") for k in state):
        state = {k[len("teacher."):]: v for k, v in state.items() if k.startswith("teacher.")}
    return state


def build_teacher(patch: PatchConfig, config: TeacherConfig) -> Teacher:
    """The teacher named by ``config.kind``."""
    if config.kind == "vq":
        return VQTeacher(patch, config)
    if config.kind == "omnitokenizer":
        from sweettok.teacher.omnitokenizer import OmniTokenizerTeacher

        return OmniTokenizerTeacher(patch, config)
    raise ValueError(f"unknown teacher kind {config.kind!r}; expected 'vq' or 'omnitokenizer'")
