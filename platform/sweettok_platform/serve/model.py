"""The model deployment: one tokenizer per replica; concurrent requests batched with ``@serve.batch``.

Requests of one kind (image or video clips; encode or decode) are queued together and run as one model
call: the clips of several requests are concatenated, encoded (or decoded) at once and split back.
Requests are validated one by one before they join a batch, so one bad request never fails the others.
Inputs and outputs are uint8 / int32 numpy arrays (small to pickle between replicas).
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from typing import Any

import numpy as np
import torch
from ray import serve

from sweettok import ClipError, SweetTokenizer, from_uint8, to_uint8
from sweettok_platform.core.tokenizer import build_tokenizer
from sweettok_platform.serve.config import ServeConfig


def load_tokenizer(config: ServeConfig) -> SweetTokenizer:
    """The bundle, or the preset initialised with ``config.seed`` (in eval mode), as every job loads it."""
    return build_tokenizer(config.bundle or None, config.preset, config.seed)


def tokenizer_name(model: SweetTokenizer, config: ServeConfig) -> str:
    return getattr(model, "bundle_hash", None) or f"preset:{model.config.preset}:seed{config.seed}"


def clips_in(items: list[np.ndarray]) -> int:
    """Batch size of a list of requests, counted in clips (rows), for ``@serve.batch``."""
    return sum(len(x) for x in items)


@serve.deployment(name="TokenizerModel")
class TokenizerModel:
    """Encode uint8 clips (n, t, h, w, c) -> int32 ids (n, N); decode ids -> uint8 frames (n, t, h, w, c)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = ServeConfig.from_dict(config)
        torch.set_num_threads(self.config.torch_threads)
        self.device = torch.device(
            "cuda" if self.config.num_gpus > 0 and torch.cuda.is_available() else "cpu"
        )
        self.model = load_tokenizer(self.config).to(self.device)
        self.batched = {
            ("encode", "video"): self._encode_video, ("encode", "image"): self._encode_image,
            ("decode", "video"): self._decode_video, ("decode", "image"): self._decode_image,
        }
        for method in self.batched.values():
            method.set_max_batch_size(self.config.max_batch_size)
            method.set_batch_wait_timeout_s(self.config.batch_wait_timeout_s)
        self.counts: Counter = Counter()
        self._lock = threading.Lock()  # one model call at a time per replica, batched or not

    def info(self) -> dict[str, Any]:
        m, q = self.model, self.model.quantizer
        p = m.config.patch
        return {
            "tokenizer": tokenizer_name(m, self.config),
            "revision": self.config.revision,
            "bundle_hash": getattr(m, "bundle_hash", None),
            "preset": m.config.preset,
            "layout": {"spatial": m.num_spatial, "temporal": m.num_temporal},
            "codebook_size": {"spatial": q.size("spatial"), "temporal": q.size("temporal")},
            "clip": {"frames": p.frames, "height": p.height, "width": p.width},
            "batching": self.config.batching,
            "max_batch_size": self.config.max_batch_size,
            "device": str(self.device),
        }

    def stats(self) -> dict[str, int]:
        """Model calls and clips per operation since start (mean batch = clips / calls)."""
        return dict(self.counts)

    # ---- public entry points (called through the deployment handle) -------------------------
    async def encode(self, frames: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        """Ids, and the ``tag`` of the tokenizer that made them (its name and deploy revision)."""
        return await self._run("encode", frames), self.tag

    async def decode(self, ids: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        """Frames, and the ``tag`` of the tokenizer that made them."""
        return await self._run("decode", ids), self.tag

    @property
    def tag(self) -> dict[str, Any]:
        return {"tokenizer": tokenizer_name(self.model, self.config), "revision": self.config.revision}

    async def words(self, ids: np.ndarray) -> list[list[str]]:
        return self.model.ids_to_words(torch.tensor(ids, dtype=torch.long))

    async def _run(self, op: str, x: np.ndarray) -> np.ndarray:
        kind = self._check(op, x)
        if not self.config.batching or len(x) > self.config.max_batch_size:
            return (await asyncio.to_thread(self._compute, op, [x]))[0]
        return await self.batched[(op, kind)](x)

    def _check(self, op: str, x: np.ndarray) -> str:
        """Validate one request before it may join a batch; returns its kind."""
        if op == "decode":
            spatial, _ = self.model.split_ids(torch.tensor(x))  # ClipError on bad length / range
            return "image" if x.shape[1] == spatial.shape[1] else "video"
        p = self.model.config.patch
        if x.dtype != np.uint8 or x.ndim != 5 or x.shape[1] not in (1, p.frames) or x.shape[2:] != (p.height, p.width, 3):
            raise ClipError(f"expected uint8 clips (n, 1 or {p.frames}, {p.height}, {p.width}, 3), got {x.dtype} {x.shape}")
        return "image" if x.shape[1] == 1 else "video"

    # ---- the model calls ----------------------------------------------------------------------
    def _compute(self, op: str, items: list[np.ndarray]) -> list[np.ndarray]:
        """One model call over the concatenated items; the result split back per item."""
        x = torch.from_numpy(np.concatenate(items)).to(self.device)
        with self._lock, torch.inference_mode():
            self.counts[f"{op}_calls"] += 1
            self.counts[f"{op}_clips"] += len(x)
            if op == "encode":
                out = self.model.encode(from_uint8(x)).to(torch.int32).cpu().numpy()  # (b, N)
            else:
                pixels = self.model.decode_ids(x.long())  # (b, c, t, h, w)
                out = to_uint8(pixels).permute(0, 2, 3, 4, 1).cpu().numpy()  # (b, t, h, w, c)
        bounds = np.cumsum([len(i) for i in items])[:-1]
        return np.split(out, bounds)

    async def _batch(self, op: str, items: list[np.ndarray]) -> list[np.ndarray]:
        return await asyncio.to_thread(self._compute, op, items)

    @serve.batch(max_batch_size=16, batch_size_fn=clips_in)
    async def _encode_video(self, items: list[np.ndarray]) -> list[np.ndarray]:
        return await self._batch("encode", items)

    @serve.batch(max_batch_size=16, batch_size_fn=clips_in)
    async def _encode_image(self, items: list[np.ndarray]) -> list[np.ndarray]:
        return await self._batch("encode", items)

    @serve.batch(max_batch_size=16, batch_size_fn=clips_in)
    async def _decode_video(self, items: list[np.ndarray]) -> list[np.ndarray]:
        return await self._batch("decode", items)

    @serve.batch(max_batch_size=16, batch_size_fn=clips_in)
    async def _decode_image(self, items: list[np.ndarray]) -> list[np.ndarray]:
        return await self._batch("decode", items)
