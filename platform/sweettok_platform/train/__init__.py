"""Curriculum training on Ray Train + DeepSpeed ZeRO (the Ray half; losses live in ``sweettok.train``)."""

from sweettok_platform.train.config import DatasetConfig, FaultConfig, ModelSpec, TrainJobConfig
from sweettok_platform.train.runner import check_job, export_bundle, run_curriculum, run_stage

__all__ = [
    "DatasetConfig",
    "FaultConfig",
    "ModelSpec",
    "TrainJobConfig",
    "check_job",
    "export_bundle",
    "run_curriculum",
    "run_stage",
]
