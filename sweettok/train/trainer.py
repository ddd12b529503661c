"""One training step for every curriculum stage, and a single-process trainer around it.

``train_step`` is the step both paths run: the generator update, the discriminator update in stage 3
(with a GAN term), the EMA. How a loss becomes a parameter update is an ``Updater``: ``AdamWUpdater``
here (plain AdamW, optional fp16 loss scaling and clipping), a DeepSpeed engine on the Ray Train workers
(``sweettok_platform.train.loop.EngineUpdater``). So what the tests train is what the cluster trains.

``Trainer`` holds model + objective + optimizers + EMA for one stage in one process; ``state_dict`` /
``load_state_dict`` hold everything needed to resume (model, optimizers, discriminator, EMA, step).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any, Callable, Protocol

import torch
from torch import Tensor, nn

from sweettok.train.config import StageConfig, lr_at
from sweettok.train.ema import EMA
from sweettok.train.objectives import CurriculumObjective, set_trainable, unwrap

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


class Updater(Protocol):
    """Turns a loss into a parameter update (backward, clipping, optimizer step)."""

    def set_lr(self, lr: float) -> None: ...

    def update(self, loss: Tensor) -> dict[str, float]:
        """Backward and step; returns metrics of the update (e.g. ``grad_norm``)."""
        ...


class AdamWUpdater:
    """In-process updates: ``optimizer`` with optional fp16 loss scaling and gradient clipping."""

    def __init__(self, optimizer: torch.optim.Optimizer, grad_clip: float = 0.0,
                 scaler: torch.amp.GradScaler | None = None) -> None:
        self.optimizer, self.grad_clip = optimizer, grad_clip
        self.scaler = scaler or torch.amp.GradScaler("cpu", enabled=False)
        self.params = [p for group in optimizer.param_groups for p in group["params"]]

    def set_lr(self, lr: float) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = lr

    def update(self, loss: Tensor) -> dict[str, float]:
        metrics = {}
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if self.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            metrics["grad_norm"] = float(torch.nn.utils.clip_grad_norm_(self.params, self.grad_clip))
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return metrics


def train_step(
    model: nn.Module, objective: CurriculumObjective, cfg: StageConfig, step: int, batch: Tensor,
    generator: Updater, discriminator: Updater | None = None, ema: EMA | None = None,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
) -> dict[str, float]:
    """One optimisation step of stage ``cfg`` at ``step`` on ``batch`` (b, c, t, h, w): the generator
    update, then (``discriminator`` given: stage 3 with a GAN term) the discriminator update on the real
    clips and the detached reconstruction, every step (its loss is exactly 0 before ``disc_start``), then the
    EMA of the unwrapped model. ``model`` may be a wrapper (a DeepSpeed engine). Returns the metrics."""
    lr = lr_at(step, cfg)
    generator.set_lr(lr)
    with autocast():
        loss, metrics = objective.generator_loss(model, batch, cfg.index, step)
    metrics.update(generator.update(loss))
    if discriminator is not None:
        discriminator.set_lr(lr_at(step, cfg, cfg.disc_lr))
        fake = objective.last_reconstruction
        assert fake is not None, "the generator step keeps its reconstruction for the discriminator"
        with autocast():
            d_loss, d_metrics = objective.discriminator_loss(batch, fake, step)
        discriminator.update(d_loss)
        metrics.update(d_metrics)
    if ema is not None:
        ema.update(unwrap(model))
    return {**metrics, "lr": lr}


class Trainer:
    """Trains ``model`` on one stage. ``batch`` is (b, c, t, h, w) in [-0.5, 0.5] on any device."""

    def __init__(self, model: nn.Module, objective: CurriculumObjective, stage: StageConfig) -> None:
        self.model, self.objective, self.cfg = model, objective, stage
        params = set_trainable(model, stage.index, stage.finetune_teacher_decoder, stage.freeze_tokenizer)
        self.optimizer = adamw(param_groups(model, params, stage.weight_decay), stage, lr_at(0, stage))
        self.disc_optimizer = (  # as on the workers: stage 3 with a GAN term
            adamw(list(objective.discriminator.parameters()), stage, lr_at(0, stage, stage.disc_lr))
            if stage.index == 3 and stage.loss.gan > 0 else None
        )
        self.ema = EMA(model, stage.ema_decay)
        self.step = 0
        device = next(model.parameters()).device
        self.device_type = device.type
        self.scaler = torch.amp.GradScaler(device.type, enabled=stage.precision == "fp16" and device.type == "cuda")
        self.generator = AdamWUpdater(self.optimizer, stage.grad_clip, self.scaler)
        self.discriminator = AdamWUpdater(self.disc_optimizer) if self.disc_optimizer is not None else None

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.cfg.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=_DTYPES[self.cfg.precision])

    def train_step(self, batch: Tensor) -> dict[str, Any]:
        """One optimisation step; returns the step's metrics (floats) with ``stage``, ``step``, ``lr``."""
        start = time.perf_counter()
        self.model.train()
        metrics = train_step(self.model, self.objective, self.cfg, self.step, batch, self.generator,
                             self.discriminator, self.ema, self._autocast)
        self.step += 1
        elapsed = time.perf_counter() - start
        return {"stage": self.cfg.name, "step": self.step - 1, **metrics,
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
