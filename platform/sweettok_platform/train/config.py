"""The training job spec: what `sweettok train` reads from YAML + ``--set`` overrides.

A job runs one or more curriculum stages (``stage0`` .. ``stage3``) of one model on one Ray cluster.
Each stage is its own Ray Train run named ``<name>-<stage>`` under ``storage_path``; stage N+1 starts
from stage N's final checkpoint, and the last stage of the curriculum exports a tokenizer bundle.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from sweettok import storage
from sweettok.config import TokenizerConfig, build_dataclass, merge_dicts, preset
from sweettok.train.config import STAGE_NAMES, StageConfig, stage_presets
from sweettok.typed import build
from sweettok_platform.core.sources import SourceConfig
from sweettok_platform.core.raytrain.config import FaultConfig, RunResources, absolute, check_run_name

@dataclass(kw_only=True)
class DatasetConfig:
    """Where clips come from. ``source``: any source kind (``core.sources``; default ``paths``: local video/image
    files, directories or glob patterns), read from local (or mounted) storage.

    Video stages cut ``frames``-long windows every ``stride`` frames (default: no overlap); the image
    stage (stage 1) takes single frames every ``image_stride`` frames of the videos, plus any image files.
    The files are indexed once (frame counts, fps, size: ``train.index``, stored under
    ``<storage_path>/<name>-index/``); workers decode clips as batches need them. With ``cache_dir`` set,
    decoded clips are also kept there as uint8 ``.npy`` files (per node, filled as clips are first seen) so
    later epochs, restarts and stages read instead of decode; disk then grows with the dataset.
    """

    source: SourceConfig = field(default_factory=lambda: SourceConfig(kind="paths"))
    stride: int | None = None
    image_stride: int | None = None
    # cap on clips (whole dataset, before sharding), spread over the files; it also caps the files indexed
    # (at most max_clips, spread over the listing), so a small cap opens few files. None = all
    max_clips: int | None = None
    resize: str = "squash"  # "squash" | "crop"
    cache_dir: str | None = None  # None: no cache, every clip decoded when a batch needs it
    decode_threads: int = 2  # per worker: decode the next batch's clips while the current one trains (0: inline)
    # decode in helper processes (one per decode thread; the tokenize job's sandboxed decoder) rather than in
    # the training process, where decoding slows the step (~25% on 2 cores) and a hostile file can crash it
    decode_helper: bool = True
    # augmentation: clips are decoded at crop_scale x the model's size and a random window of the model's
    # size is cut per sample (1.0: no crop); flip: random horizontal flips. Both seeded per sample.
    crop_scale: float = 1.0
    flip: bool = False

    def __post_init__(self) -> None:
        if self.decode_threads < 0:
            raise ValueError(f"dataset.decode_threads must be >= 0, got {self.decode_threads}")
        if not 1.0 <= self.crop_scale <= 4.0:
            raise ValueError(f"dataset.crop_scale must be in [1, 4], got {self.crop_scale}")


@dataclass(kw_only=True)
class ModelSpec:
    """The tokenizer to train: a preset with nested overrides (see ``sweettok.config``)."""

    preset: str = "tiny"
    overrides: dict[str, Any] = field(default_factory=dict)

    def build(self) -> TokenizerConfig:
        return preset(self.preset, self.overrides or None)


@dataclass(kw_only=True)
class TrainJobConfig(RunResources):
    """One training job. ``stages`` lists the stages to run, in curriculum order."""

    name: str
    storage_path: str  # local directory or s3://bucket/prefix; checkpoints and the bundle go here
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    model: ModelSpec = field(default_factory=ModelSpec)
    stages: list[str] = field(default_factory=lambda: list(STAGE_NAMES))
    stage_preset: str = "tiny"  # "paper" | "tiny": sweettok.train.config presets
    stage_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)  # {"stage1": {"steps": 10}}
    checkpoint_every: int | None = None  # steps; None: the stage config's value
    init: str | None = None  # checkpoint dir or bundle to start the first listed stage from
    # take only the weights under this prefix from ``init`` (e.g. "teacher.": a shared stage-0 teacher for
    # models that differ elsewhere); the rest starts fresh. None: ``init`` must match the whole model.
    init_prefix: str | None = None
    export: str | None = None  # bundle URI; default <storage_path>/<name>-bundle
    lpips_vgg_weights: str | None = None  # torchvision-format VGG16 state dict for LPIPS
    # torchvision-format ConvNeXt-S (convnext_small IMAGENET1K_V1) state dict, for stages with
    # perceptual: convnext_logits (the release's perceptual loss); such a job refuses to start without it
    convnext_weights: str | None = None

    def __post_init__(self) -> None:
        check_run_name(self.name)
        unknown = [s for s in self.stages if s not in STAGE_NAMES]
        if unknown or not self.stages:
            raise ValueError(f"stages must be a non-empty list of {list(STAGE_NAMES)}, got {self.stages}")
        order = [STAGE_NAMES.index(s) for s in self.stages]
        if order != sorted(set(order)):
            raise ValueError(f"stages must be listed once each, in curriculum order, got {self.stages}")
        super().__post_init__()
        bad = set(self.stage_overrides) - set(STAGE_NAMES)
        if bad:
            raise ValueError(f"stage_overrides names unknown stages {sorted(bad)}; expected {list(STAGE_NAMES)}")
        self.stage_configs()  # every override checked (and coerced) here, on the submitting machine

    # ---- resolution ---------------------------------------------------------------------------
    def stage_configs(self) -> dict[str, StageConfig]:
        """All four stage configs of the preset with this job's overrides (and checkpoint_every)."""
        out = {}
        for cfg in stage_presets(self.stage_preset):
            data = merge_dicts(cfg.to_dict(), self.stage_overrides.get(cfg.name, {}))
            if self.checkpoint_every is not None:
                data["checkpoint_every"] = self.checkpoint_every
            out[cfg.name] = build(StageConfig, data, f"stage_overrides.{cfg.name}")
        return out

    def precision_for(self, stage: StageConfig) -> str:
        if not self.use_gpu:
            return "fp32"
        return stage.precision if self.precision == "auto" else self.precision

    def run_name(self, stage: str) -> str:
        """The Ray Train run name of one stage."""
        return f"{self.name}-{stage}"

    def stage_uri(self, stage: str) -> str:
        return storage.join(self.storage_path, self.run_name(stage))

    def index_uri(self) -> str:
        """Where the dataset index is stored (one Parquet file per set of files, by fingerprint)."""
        return storage.join(self.storage_path, f"{self.name}-index")

    def bundle_uri(self) -> str:
        return self.export or storage.join(self.storage_path, f"{self.name}-bundle")

    def local_log_dir(self) -> str:
        import os

        return os.path.abspath(self.log_dir or os.path.join("runs", self.name))

    def with_absolute_paths(self) -> "TrainJobConfig":
        """A copy with local paths made absolute: workers run in another working directory."""
        import copy

        out = copy.deepcopy(self)
        out.storage_path = absolute(self.storage_path)  # type: ignore[assignment]
        out.log_dir = self.local_log_dir()
        out.init, out.export = absolute(self.init), absolute(self.export)
        out.lpips_vgg_weights = absolute(self.lpips_vgg_weights)
        out.convnext_weights = absolute(self.convnext_weights)
        out.dataset.source.paths = [absolute(p) or p for p in self.dataset.source.paths]
        if self.dataset.source.root:
            out.dataset.source.root = absolute(self.dataset.source.root) or ""
        out.dataset.cache_dir = absolute(self.dataset.cache_dir)
        for section in ("teacher", "quantizer"):
            key = "checkpoint" if section == "teacher" else "codebook"
            node = out.model.overrides.get(section)
            if isinstance(node, dict) and node.get(key):
                node[key] = absolute(node[key])
        return out

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainJobConfig":
        data = dict(data)
        fault = data.pop("fault", None)
        config = build_dataclass(cls, data)
        if fault is not None:
            config.fault = fault if isinstance(fault, FaultConfig) else build_dataclass(FaultConfig, fault)
        return config

