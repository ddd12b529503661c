"""The generator training job spec: what ``sweettok ar train`` reads from YAML + ``--set`` overrides.

The token geometry (codebook sizes, tokens per clip, classes) is not set here: it comes from the corpus
card, so a job cannot disagree with its corpus. The job names the transformer size and the optimisation.
"""

from __future__ import annotations

import copy
import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

from sweettok import storage
from sweettok.ar import AR_SIZES, ArConfig
from sweettok.typed import build
from sweettok_platform.core.raytrain.config import RunResources, absolute, check_run_name


@dataclass(kw_only=True)
class ArModelSpec:
    """Transformer size: a named size (``AR_SIZES``) with explicit overrides."""

    size: str = "tiny"
    width: int | None = None
    depth: int | None = None
    heads: int | None = None
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    class_dropout: float = 0.1

    def __post_init__(self) -> None:
        if self.size not in AR_SIZES:
            raise ValueError(f"model.size must be one of {sorted(AR_SIZES)}, got {self.size!r}")

    def build(self, card: Any) -> ArConfig:
        """The model config for a corpus (``CorpusCard`` v2, or a v1 card whose sizes were filled)."""
        if card.spatial_codebook_size < 1:
            raise ValueError(f"{card.output}: the corpus card has no codebook sizes (a schema-1 card whose tokenizer "
                             f"{card.bundle or card.preset} is gone or changed); re-tokenize the corpus")
        sizes = {**AR_SIZES[self.size], **{k: v for k, v in (("width", self.width), ("depth", self.depth),
                                                             ("heads", self.heads)) if v is not None}}
        return ArConfig(spatial_vocab=card.spatial_codebook_size, temporal_vocab=card.temporal_codebook_size,
                        spatial_tokens=card.spatial_tokens, temporal_tokens=card.temporal_tokens,
                        num_classes=max(1, card.num_classes), mlp_ratio=self.mlp_ratio, dropout=self.dropout,
                        class_dropout=self.class_dropout, **sizes)


@dataclass(kw_only=True)
class ArOptimConfig:
    """Optimisation (the attribute names ``core.raytrain.worker.deepspeed_config`` reads)."""

    steps: int = 100
    batch_size: int = 8  # sequences per worker per step
    lr: float = 3e-4
    warmup_steps: int = 10
    min_lr: float = 3e-5  # cosine decay to this (sweettok.train.config.lr_at)
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-8
    weight_decay: float = 0.05
    grad_clip: float = 1.0


@dataclass(kw_only=True)
class ArJobConfig(RunResources):
    """One generator training run: a Ray Train run ``<name>-ar`` under ``storage_path``."""

    name: str
    storage_path: str  # local directory or s3://; checkpoints go to <storage_path>/<name>-ar
    corpus: str  # token corpus (local or s3://) written by ``sweettok tokenize``
    model: ArModelSpec = field(default_factory=ArModelSpec)
    optim: ArOptimConfig = field(default_factory=ArOptimConfig)
    checkpoint_every: int = 50

    def __post_init__(self) -> None:
        check_run_name(self.name)
        if self.optim.steps < 1 or self.optim.batch_size < 1:
            raise ValueError("optim.steps and optim.batch_size must be >= 1")
        super().__post_init__()

    @property
    def resolved_precision(self) -> str:
        return ("bf16" if self.use_gpu else "fp32") if self.precision == "auto" else self.precision

    @property
    def run_name(self) -> str:
        return f"{self.name}-ar"

    @property
    def run_uri(self) -> str:
        return storage.join(self.storage_path, self.run_name)

    def local_log_dir(self) -> str:
        return os.path.abspath(self.log_dir or os.path.join("runs", self.run_name))

    def with_absolute_paths(self) -> "ArJobConfig":
        out = copy.deepcopy(self)
        out.storage_path, out.corpus = absolute(self.storage_path), absolute(self.corpus)  # type: ignore[assignment]
        out.log_dir = self.local_log_dir()
        return out

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "ArJobConfig":
        return build(cls, data)
