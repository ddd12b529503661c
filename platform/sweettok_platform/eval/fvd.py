"""``sweettok eval fvd``: the Fréchet video distance between two directories of videos (e.g. generated
clips against real ones: gFVD), with the same I3D features and conventions as rFVD."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from sweettok import storage
from sweettok.metrics import FeatureStats, frechet_distance
from sweettok_platform.core.media import VIDEO_SUFFIXES
from sweettok_platform.core.media import ClipSpec, MediaError, read_clips_uri


@dataclass(kw_only=True)
class FVDConfig:
    """Two video sets and how to cut one clip from each video (``frames`` centred, squashed to
    ``resolution``^2, as the SweetTok evaluation's ``fvd_external.py`` loads them)."""

    real: str
    fake: str
    i3d: str | None = None
    frames: int = 17
    resolution: int = 256
    limit: int | None = None  # at most this many videos per side (sorted by name)
    batch_size: int = 4


def video_files(root: str, limit: int | None) -> list[str]:
    files = storage.list_files(root, VIDEO_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"{root}: no video files ({'/'.join(VIDEO_SUFFIXES)})")
    return files[:limit] if limit is not None else files


def set_features(files: list[str], spec: ClipSpec, i3d, batch_size: int) -> tuple[FeatureStats, list[dict]]:
    stats, errors, batch = FeatureStats.empty(i3d.dim), [], []

    def flush() -> None:
        if batch:
            x = torch.from_numpy(np.stack(batch)).permute(0, 4, 1, 2, 3)  # (b, c, t, h, w) uint8
            stats.add(i3d(x))
            batch.clear()

    for uri in files:
        try:
            batch.append(read_clips_uri(uri, spec)[0].frames)
        except MediaError as e:
            errors.append({"uri": uri, "reason": str(e)})
        if len(batch) == batch_size:
            flush()
    flush()
    return stats, errors


def fvd_dirs(config: FVDConfig) -> dict:
    """{"fvd", "real", "fake" (video counts), "errors", "conventions", "weights"}."""
    from sweettok.metrics.i3d import load_i3d
    from sweettok_platform.eval.conventions import CONVENTIONS
    from sweettok_platform.eval.scorer import file_sha256, local_weights

    if config.i3d is None:
        raise ValueError("fvd needs weights: set i3d (--i3d PATH_OR_URI: i3d_torchscript.pt or i3d_pretrained_400.pt)")
    try:
        i3d = load_i3d(local_weights(config.i3d))
    except ValueError as e:
        raise ValueError(f"i3d: {e}") from e
    if config.frames < i3d.min_frames:
        raise ValueError(f"i3d: the {i3d.layout} I3D needs at least {i3d.min_frames} frames, frames={config.frames}")
    spec = ClipSpec(frames=config.frames, height=config.resolution, width=config.resolution, policy="center")
    real, real_errors = set_features(video_files(config.real, config.limit), spec, i3d, config.batch_size)
    fake, fake_errors = set_features(video_files(config.fake, config.limit), spec, i3d, config.batch_size)
    return {"fvd": round(frechet_distance(real, fake), 4), "real": real.count, "fake": fake.count,
            "errors": real_errors + fake_errors, "i3d_layout": i3d.layout,
            "conventions": {"fvd": f"one centred {config.frames}-frame clip per video, squashed to "
                                   f"{config.resolution}x{config.resolution}; then " + CONVENTIONS["rfvd"].split(": ", 1)[1]},
            "weights": {"i3d": {"uri": config.i3d, "sha256": file_sha256(config.i3d)}}}
