"""Curriculum losses (paper §3.2.4): which parameters train in each stage, and each stage's loss.

Stage 0 trains the VQ teacher as an autoencoder (MSE [+ LPIPS] + commitment). Stage 1 (images, eq. 6)
and stage 2 (videos, eq. 7) train SweetTokenizer to predict the teacher's proxy codes (cross-entropy)
plus the codebook loss. Stage 3 (eq. 8) decodes softmax(logits) x teacher codebook with the teacher's
pixel decoder and trains on MSE + LPIPS + GAN (the generator term from ``disc_start`` on) + codebook loss.

The objective holds the discriminator and LPIPS, never the model. Letters: b batch, c channels,
t frames, t'/h'/w' teacher code grid, v teacher codebook size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from sweettok.teacher.vq import VQTeacher
from sweettok.train.config import StageConfig
from sweettok.train.convnext import ConvNeXtConfig, ConvNeXtLogitsLoss
from sweettok.train.discriminator import DiscriminatorConfig, build_discriminator, d_loss, feature_matching, g_loss
from sweettok.train.lpips import LPIPS, LPIPSConfig
from sweettok.train.metrics import codebook_stats, prefixed

if TYPE_CHECKING:
    from sweettok.model import SweetTokenizer

# parameters only the temporal branch uses; stage 1 (images) leaves them frozen
TEMPORAL_PREFIXES = (
    "encoder.patchify.temporal.", "encoder.pos_t", "encoder.queries_t", "encoder.temporal.",
    "encoder.to_latent_t.", "decoder.from_latent_t.", "decoder.pos_latent_t", "decoder.pos_time",
    "decoder.temporal.", "quantizer.temporal",
)


def unwrap(model: nn.Module) -> SweetTokenizer:
    """The SweetTokenizer inside a DDP / DeepSpeed wrapper (or the model itself)."""
    while hasattr(model, "module") and isinstance(model.module, nn.Module):
        model = model.module
    return model  # type: ignore[return-value]  # a SweetTokenizer by contract


def teacher_decoder_parameters(teacher: nn.Module) -> list[nn.Parameter]:
    """The teacher's pixel-decoder parameters (``decode_embeddings`` path), for stage-3 fine-tuning."""
    method = getattr(teacher, "pixel_decoder_parameters", None)
    if method is None:
        raise ValueError(f"{type(teacher).__name__} does not expose pixel_decoder_parameters()")
    return list(method())


# the decoder side: what stage 3 trains when the tokens are frozen (the release's finetune_decoder)
DECODER_PREFIXES = ("decoder.", "head.")


def trainable_parameters(
    model: nn.Module, stage: int, finetune_teacher_decoder: bool = False, freeze_tokenizer: bool = False
) -> list[nn.Parameter]:
    """The parameters a stage trains.

    stage 0: the teacher only. stage 1: everything outside the teacher except the temporal-only
    parameters (``TEMPORAL_PREFIXES``): every returned parameter gets a gradient from an image batch.
    stage 2: everything outside the teacher. stage 3: as stage 2, or only the decoder and head when
    ``freeze_tokenizer`` (queries, encoder, quantizers and projector frozen: the tokens stop moving), plus
    the teacher's pixel decoder when ``finetune_teacher_decoder`` (its encoder and codebook stay frozen).
    """
    model = unwrap(model)
    if stage == 0:
        return list(model.teacher.parameters())
    if stage not in (1, 2, 3):
        raise ValueError(f"stage must be 0, 1, 2 or 3, got {stage}")
    params = []
    for name, p in model.named_parameters():
        if name.startswith("teacher."):
            continue
        if stage == 1 and name.startswith(TEMPORAL_PREFIXES):
            continue
        if stage == 3 and freeze_tokenizer and not name.startswith(DECODER_PREFIXES):
            continue
        params.append(p)
    if stage == 3 and finetune_teacher_decoder:
        params += teacher_decoder_parameters(model.teacher)
    return params


