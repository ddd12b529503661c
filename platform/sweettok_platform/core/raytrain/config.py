"""The settings every Ray Train run of the project shares (curriculum stages, the generator).

``RunResources`` is the part of a job spec that says how a run uses the cluster and survives faults; the
curriculum's ``TrainJobConfig`` and the generator's ``ArJobConfig`` extend it with what they train.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

PLACEMENT_STRATEGIES = ("SPREAD", "PACK", "STRICT_SPREAD", "STRICT_PACK")  # Ray placement group strategies
PRECISIONS = ("auto", "fp32", "fp16", "bf16")


def check_placement(strategy: str) -> None:
    if strategy not in PLACEMENT_STRATEGIES:
        raise ValueError(f"placement_strategy must be one of {list(PLACEMENT_STRATEGIES)}, got {strategy!r}")


@dataclass(kw_only=True)
class FaultConfig:
    """Fault injection for recovery tests: rank 0 exits hard at the start of ``step`` of ``stage``,
    once (``marker`` is created first; a later attempt that finds it goes on)."""

    stage: str
    step: int
    marker: str


@dataclass(kw_only=True)
class RunResources:
    """Workers, devices, placement, DeepSpeed ZeRO, checkpoints and failure handling of one run."""

    num_workers: int = 2
    use_gpu: bool = False
    gpus_per_worker: float = 1.0
    cpus_per_worker: float = 1.0
    # how Ray places the workers: SPREAD (default) puts them on different nodes where they fit, else packs;
    # PACK fills a node first; STRICT_* refuse to run otherwise
    placement_strategy: str = "SPREAD"
    zero_stage: int = 2
    precision: str = "auto"  # auto: the run's own choice on GPU, fp32 on CPU
    keep_checkpoints: int = 2
    max_failures: int = 3
    log_every: int = 10  # console line every N steps (rank 0)
    log_dir: str | None = None  # local dir for metrics.jsonl and plots; default ./runs/<run>
    seed: int = 0
    fault: FaultConfig | None = None

    def __post_init__(self) -> None:
        if self.zero_stage not in (0, 1, 2):
            raise ValueError(f"zero_stage must be 0, 1 or 2 (ZeRO-3 is not supported: EMA needs full weights), "
                             f"got {self.zero_stage}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if not self.use_gpu and self.precision in ("fp16", "bf16"):
            raise ValueError(f"precision {self.precision} needs use_gpu: true; CPU training runs in fp32")
        if self.num_workers < 1:
            raise ValueError(f"num_workers must be >= 1, got {self.num_workers}")
        check_placement(self.placement_strategy)


def check_run_name(name: str) -> None:
    if not name or "/" in name:
        raise ValueError(f"name must be a non-empty run name without '/', got {name!r}")


def absolute(path: str | None) -> str | None:
    """A local path made absolute (workers run in another working directory); URIs and None unchanged."""
    from sweettok import storage

    return path if path is None or storage.is_remote(path) else os.path.abspath(os.path.expanduser(path))
