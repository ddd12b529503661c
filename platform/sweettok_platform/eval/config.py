"""The settings of one evaluation job (``sweettok eval``), as a keyword-only dataclass."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sweettok.typed import build
from sweettok_platform.core.sources import SourceConfig
from sweettok_platform.core.bundles import default_bundle
from sweettok_platform.core.media import ClipSpec
from sweettok_platform.eval.metrics import METRICS, WEIGHT_SETTINGS



@dataclass(kw_only=True)
class EvalConfig:
    """One evaluation: a tokenizer (``bundle`` or ``preset``), a source, clip policy and an output directory.

    ``clips`` frames/height/width are taken from the tokenizer's geometry; its policy, stride and resize
    are the tokenize ones. ``metrics`` names metrics that must be computed (``eval.metrics.METRICS``: ``lpips``,
    ``rfvd``, ``rfid``): a named metric without its weights is an error before any work. Any metric whose weights
    are given is computed; without weights it is left out of ``eval.json`` with a note. ``weights`` maps each
    metric's weights setting to a file; in YAML and on the command line the setting is given at the top level
    (``i3d: PATH``, ``--i3d PATH``) and moved into ``weights``.
    """

    source: SourceConfig
    output: str
    bundle: str | None = None  # tokenizer bundle (local or s3://); neither: the shipped bundle
    preset: str | None = None  # or an untrained preset (for trying the pipeline)
    seed: int = 0  # initialisation seed for ``preset``
    clips: ClipSpec = field(default_factory=ClipSpec)
    teacher_only: bool = False  # score the bundle's teacher alone (its own codes)
    metrics: list[str] = field(default_factory=list)  # weighted metrics that must run
    weights: dict[str, str] = field(default_factory=dict)  # weights setting (lpips_vgg, i3d, ...) -> file
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
        given = {k: data.pop(k) for k in list(data) if k in WEIGHT_SETTINGS}
        data["weights"] = {**dict(data.get("weights") or {}), **{k: v for k, v in given.items() if v is not None}}
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
            self.bundle = default_bundle()
        if isinstance(self.metrics, str):
            self.metrics = [m.strip() for m in self.metrics.split(",") if m.strip()]
        unknown = sorted(set(self.weights) - set(WEIGHT_SETTINGS))
        if unknown:
            raise ValueError(f"weights: unknown setting {unknown[0]!r}; expected some of {sorted(WEIGHT_SETTINGS)}")
        for metric in self.metrics:
            if metric not in METRICS:
                raise ValueError(f"unknown metric {metric!r} in metrics; expected some of {sorted(METRICS)} "
                                 "(psnr, ssim and codebook usage always run)")
            setting = METRICS[metric].setting
            if not self.weights.get(setting):
                raise ValueError(f"{metric} needs weights: set {setting} (--{setting.replace('_', '-')} PATH_OR_URI); "
                                 "they cannot be downloaded here")
        if self.actors < 1 or self.batch_size < 1 or self.files_per_shard < 1:
            raise ValueError("actors, batch_size and files_per_shard must be >= 1")

