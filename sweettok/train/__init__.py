"""Curriculum training in plain PyTorch: stage configs, objectives, EMA, LPIPS, a single-process trainer.

Nothing here imports Ray; the Ray Train + DeepSpeed runner lives in ``sweettok_platform.train``.
"""

from sweettok.train.config import LossWeights, StageConfig, lr_at, paper_stages, stage_presets, tiny_stages
from sweettok.train.ema import EMA
from sweettok.train.metrics import codebook_stats
from sweettok.train.objectives import CurriculumObjective, StepOutput, set_trainable, trainable_parameters

__all__ = [
    "EMA", "CurriculumObjective", "LossWeights", "StageConfig", "StepOutput", "codebook_stats", "lr_at",
    "paper_stages", "set_trainable", "stage_presets", "tiny_stages", "trainable_parameters",
]