def set_trainable(
    model: nn.Module, stage: int, finetune_teacher_decoder: bool = False, freeze_tokenizer: bool = False
) -> list[nn.Parameter]:
    """Freeze every parameter of ``model`` except ``trainable_parameters(...)``, which it returns."""
    params = trainable_parameters(model, stage, finetune_teacher_decoder, freeze_tokenizer)
    keep = {id(p) for p in params}
    for p in unwrap(model).parameters():
        p.requires_grad_(id(p) in keep)
    return params


def code_entropy_loss(z: Tensor, codebook: Tensor, temperature: float = 0.1) -> Tensor:
    """Mean per-vector entropy minus the entropy of the mean soft assignment over the codebook.

    Minimising it makes each latent pick one code confidently while the batch spreads over many codes,
    which keeps a small VQ teacher from collapsing onto a handful of codes. z (..., e), codebook (v, e).
    """
    flat = z.reshape(-1, z.shape[-1]).float()
    logits = -torch.cdist(flat, codebook.float()).pow(2) / temperature  # (n, v)
    probs = logits.softmax(-1)
    per_vector = -(probs * logits.log_softmax(-1)).sum(-1).mean()
    mean = probs.mean(0)
    return per_vector + (mean * mean.clamp_min(1e-12).log()).sum()


@dataclass
class StepOutput:
    """One generator step: the scalar loss, float metrics, and the detached reconstruction (stages 0, 3)."""

    loss: Tensor
    metrics: dict[str, float]
    reconstruction: Tensor | None = None


# the weight (a LossWeights field) of each term whose name is not itself a field
TERM_WEIGHTS = {"convnext": "lpips"}


