"""A single-process trainer for one curriculum stage: model + objective + optimizers + EMA.

``train_step(batch) -> metrics`` runs the generator step (and the discriminator step in stage 3 once
``disc_start`` is reached); ``state_dict`` / ``load_state_dict`` hold everything needed to resume
(model, optimizers, discriminator, EMA, step). The Ray runner may wrap it, or call the objective itself.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import torch
from torch import Tensor, nn

from sweettok.train.config import StageConfig, lr_at
from sweettok.train.ema import EMA
from sweettok.train.objectives import CurriculumObjective, set_trainable

_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}


# no weight decay on these (with biases and norm weights, i.e. every parameter of fewer than 2 dims), as the
# release's create_optimizer: learned queries, the decoder's mask-token canvas and position embeddings
NO_DECAY_NAMES = ("queries", "canvas", "pos_")


def param_groups(model: nn.Module, params: list[nn.Parameter], weight_decay: float) -> list[dict[str, Any]]:
    """``params`` split into an AdamW group with ``weight_decay`` and one without (``NO_DECAY_NAMES``,
    biases, norms); parameters outside ``model`` (a teacher decoder passed separately) follow the same rule."""
    names = {id(p): n for n, p in model.named_parameters()}
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    for p in params:
        name = names.get(id(p), "").rsplit(".", 1)[-1]
        skip = p.ndim < 2 or any(name.startswith(k) or k in name for k in NO_DECAY_NAMES)
        (no_decay if skip else decay).append(p)
    return [g for g in ({"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0})
            if g["params"]]


def adamw(params: list[nn.Parameter] | list[dict[str, Any]], cfg: StageConfig, lr: float) -> torch.optim.AdamW:
    """AdamW with the stage's betas, eps and weight decay (per-group decay where ``params`` are groups)."""
    return torch.optim.AdamW(params, lr=lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)


class Trainer:
    """Trains ``model`` on one stage. ``batch`` is (b, c, t, h, w) in [-0.5, 0.5] on any device."""

    def __init__(self, model: nn.Module, objective: CurriculumObjective, stage: StageConfig) -> None:
        self.model, self.objective, self.cfg = model, objective, stage
        self.params = set_trainable(model, stage.index, stage.finetune_teacher_decoder, stage.freeze_tokenizer)
        self.optimizer = adamw(param_groups(model, self.params, stage.weight_decay), stage, lr_at(0, stage))
        self.disc_optimizer = (
            adamw(list(objective.discriminator.parameters()), stage, lr_at(0, stage, stage.disc_lr))
            if stage.index == 3 else None
        )
        self.ema = EMA(model, stage.ema_decay)
        self.step = 0
        device = next(model.parameters()).device
        self.device_type = device.type
        self.scaler = torch.amp.GradScaler(device.type, enabled=stage.precision == "fp16" and device.type == "cuda")

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.cfg.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=_DTYPES[self.cfg.precision])

    def _set_lr(self, optimizer: torch.optim.Optimizer, lr: float) -> None:
        for group in optimizer.param_groups:
            group["lr"] = lr

    def train_step(self, batch: Tensor) -> dict[str, Any]:
        """One optimisation step; returns the step's metrics (floats) with ``stage``, ``step``, ``lr``."""
        start = time.perf_counter()
        cfg, step = self.cfg, self.step
        self.model.train()
        lr = lr_at(step, cfg)
        self._set_lr(self.optimizer, lr)
        with self._autocast():
            loss, metrics = self.objective.generator_loss(self.model, batch, cfg.index, step)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if cfg.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            metrics["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.ema.update(self.model)
        if self.disc_optimizer is not None and self.objective.disc_active(step):
            self._set_lr(self.disc_optimizer, lr_at(step, cfg, cfg.disc_lr))
            fake = self.objective.last_reconstruction
            assert fake is not None, "the generator step keeps its reconstruction for the discriminator"
            real = batch[:, :, : fake.shape[2]]
            with self._autocast():
                d_loss, d_metrics = self.objective.discriminator_loss(real, fake, step)
            self.disc_optimizer.zero_grad(set_to_none=True)
            d_loss.backward()
            self.disc_optimizer.step()
            metrics.update(d_metrics)
        self.step += 1
        elapsed = time.perf_counter() - start
        return {"stage": cfg.name, "step": step, "lr": lr, **metrics,
                "clips_per_s": batch.shape[0] / max(elapsed, 1e-9)}

    def state_dict(self) -> dict[str, Any]:
        state = {
            "stage": self.cfg.name, "step": self.step, "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(), "ema": self.ema.state_dict(),
            "discriminator": self.objective.discriminator.state_dict(), "scaler": self.scaler.state_dict(),
        }
        if self.disc_optimizer is not None:
            state["disc_optimizer"] = self.disc_optimizer.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["stage"] != self.cfg.name:
            raise ValueError(f"checkpoint is for {state['stage']!r}, this trainer runs {self.cfg.name!r}")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.ema.load_state_dict(state["ema"])
        self.objective.discriminator.load_state_dict(state["discriminator"])
        self.scaler.load_state_dict(state["scaler"])
        if self.disc_optimizer is not None and "disc_optimizer" in state:
            self.disc_optimizer.load_state_dict(state["disc_optimizer"])
        self.step = state["step"]
