"""Scoring clips with a tokenizer, in one process: the unit of work the eval actors (and the in-process
baseline) run. Plain PyTorch; no Ray here.

A clip goes in as uint8 frames ``(t, h, w, c)``; the scorer encodes and decodes it (or, with
``teacher_only``, runs the teacher on its own codes), and returns per-clip metrics and a ``Partial``: the
code histograms and Fréchet statistics of the batch, which add up exactly across batches and actors.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field

import numpy as np
import torch
from einops import rearrange

from sweettok import from_uint8, to_uint8
from sweettok.metrics import CodeCounts, FeatureStats, frame_psnr, frame_ssim, mean_colour
from sweettok_platform.core.tokenizer import EncodeConfig, load_tokenizer
from sweettok_platform.eval.metrics import METRICS


@dataclass
class Partial:
    """Sums over some clips, merged by ``+`` (in a fixed order, so reruns give the same float sums)."""

    codes: CodeCounts
    features: dict[str, FeatureStats] = field(default_factory=dict)  # "<metric>_real", "<metric>_fake"

    def __add__(self, other: "Partial") -> "Partial":
        return Partial(self.codes + other.codes, {k: v + other.features[k] for k, v in self.features.items()})

    def to_bytes(self) -> bytes:
        """Plain arrays in safetensors (no pickle crosses from the actors to the driver)."""
        from safetensors.numpy import save

        arrays = {f"codes/{k}": v for k, v in self.codes.counts.items()}
        for name, stats in self.features.items():
            arrays.update({f"features/{name}/count": np.array([stats.count], np.int64),
                           f"features/{name}/total": stats.total, f"features/{name}/outer": stats.outer})
        return save(arrays)

    @classmethod
    def from_bytes(cls, data: bytes) -> "Partial":
        from safetensors.numpy import load

        arrays = load(data)
        codes = CodeCounts({k.split("/", 1)[1]: v for k, v in arrays.items() if k.startswith("codes/")})
        names = {k.split("/")[1] for k in arrays if k.startswith("features/")}
        features = {n: FeatureStats(int(arrays[f"features/{n}/count"][0]), arrays[f"features/{n}/total"],
                                    arrays[f"features/{n}/outer"]) for n in sorted(names)}
        return cls(codes, features)


def local_weights(uri: str) -> str:
    """A local path for a weights file given as a path or ``s3://`` URI (remote files are cached in /tmp)."""
    from sweettok import storage

    if not storage.is_remote(uri):
        if not os.path.isfile(uri):
            raise FileNotFoundError(f"weights file not found: {uri}")
        return uri
    path = os.path.join(tempfile.gettempdir(), "sweettok-weights",
                        hashlib.sha256(uri.encode()).hexdigest()[:16] + "-" + uri.rsplit("/", 1)[-1])
    if not os.path.isfile(path):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        data = storage.read_bytes(uri)
        with open(path + ".part", "wb") as f:
            f.write(data)
        os.replace(path + ".part", path)
    return path


def file_sha256(uri: str) -> str:
    h = hashlib.sha256()
    with open(local_weights(uri), "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass(kw_only=True)
class ScorerConfig:
    """What a scorer needs: the tokenizer, the mode, and the weight files of the optional metrics."""

    bundle: str | None = None
    preset: str | None = None
    seed: int = 0
    teacher_only: bool = False
    batch_size: int = 8
    weights: dict[str, str] = field(default_factory=dict)  # metric weights setting -> uri (eval.metrics)
    threads: int | None = None  # torch threads on CPU (None: leave as is)


class ClipScorer:
    """Loads the tokenizer and the metric networks once; ``score(clips)`` -> (per-clip records, Partial)."""

    def __init__(self, config: ScorerConfig) -> None:
        self.config = config
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        if self.device == "cpu" and config.threads:
            torch.set_num_threads(config.threads)
        model = load_tokenizer(EncodeConfig(bundle=config.bundle, preset=config.preset, seed=config.seed))
        self.model = model.to(self.device).eval()
        self.nets = {m.name: m.load(local_weights(config.weights[m.setting])).to(self.device)
                     for m in METRICS.values() if config.weights.get(m.setting)}

    # ---- the tokenizer's view ----------------------------------------------------------------------
    def code_sizes(self) -> dict[str, int]:
        if self.config.teacher_only:
            return {"teacher": int(self.model.teacher.codebook.shape[0])}
        return {"spatial": self.model.quantizer.size("spatial"), "temporal": self.model.quantizer.size("temporal")}

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> tuple[dict[str, np.ndarray], torch.Tensor]:
        """Pixels (b, c, t, h, w) in [-0.5, 0.5] -> ({branch: ids (b, n)}, reconstruction uint8 (b, c, t, h, w))."""
        if self.config.teacher_only:
            codes = self.model.teacher.encode_codes(x)  # (b, t', h', w')
            pixels = self.model.teacher.decode_codes(codes)
            ids = {"teacher": codes.flatten(1).cpu().numpy()}
        else:
            tokens = self.model.encode(x)  # (b, N_s [+ N_t])
            pixels = self.model.decode_ids(tokens)
            n_s = self.model.num_spatial
            ids = {"spatial": tokens[:, :n_s].cpu().numpy(), "temporal": tokens[:, n_s:].cpu().numpy()}
        return ids, to_uint8(pixels)

    # ---- scoring -------------------------------------------------------------------------------------
    def empty(self) -> Partial:
        features = {f"{name}_{side}": FeatureStats.empty(net.dim) for name, net in self.nets.items()
                    if METRICS[name].frechet for side in ("real", "fake")}
        return Partial(CodeCounts.empty(self.code_sizes()), features)

    @torch.no_grad()
    def score_batch(self, frames: np.ndarray, partial: Partial) -> list[dict[str, float]]:
        """uint8 clips (b, t, h, w, c) of one shape -> per-clip metrics; adds the batch's sums to ``partial``."""
        real = rearrange(torch.from_numpy(frames).to(self.device), "b t h w c -> b c t h w")
        ids, fake = self.reconstruct(from_uint8(real))
        for branch, values in ids.items():
            partial.codes.add(branch, values)
        floor = mean_colour(real)
        out = {"psnr": frame_psnr(real, fake).mean(1), "ssim": frame_ssim(real, fake).mean(1),
               "floor_psnr": frame_psnr(real, floor).mean(1), "floor_ssim": frame_ssim(real, floor).mean(1)}
        for name, net in self.nets.items():
            metric = METRICS[name]
            if metric.per_clip is not None:
                out[name] = metric.per_clip(net, real, fake)
            if metric.features is not None:
                for side, clips in (("real", real), ("fake", fake)):
                    rows = metric.features(net, clips)
                    if rows is not None:
                        partial.features[f"{name}_{side}"].add(rows)
        return [{k: float(v[i]) for k, v in out.items()} for i in range(real.shape[0])]

    def score(self, clips: list[np.ndarray]) -> tuple[list[dict[str, float]], Partial]:
        """uint8 clips (t, h, w, c) -> per-clip metrics (in input order) and the sums; batched by shape."""
        partial = self.empty()
        records: list = [None] * len(clips)
        groups: dict[tuple, list[int]] = {}
        for i, clip in enumerate(clips):
            groups.setdefault(clip.shape, []).append(i)
        for shape in sorted(groups):
            indices = groups[shape]
            for k in range(0, len(indices), self.config.batch_size):
                chunk = indices[k : k + self.config.batch_size]
                batch = np.stack([clips[i] for i in chunk])
                for i, record in zip(chunk, self.score_batch(batch, partial)):
                    records[i] = record
        return records, partial
