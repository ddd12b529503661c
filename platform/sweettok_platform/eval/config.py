"""The settings of one evaluation job (``sweettok eval``), as a keyword-only dataclass."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sweettok.typed import build
from sweettok_platform.data.sources import SourceConfig
from sweettok_platform.media import ClipSpec

# metric -> the weights setting it needs
WEIGHTED_METRICS = {"lpips": "lpips_vgg", "rfvd": "i3d", "rfid": "inception"}


@dataclass(kw_only=True)
class EvalConfig:
    """One evaluation: a tokenizer (``bundle`` or ``preset``), a source, clip policy and an output directory.

    ``clips`` frames/height/width are taken from the tokenizer's geometry; its policy, stride and resize
    are the tokenize ones. ``metrics`` names metrics that must be computed (``lpips``, ``rfvd``, ``rfid``):
    a named metric without its weights is an error before any work. Any metric whose weights are given is
    computed; without weights it is left out of ``eval.json`` with a note.
    """

    source: SourceConfig
    output: str
    bundle: str | None = None  # tokenizer bundle (local or s3://); neither: the shipped bundle
    preset: str | None = None  # or an untrained preset (for trying the pipeline)
    seed: int = 0  # initialisation seed for ``preset``
    clips: ClipSpec = field(default_factory=ClipSpec)
    teacher_only: bool = False  # score the bundle's teacher alone (its own codes)
    metrics: list[str] = field(default_factory=list)  # weighted metrics that must run
    lpips_vgg: str | None = None  # torchvision-format VGG16 state dict (LPIPS trunk)
    i3d: str | None = None  # i3d_torchscript.pt (StyleGAN-V) or i3d_pretrained_400.pt (VideoGPT)
    inception: str | None = None  # pt_inception-2015-12-05-*.pth (pytorch-fid)
    actors: int = 1  # scoring actors
    batch_size: int = 8  # clips per forward pass
    num_gpus: float | None = None  # per actor; None: 1 when the cluster has GPUs
    num_cpus: float = 1.0  # per CPU actor (also its torch threads)
    files_per_shard: int = 4
    decode_timeout_s: float | None = 120.0  # per file; None decodes in the task's own process
    decode_concurrency: int | None = None
    in_process: bool = False  # score in this process, no Ray (the benchmark's baseline)
    strips: bool = True  # reconstruction strips of the best/median/worst clips in card.md
    progress: bool = True
    ray_address: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "EvalConfig":
        data = dict(data)
        if isinstance(data.get("metrics"), str):  # --metrics lpips,rfvd
            data["metrics"] = [m.strip() for m in data["metrics"].split(",") if m.strip()]
        if not data.get("output"):
            raise ValueError("output is empty: give the directory to write eval.json and card.md to (local or s3://)")
        config = build(cls, data)
        config.check()
        return config

    def check(self) -> None:
        """Settings errors that must stop the job before any work."""
        if self.bundle is not None and self.preset is not None:
            raise ValueError("set only one of bundle or preset")
        if self.bundle is None and self.preset is None:
            from sweettok_platform.pretrained import default_bundle

            self.bundle = default_bundle()
        if isinstance(self.metrics, str):
            self.metrics = [m.strip() for m in self.metrics.split(",") if m.strip()]
        for metric in self.metrics:
            if metric not in WEIGHTED_METRICS:
                raise ValueError(f"unknown metric {metric!r} in metrics; expected some of {sorted(WEIGHTED_METRICS)} "
                                 "(psnr, ssim and codebook usage always run)")
            setting = WEIGHTED_METRICS[metric]
            if getattr(self, setting) is None:
                raise ValueError(f"{metric} needs weights: set {setting} (--{setting.replace('_', '-')} PATH_OR_URI); "
                                 "they cannot be downloaded here")
        if self.actors < 1 or self.batch_size < 1 or self.files_per_shard < 1:
            raise ValueError("actors, batch_size and files_per_shard must be >= 1")

    def weights(self) -> dict[str, str]:
        """{setting: uri} of the metric weights given."""
        return {s: getattr(self, s) for s in WEIGHTED_METRICS.values() if getattr(self, s) is not None}
