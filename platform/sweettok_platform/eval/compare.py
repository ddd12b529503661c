"""``sweettok eval compare --real DIR --fake DIR``: score any tool's reconstructions against their originals, file
by file (TokenBench's ``--gtpath/--targetpath`` use), so another tokenizer's outputs are scored like SweetTok's.

Pairs are files at the same relative path below each root, the suffix aside (``a/b.avi`` pairs with
``a/b.mp4``, as ``sweettok reconstruct`` writes it); files on one side only are listed, not fatal. Videos are read
whole (in chunks of frames, so memory stays flat), images as one frame, ``.npy`` as uint8 (t, h, w, c).
``CONVENTIONS`` says how each number is computed and where it differs from TokenBench.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np
import torch

from sweettok import from_uint8, storage
from sweettok.metrics import FeatureStats, frame_psnr, frame_ssim, frechet_distance
from sweettok_platform.core.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES, ClipSpec, MediaError, is_image, resize_frames

SUFFIXES = VIDEO_SUFFIXES + IMAGE_SUFFIXES + (".npy",)
CHUNK = 32  # frames read and scored at a time
CONVENTIONS = {
    "pairs": "same relative path below --real and --fake with the file suffix dropped (TokenBench: same file name "
             "and --ext in one flat folder, equal counts asserted); unmatched files are listed",
    "size": "scored at the reconstruction's frame size: real frames of another size are resized to it first "
            "(antialiased bilinear squash, as the tokenizer's input is made; TokenBench asserts equal shapes); "
            "the first min(real, fake) frames are scored, a difference is recorded per file",
    "psnr": "per frame on 8-bit pixels, 10*log10(255^2/MSE) over h, w, c, capped at 100 dB, averaged over a file's "
            "frames, then over files (as sweettok eval)",
    "psnr_video": "TokenBench's PSNR: one MSE over all of a file's frames, 20*log10(255/(sqrt(MSE)+eps32)); "
                  "averaged over files",
    "ssim": "per frame, Wang et al. 2004: 11x11 Gaussian window (sigma 1.5), K1=0.01, K2=0.03, L=255, population "
            "statistics, valid positions, per channel; averaged over channels, frames, files (TokenBench calls "
            "scikit-image's default: a 7x7 uniform window with sample covariance, which gives other values)",
    "lpips": "LPIPS v0.1 with the given torchvision VGG16 weights, per frame at the scored size, [-1, 1] input, "
             "averaged over frames then files (as TokenBench)",
    "fvd": "Frechet distance of I3D 400-d logits, one feature per file from its first up to 300 frames (as "
           "TokenBench's max_n_frame), each resized as in rFVD (short side 224, centre crop, [-1, 1]); unbiased "
           "covariance",
    "summary": "each metric's mean over the scored files (every file weighs the same, as TokenBench)",
}
FVD_FRAMES = 300


@dataclass(kw_only=True)
class CompareConfig:
    """Two folders (local or ``s3://``) and the weights of the optional metrics."""

    real: str
    fake: str
    lpips_vgg: str | None = None
    i3d: str | None = None
    limit: int | None = None  # at most this many pairs (sorted by path)
    progress: bool = True


def media_key(relative: str) -> str:
    """``a/b.avi`` -> ``a/b``: the name both sides of a pair share."""
    return os.path.splitext(relative)[0]


def list_media(root: str) -> dict[str, str]:
    """{key: uri} of every video, image and .npy under ``root``; a key found twice keeps the first (sorted)."""
    files: dict[str, str] = {}
    for uri in storage.list_files(root, SUFFIXES):
        files.setdefault(media_key(storage.relative(uri, root)), uri)
    return files


def read_chunks(uri: str, chunk: int = CHUNK) -> Iterator[np.ndarray]:
    """uint8 frames (k, h, w, 3) of a video, image or .npy file, ``chunk`` frames at a time."""
    data: Any = storage.read_bytes(uri) if storage.is_remote(uri) else uri
    lower = uri.lower()
    if lower.endswith(".npy"):
        frames = np.load(io.BytesIO(data) if isinstance(data, bytes) else data, mmap_mode=None, allow_pickle=False)
        if frames.dtype != np.uint8 or frames.ndim not in (3, 4) or frames.shape[-1] != 3:
            raise MediaError(f"expected uint8 frames (t, h, w, 3) in the .npy, got {frames.dtype} {frames.shape}")
        frames = frames[None] if frames.ndim == 3 else frames
        for i in range(0, len(frames), chunk):
            yield np.ascontiguousarray(frames[i : i + chunk])
        return
    if is_image(lower):
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as im:
                yield np.asarray(im.convert("RGB"))[None]
        except (UnidentifiedImageError, OSError) as e:
            raise MediaError(f"cannot decode image: {e}") from e
        return
    import decord

    try:
        reader = decord.VideoReader(io.BytesIO(data) if isinstance(data, bytes) else data, num_threads=1)
        count = len(reader)
    except (decord.DECORDError, RuntimeError, OSError) as e:
        raise MediaError(f"cannot decode video: {str(e).splitlines()[0][:200]}") from e
    for i in range(0, count, chunk):
        try:
            yield reader.get_batch(list(range(i, min(i + chunk, count)))).asnumpy()
        except (decord.DECORDError, RuntimeError) as e:
            raise MediaError(f"cannot decode frames {i}..{min(i + chunk, count) - 1}: {str(e)[:200]}") from e


class PairScorer:
    """Scores one (real, fake) pair; holds the LPIPS and I3D networks and the FVD sums."""

    def __init__(self, config: CompareConfig) -> None:
        from sweettok_platform.eval.scorer import local_weights

        self.lpips = self.i3d = None
        if config.lpips_vgg:
            from sweettok.metrics.lpips_vgg import load_lpips

            self.lpips = load_lpips(local_weights(config.lpips_vgg)).eval()
        if config.i3d:
            from sweettok.metrics.i3d import load_i3d

            self.i3d = load_i3d(local_weights(config.i3d))
            self.fvd_real, self.fvd_fake = FeatureStats.empty(self.i3d.dim), FeatureStats.empty(self.i3d.dim)

    @torch.no_grad()
    def score(self, real_uri: str, fake_uri: str) -> dict[str, Any]:
        """Per-file metrics of one pair (see ``CONVENTIONS``)."""
        psnr, ssim, lpips, sq_err, values = [], [], [], 0.0, 0
        keep_real, keep_fake = [], []  # the first FVD_FRAMES frames, for the I3D
        real_frames = fake_frames = 0
        sizes: tuple = ()
        fakes = read_chunks(fake_uri)
        pending: np.ndarray | None = None
        for real in read_chunks(real_uri):
            real_frames += len(real)
            while len(real):
                if pending is None or not len(pending):
                    pending = next(fakes, None)
                    if pending is None:
                        break
                    fake_frames += len(pending)
                n = min(len(real), len(pending))
                r, f, real, pending = real[:n], pending[:n], real[n:], pending[n:]
                sizes = (r.shape[1:3], f.shape[1:3])
                if r.shape[1:3] != f.shape[1:3]:
                    r = resize_frames(r, ClipSpec(frames=n, height=f.shape[1], width=f.shape[2]))
                rt = torch.from_numpy(r).permute(0, 3, 1, 2)  # (n, c, h, w) uint8
                ft = torch.from_numpy(np.ascontiguousarray(f)).permute(0, 3, 1, 2)
                psnr.append(frame_psnr(rt, ft))
                ssim.append(frame_ssim(rt, ft))
                sq_err += float(((rt.double() - ft.double()) ** 2).sum())
                values += rt.numel()
                if self.lpips is not None:
                    lpips.append(self.lpips(from_uint8(rt), from_uint8(ft)).double().flatten())  # per frame
                if self.i3d is not None and sum(map(len, keep_real)) < FVD_FRAMES:
                    room = FVD_FRAMES - sum(map(len, keep_real))
                    keep_real.append(rt[:room])
                    keep_fake.append(ft[:room])
        fake_frames += sum(len(c) for c in fakes) + (len(pending) if pending is not None else 0)
        if not psnr:
            raise MediaError("no frames to compare")
        mse = sq_err / values
        record: dict[str, Any] = {
            "frames": int(sum(len(p) for p in psnr)),
            "psnr": float(torch.cat(psnr).mean()),
            "psnr_video": float(20 * np.log10(255.0 / (np.sqrt(mse) + np.finfo(np.float32).eps))),
            "ssim": float(torch.cat(ssim).mean()),
        }
        if lpips:
            record["lpips"] = float(torch.cat(lpips).mean())
        if real_frames != fake_frames:
            record["frame_counts"] = {"real": real_frames, "fake": fake_frames}
        if sizes and sizes[0] != sizes[1]:
            record["resized_from"] = list(sizes[0])
        if self.i3d is not None:
            clip_real = torch.cat(keep_real).permute(1, 0, 2, 3)[None]  # (1, c, t, h, w)
            if clip_real.shape[2] >= self.i3d.min_frames:
                self.fvd_real.add(self.i3d(clip_real))
                self.fvd_fake.add(self.i3d(torch.cat(keep_fake).permute(1, 0, 2, 3)[None]))
            else:
                record["fvd_note"] = (f"{clip_real.shape[2]} frames: the {self.i3d.layout} I3D needs "
                                      f"{self.i3d.min_frames}")
        return record


def compare_dirs(config: CompareConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """{"files" (per pair), "summary", "pairs", "unmatched_real", "unmatched_fake", "errors", "conventions",
    "weights"}; unreadable files are errors, the run goes on."""
    from sweettok_platform.eval.scorer import file_sha256

    real, fake = list_media(config.real), list_media(config.fake)
    keys = sorted(real.keys() & fake.keys())[: config.limit]
    if not keys:
        raise FileNotFoundError(f"no file of {config.fake} has a counterpart in {config.real} (pairs share their "
                                "relative path, the suffix aside)")
    log(f"compare: {len(keys)} pairs; {len(real.keys() - fake.keys())} real and {len(fake.keys() - real.keys())} "
        "fake files without a counterpart")
    scorer = PairScorer(config)
    files, errors = [], []
    pairs: Any = keys
    if config.progress:
        from tqdm import tqdm

        pairs = tqdm(keys, desc="compare", unit="file", dynamic_ncols=True)
    for key in pairs:
        try:
            files.append({"path": key, "real": real[key], "fake": fake[key], **scorer.score(real[key], fake[key])})
        except (MediaError, OSError, RuntimeError, ValueError) as e:
            errors.append({"path": key, "real": real[key], "fake": fake[key], "reason": str(e).splitlines()[0][:300]})
    summary: dict[str, Any] = {"files": len(files), "errors": len(errors)}
    for metric in ("psnr", "psnr_video", "ssim", "lpips"):
        scores = [f[metric] for f in files if metric in f]
        if scores:
            summary[metric] = round(float(np.mean(scores)), 6)
    notes = {}
    if scorer.i3d is not None:
        if scorer.fvd_real.count >= 2:
            summary["fvd"] = round(frechet_distance(scorer.fvd_real, scorer.fvd_fake), 4)
        else:
            notes["fvd"] = f"FVD needs at least 2 videos, {scorer.fvd_real.count} had enough frames"
    else:
        notes["fvd"] = "no I3D weights given (--i3d): FVD left out"
    if scorer.lpips is None:
        notes["lpips"] = "no VGG16 weights given (--lpips-vgg): LPIPS left out"
    weights = {k: {"uri": v, "sha256": file_sha256(v)} for k, v in (("lpips_vgg", config.lpips_vgg),
                                                                    ("i3d", config.i3d)) if v}
    return {"summary": summary, "files": files, "errors": errors,
            "unmatched_real": sorted(real[k] for k in real.keys() - fake.keys()),
            "unmatched_fake": sorted(fake[k] for k in fake.keys() - real.keys()),
            "notes": notes, "conventions": CONVENTIONS, "weights": weights}
