"""The teacher interface: proxy codes for stages 1-2 and a pixel decoder for stage 3.

A teacher maps a clip ``(b, c, t, h, w)`` to a grid of code ids ``(b, t', h', w')`` whose shape matches
the SweetTokenizer decoder canvas (``t' = 1 + (t - 1) / p_t``, ``h' = h / p_h``, ``w' = w / p_w``), and
maps code embeddings ``(b, t', h', w', e)`` back to pixels.
"""

from __future__ import annotations

from torch import Tensor, nn


class Teacher(nn.Module):
    """Interface every teacher implements. Teachers are frozen inside a SweetTokenizer."""

    @property
    def codebook(self) -> Tensor:
        """(codebook_size, code_dim)."""
        raise NotImplementedError

    def encode_codes(self, x: Tensor) -> Tensor:
        """Pixels (b, c, t, h, w) in [-0.5, 0.5] -> code ids (b, t', h', w')."""
        raise NotImplementedError

    def decode_embeddings(self, e: Tensor) -> Tensor:
        """Code embeddings (b, t', h', w', code_dim) -> pixels (b, c, t, h, w)."""
        raise NotImplementedError

    def decode_codes(self, ids: Tensor) -> Tensor:
        """Code ids (b, t', h', w') -> pixels."""
        return self.decode_embeddings(self.codebook[ids])
