"""Curriculum stage configs (paper §3.2.4, §4.1, Table 9), presets, and the cosine-with-warm-up schedule.

Stage 0 trains the project's own VQ teacher (skipped when an OmniTokenizer checkpoint is the teacher);
stage 1 trains the spatial branch on images against the teacher's proxy codes; stage 2 trains both
branches on videos; stage 3 fine-tunes the whole model through the teacher's pixel decoder.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from sweettok.config import build_dataclass

STAGE_NAMES = ("stage0", "stage1", "stage2", "stage3")
PERCEPTUAL_NETS = ("lpips_vgg", "convnext_logits")
CE_REDUCTIONS = ("per_branch_sum", "all_cells_mean")


@dataclass(kw_only=True)
class LossWeights:
    """Weights of the loss terms; a term with weight 0 is not computed."""

    ce: float = 1.0  # proxy-code cross-entropy (stages 1-2)
    vq: float = 1.0  # codebook commitment loss (eq. 5; all stages)
    mse: float = 1.0  # pixel MSE (stages 0 and 3)
    lpips: float = 0.0  # perceptual loss (stages 0 and 3)
    gan: float = 0.0  # generator adversarial term (stage 3, after disc_start)
    entropy: float = 0.0  # stage 0: code-usage entropy regulariser on the teacher's soft code assignments
    lecam: float = 0.0  # stage 3: LeCam regulariser on the discriminator (release config 0.001, but its code
    # leaves the term commented out, so the release trains with 0)
    feature_matching: float = 0.0  # stage 3: L1 between discriminator features of fakes and reals (release 0.04)
    disc: float = 1.0  # stage 3: weight on the discriminator's own loss (release: 0.01)


@dataclass(kw_only=True)
class StageConfig:
    """Hyper-parameters of one curriculum stage. ``batch_size`` is per worker."""

    name: str
    steps: int
    batch_size: int
    lr: float = 1e-4  # peak
    min_lr: float = 1e-5
    warmup_steps: int = 0
    weight_decay: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.99)
    eps: float = 1e-8
    grad_clip: float = 1.0  # max global grad norm; 0 disables
    ema_decay: float = 0.999
    precision: str = "fp32"  # "fp32" | "fp16" | "bf16"
    disc_start: int = 0  # stage 3: first step with the discriminator and the generator GAN term
    disc_lr: float = 1e-4
    disc_width: int = 64  # stage 3 discriminator: first-layer width and number of stride-2 layers
    disc_layers: int = 3
    gan_loss: str = "hinge"  # "hinge" | "non_saturating"
    lpips_frames: int = 1  # frames per clip (picked at random) the perceptual net sees; 0 = all (release: 1)
    # the perceptual term (weight: loss.lpips): "lpips_vgg" (LPIPS, VGG16 trunk) | "convnext_logits" (the
    # release: MSE between ConvNeXt-S ImageNet logits at 224 px; needs convnext_weights)
    perceptual: str = "lpips_vgg"
    discriminator: str = "2d_groupnorm"  # stage 3: "2d_groupnorm" | "tats3d" (the release's 3-d BatchNorm net)
    # stages 1-2 proxy-code cross-entropy: "per_branch_sum" (eq. 7: the spatial cells' mean + the temporal
    # cells' mean) | "all_cells_mean" (the release: one mean over every cell of the canvas)
    ce_reduction: str = "per_branch_sum"
    finetune_teacher_decoder: bool = False  # stage 3: also train the teacher's pixel decoder (paper: yes)
    # stage 3: keep the tokens fixed (queries, encoder, quantizers and codebook projector frozen) and train
    # the decoder side only, as the release's ``finetune_decoder`` stage; False trains everything (tokens drift)
    freeze_tokenizer: bool = True
    loss: LossWeights = field(default_factory=LossWeights)
    checkpoint_every: int = 1000
    data: str = "videos"  # "images" (stage 1: first frames) | "videos"

    def __post_init__(self) -> None:
        if self.name not in STAGE_NAMES:
            raise ValueError(f"unknown stage name {self.name!r}; expected one of {list(STAGE_NAMES)}")
        if self.precision not in ("fp32", "fp16", "bf16"):
            raise ValueError(f"precision must be 'fp32', 'fp16' or 'bf16', got {self.precision!r}")
        if self.gan_loss not in ("hinge", "non_saturating"):
            raise ValueError(f"gan_loss must be 'hinge' or 'non_saturating', got {self.gan_loss!r}")
        if self.data not in ("images", "videos"):
            raise ValueError(f"data must be 'images' or 'videos', got {self.data!r}")
        for key, value, allowed in (("perceptual", self.perceptual, PERCEPTUAL_NETS),
                                    ("discriminator", self.discriminator, ("2d_groupnorm", "tats3d")),
                                    ("ce_reduction", self.ce_reduction, CE_REDUCTIONS)):
            if value not in allowed:
                raise ValueError(f"{self.name}: {key} must be one of {list(allowed)}, got {value!r}")
        if self.lpips_frames < 0:
            raise ValueError(f"lpips_frames must be >= 0 (0 = all frames), got {self.lpips_frames}")
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError(f"{self.name}: steps and batch_size must be >= 1, got {self.steps}, {self.batch_size}")
        self.betas = (float(self.betas[0]), float(self.betas[1]))  # YAML gives lists

    @property
    def index(self) -> int:
        """0..3, the ``stage`` argument of the objective."""
        return STAGE_NAMES.index(self.name)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "StageConfig":
        return build_dataclass(cls, data)


def lr_at(step: int, cfg: StageConfig, peak: float | None = None) -> float:
    """Linear warm-up from 0 to the peak over ``warmup_steps``, then cosine decay to ``min_lr`` at ``steps``.

    ``peak`` defaults to ``cfg.lr`` (pass ``cfg.disc_lr`` for the discriminator); ``min_lr`` scales with it.
    """
    peak = cfg.lr if peak is None else peak
    floor = cfg.min_lr * peak / cfg.lr if cfg.lr > 0 else 0.0
    if cfg.warmup_steps > 0 and step < cfg.warmup_steps:
        return peak * (step + 1) / cfg.warmup_steps
    span = max(1, cfg.steps - cfg.warmup_steps)
    progress = min(1.0, max(0.0, (step - cfg.warmup_steps) / span))
    return floor + 0.5 * (peak - floor) * (1.0 + math.cos(math.pi * progress))


def paper_stages() -> list[StageConfig]:
    """Table 9 (tokenizer columns) and §4.1 (min lr 1e-5, 10K warm-up); stage 0 is this project's.

    Stage 3 follows the release (``finetune_decoder``; ``modeling/modules/losses.py``
    ``ReconstructionLoss_Stage2`` as its code runs): tokens frozen, VQ weight 0, MSE x4 (``*4`` in code,
    reconstruction_weight 1.0), ConvNeXt-S logit perceptual loss 0.1 on one random frame, GAN 0.01 from
    ``disc_start`` with feature matching 0.04, the TATS-style 3-d discriminator (width 64, 3 layers) whose loss
    is x0.01, LeCam 0 (commented out in the code).

    Where the two disagree (§4.1: 300K/300K/500K steps, batch 32/8/4) Table 9 is used:
    1000K/500K/500K steps, batch 32/8/12 per GPU. Stage 0 is not in the paper (it used OmniTokenizer);
    its numbers are a VQGAN-like recipe for training the small teacher from scratch.
    """
    return [
        StageConfig(
            name="stage0", steps=200_000, batch_size=8, lr=1e-4, min_lr=1e-5, warmup_steps=5_000,
            betas=(0.9, 0.99), precision="bf16", checkpoint_every=5_000,
            loss=LossWeights(ce=0.0, vq=1.0, mse=1.0, lpips=1.0, entropy=0.1),
        ),
        StageConfig(
            name="stage1", steps=1_000_000, batch_size=32, lr=1e-4, min_lr=1e-5, warmup_steps=10_000,
            weight_decay=1e-4, betas=(0.9, 0.99), eps=1e-8, precision="fp16", checkpoint_every=10_000,
            data="images", loss=LossWeights(ce=1.0, vq=1.0, mse=0.0),
        ),
        StageConfig(
            name="stage2", steps=500_000, batch_size=8, lr=1e-4, min_lr=1e-5, warmup_steps=10_000,
            weight_decay=1e-4, betas=(0.9, 0.99), eps=1e-8, precision="fp16", checkpoint_every=10_000,
            loss=LossWeights(ce=1.0, vq=1.0, mse=0.0),
        ),
        StageConfig(
            name="stage3", steps=500_000, batch_size=12, lr=1e-4, min_lr=1e-5, warmup_steps=10_000,
            weight_decay=1e-4, betas=(0.9, 0.999), eps=1e-8, precision="bf16", checkpoint_every=10_000,
            disc_start=20_000, disc_lr=1e-4, finetune_teacher_decoder=True, disc_width=64, disc_layers=3,
            perceptual="convnext_logits", discriminator="tats3d",
            loss=LossWeights(ce=0.0, vq=0.0, mse=4.0, lpips=0.1, gan=0.01, lecam=0.0, feature_matching=0.04,
                             disc=0.01),
        ),
    ]


def tiny_stages() -> list[StageConfig]:
    """A few dozen CPU steps per stage, for tests and the demo (fp32, no long warm-up).

    The tokenizer stages keep a peak lr of 3e-4: at 1e-3 and above the spatial quantizer collapses onto a
    handful of codes within 30 steps (measured: 1 distinct spatial id over 16 real clips at 2e-3, 16 at 3e-4).
    """
    common: dict[str, Any] = dict(batch_size=2, min_lr=5e-5, warmup_steps=2, weight_decay=0.0, checkpoint_every=10)
    return [
        StageConfig(name="stage0", steps=40, lr=3e-3, loss=LossWeights(ce=0.0, vq=1.0, mse=1.0, entropy=0.1), **common),
        StageConfig(
            name="stage1", steps=30, lr=3e-4, data="images", loss=LossWeights(ce=1.0, vq=1.0, mse=0.0), **common
        ),
        StageConfig(name="stage2", steps=30, lr=3e-4, loss=LossWeights(ce=1.0, vq=1.0, mse=0.0), **common),
        StageConfig(
            name="stage3", steps=30, lr=3e-4, disc_start=20, disc_lr=3e-4, disc_width=16, disc_layers=2,
            finetune_teacher_decoder=True,
            loss=LossWeights(ce=0.0, vq=0.0, mse=1.0, lpips=0.1, gan=0.01, lecam=0.001), **common,
        ),
    ]


def small_stages() -> list[StageConfig]:
    """The CPU quality study's recipe for the ``small`` preset (benchmarks/quality_study.py): about ten
    minutes for the whole curriculum on 2 cores with 2 workers of batch 4.

    Stage 3 follows the release where it costs nothing on CPU (tokens frozen, VQ weight 0, GAN 0.01 from
    half-way, LeCam 0 as the release's code runs) with MSE at 1 (not the release's 4: with grad_clip 1.0 the 4x
    only shrinks the steps this short schedule has) and the perceptual weight at 0: no VGG16 or ConvNeXt
    weights can be had on the CPU machine, and a random trunk is no perceptual loss. Give ``lpips_vgg_weights``
    (or ``convnext_weights`` with ``perceptual: convnext_logits``) and ``stage_overrides.stage3.loss.lpips=0.1``
    where they exist.
    """
    common: dict[str, Any] = dict(batch_size=4, warmup_steps=20, weight_decay=1e-4, checkpoint_every=200)
    return [
        StageConfig(name="stage0", steps=600, lr=3e-3, min_lr=3e-4,
                    loss=LossWeights(ce=0.0, vq=1.0, mse=1.0, entropy=0.1), **{**common, "weight_decay": 0.0}),
        StageConfig(name="stage1", steps=300, lr=5e-4, min_lr=5e-5, data="images",
                    loss=LossWeights(ce=1.0, vq=1.0, mse=0.0), **common),
        StageConfig(name="stage2", steps=600, lr=5e-4, min_lr=5e-5, loss=LossWeights(ce=1.0, vq=1.0, mse=0.0), **common),
        StageConfig(
            name="stage3", steps=400, lr=3e-4, min_lr=3e-5, disc_start=200, disc_lr=3e-4, disc_width=16,
            disc_layers=2, finetune_teacher_decoder=True,
            loss=LossWeights(ce=0.0, vq=0.0, mse=1.0, lpips=0.0, gan=0.01, lecam=0.0), **common,
        ),
    ]


STAGE_PRESETS = {"paper": paper_stages, "small": small_stages, "tiny": tiny_stages}


def stage_presets(name: str) -> list[StageConfig]:
    """The named list of four stage configs (``paper``, ``small`` or ``tiny``)."""
    if name not in STAGE_PRESETS:
        raise ValueError(f"unknown stage preset {name!r}; choose one of {sorted(STAGE_PRESETS)}")
    return STAGE_PRESETS[name]()