class CurriculumObjective(nn.Module):
    """Generator and discriminator losses for every stage; owns the discriminator and the perceptual net.

    Checkpoint ``objective.discriminator`` (the perceptual nets are frozen and rebuilt from their weight files).
    ``convnext``: the ConvNeXt-S weights for a ``convnext_logits`` stage; None refuses such a stage, an explicit
    ``ConvNeXtConfig(weights=None)`` accepts a random network (tests).
    """

    def __init__(
        self,
        stages: Sequence[StageConfig],
        *,
        lpips: LPIPSConfig | None = None,
        discriminator: DiscriminatorConfig | None = None,
        convnext: ConvNeXtConfig | None = None,
    ) -> None:
        super().__init__()
        self.stages = {s.index: s for s in stages}
        if discriminator is None and 3 in self.stages:
            s3 = self.stages[3]
            discriminator = DiscriminatorConfig(width=s3.disc_width, layers=s3.disc_layers, kind=s3.discriminator)
        self.discriminator = build_discriminator(discriminator)
        perceptual = {s.perceptual for s in stages if s.loss.lpips > 0}
        self.lpips = LPIPS(lpips) if "lpips_vgg" in perceptual else None
        self.convnext = (ConvNeXtLogitsLoss(convnext or ConvNeXtConfig(), allow_random=convnext is not None)
                         if "convnext_logits" in perceptual else None)
        self.last_reconstruction: Tensor | None = None

    def stage_config(self, stage: int) -> StageConfig:
        if stage not in self.stages:
            raise ValueError(f"no config for stage {stage}; configured stages: {sorted(self.stages)}")
        return self.stages[stage]

    def disc_active(self, step: int) -> bool:
        """Whether the discriminator (and the generator GAN term) is on at ``step`` of stage 3."""
        cfg = self.stages.get(3)
        return cfg is not None and cfg.loss.gan > 0 and step >= cfg.disc_start

    # ---- generator ----------------------------------------------------------------------------
    def generator_loss(self, model: nn.Module, x: Tensor, stage: int, step: int) -> tuple[Tensor, dict[str, float]]:
        """The stage's loss on a batch x (b, c, t, h, w) in [-0.5, 0.5]; keeps ``last_reconstruction``."""
        out = self.compute(model, x, stage, step)
        self.last_reconstruction = out.reconstruction
        return out.loss, out.metrics

    def compute(self, model: nn.Module, x: Tensor, stage: int, step: int) -> StepOutput:
        cfg = self.stage_config(stage)
        if x.ndim != 5:
            raise ValueError(f"expected a batch (b, c, t, h, w), got shape {tuple(x.shape)}")
        if stage == 0:
            return self._stage0(model, x, cfg)
        if stage in (1, 2):
            return self._proxy_codes(model, x, stage, cfg)
        return self._pixels(model, x, step, cfg)

    def _stage0(self, model: nn.Module, x: Tensor, cfg: StageConfig) -> StepOutput:
        teacher = unwrap(model).teacher
        if not isinstance(teacher, VQTeacher):
            raise ValueError(
                f"stage 0 trains the project's VQ teacher; this model's teacher ({type(teacher).__name__}) "
                "comes pre-trained, so start the curriculum at stage 1"
            )
        recon, q, z = teacher.autoencode(x)  # (b, c, t, h, w), Quantized, unit latents (b, t', h', w', e)
        terms = {"mse": F.mse_loss(recon.float(), x.float()), "vq": q.loss.float()}
        terms.update(self._perceptual(recon, x, cfg))
        if cfg.loss.entropy > 0:
            terms["entropy"] = code_entropy_loss(z, teacher.codebook)
        loss = self._weighted(terms, cfg)
        metrics = {k: float(v.detach()) for k, v in terms.items()}
        metrics.update(prefixed(codebook_stats(q.ids, teacher.codebook.shape[0]), "teacher"))
        return StepOutput(loss, {"loss": float(loss.detach()), **metrics}, recon.detach())

    def _proxy_codes(self, model: nn.Module, x: Tensor, stage: int, cfg: StageConfig) -> StepOutput:
        inner = unwrap(model)
        if stage == 1 or cfg.data == "images":
            x = x[:, :, :1]  # images: the first frame, spatial branch only
        with torch.no_grad():
            targets = inner.teacher.encode_codes(x)  # (b, t', h', w')
        out = model(x)
        logits = out.logits.float()  # (b, t', h', w', v)
        ce_s = F.cross_entropy(rearrange(logits[:, :1], "b t h w v -> (b t h w) v"), targets[:, :1].reshape(-1))
        terms = {"ce_spatial": ce_s}
        if logits.shape[1] > 1:  # eq. 7: the temporal cells' cross-entropy is a second term
            terms["ce_temporal"] = F.cross_entropy(
                rearrange(logits[:, 1:], "b t h w v -> (b t h w) v"), targets[:, 1:].reshape(-1)
            )
        if cfg.ce_reduction == "all_cells_mean":  # the release: one mean over every cell (first frame ~1/(1+k))
            ce = F.cross_entropy(rearrange(logits, "b t h w v -> (b t h w) v"), targets.reshape(-1))
        else:
            ce = torch.stack(list(terms.values())).sum()
        vq = out.latents.vq_loss.float()
        loss = cfg.loss.ce * ce + cfg.loss.vq * vq
        metrics = {"loss": float(loss.detach()), "ce": float(ce.detach()), "vq": float(vq.detach())}
        metrics.update({k: float(v.detach()) for k, v in terms.items()})
        metrics["code_accuracy"] = float((logits.argmax(-1) == targets).float().mean())
        metrics.update(self._token_stats(inner, out.latents.ids))
        return StepOutput(loss, metrics)

    def _pixels(self, model: nn.Module, x: Tensor, step: int, cfg: StageConfig) -> StepOutput:
        inner = unwrap(model)
        if cfg.data == "images":
            x = x[:, :, :1]
        out = model(x, pixels=True)
        recon = out.pixels  # (b, c, t, h, w)
        terms = {"mse": F.mse_loss(recon.float(), x.float()), "vq": out.latents.vq_loss.float()}
        terms.update(self._perceptual(recon, x, cfg))
        if self.disc_active(step):
            disc = self.discriminator
            disc.requires_grad_(False)  # the generator terms must not write discriminator gradients
            try:
                if cfg.loss.feature_matching > 0:
                    fake_logits, fake_feats = self._disc_features(recon)
                    with torch.no_grad():
                        _, real_feats = self._disc_features(x[:, :, : recon.shape[2]])
                    terms["feature_matching"] = feature_matching(fake_feats, real_feats)
                else:
                    fake_logits = self._disc_logits(recon)
                terms["gan"] = g_loss(fake_logits, cfg.gan_loss)
            finally:
                disc.requires_grad_(True)
        loss = self._weighted(terms, cfg)
        metrics = {"loss": float(loss.detach()), **{k: float(v.detach()) for k, v in terms.items()}}
        metrics.update(self._token_stats(inner, out.latents.ids))
        return StepOutput(loss, metrics, recon.detach())

    # ---- discriminator ------------------------------------------------------------------------
    def discriminator_loss(self, real: Tensor, fake: Tensor, step: int) -> tuple[Tensor, dict[str, float]]:
        """Discriminator loss on real clips and (detached) reconstructions; exactly 0 before ``disc_start``."""
        if not self.disc_active(step):
            # keeps the graph for wrappers
            zero = torch.stack([p.sum() for p in self.discriminator.parameters()]).sum() * 0.0
            return zero, {"disc_loss": 0.0}
        cfg = self.stages[3]
        real = real[:, :, : fake.shape[2]]  # image-only stage 3 compares first frames
        real_logits = self._disc_logits(real)
        fake_logits = self._disc_logits(fake.detach())
        loss = cfg.loss.disc * d_loss(real_logits, fake_logits, cfg.gan_loss)
        extra = {}
        if cfg.loss.lecam > 0:
            reg = self.discriminator.lecam(real_logits, fake_logits)
            loss = loss + cfg.loss.lecam * reg
            extra["lecam"] = float(reg.detach())
        return loss, {
            **extra,
            "disc_loss": float(loss.detach()),
            "logits_real": float(real_logits.detach().mean()),
            "logits_fake": float(fake_logits.detach().mean()),
        }

    # ---- helpers ------------------------------------------------------------------------------
    def _disc_logits(self, x: Tensor) -> Tensor:
        """Discriminator logits in fp32, whatever dtype a wrapper (DeepSpeed bf16/fp16) gave its weights."""
        dtype = next(self.discriminator.parameters()).dtype
        return self.discriminator(x.to(dtype)).float()

    def _disc_features(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        dtype = next(self.discriminator.parameters()).dtype
        logits, feats = self.discriminator.forward_features(x.to(dtype))
        return logits.float(), [f.float() for f in feats]

    def _perceptual(self, recon: Tensor, x: Tensor, cfg: StageConfig) -> dict[str, Tensor]:
        if cfg.loss.lpips <= 0:
            return {}
        net: nn.Module | None = self.convnext if cfg.perceptual == "convnext_logits" else self.lpips
        if net is None:
            raise ValueError(f"this objective was built without the {cfg.perceptual} perceptual net "
                             "(no stage had a perceptual weight)")
        recon, x = recon.float(), x.float()
        b, _, t = x.shape[:3]
        if 0 < cfg.lpips_frames < t:  # a random subset of frames per clip, as OmniTokenizer does
            idx = torch.rand(b, t, device=x.device).argsort(dim=1)[:, : cfg.lpips_frames]  # (b, n)
            pick = idx[:, None, :, None, None].expand(-1, x.shape[1], -1, *x.shape[3:])
            recon, x = recon.gather(2, pick), x.gather(2, pick)
        return {"convnext" if cfg.perceptual == "convnext_logits" else "lpips": net(recon, x).mean()}

    @staticmethod
    def _weighted(terms: dict[str, Tensor], cfg: StageConfig) -> Tensor:
        return torch.stack([getattr(cfg.loss, TERM_WEIGHTS.get(name, name)) * value
                            for name, value in terms.items()]).sum()

    @staticmethod
    def _token_stats(model: SweetTokenizer, ids: Tensor) -> dict[str, float]:
        n_s = model.num_spatial
        stats = prefixed(codebook_stats(ids[:, :n_s], model.quantizer.size("spatial")), "spatial")
        if ids.shape[1] > n_s:
            stats.update(prefixed(codebook_stats(ids[:, n_s:], model.quantizer.size("temporal")), "temporal"))
        return stats
