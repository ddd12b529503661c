"""The Ray Train worker loop of generator training: a DeepSpeed engine over ``sweettok.ar.ArTransformer``.

The loop and its checkpoints are the curriculum's (``core.raytrain.worker.WorkerLoop``): a DeepSpeed engine
directory ``gen/`` (ZeRO partitions per rank), rank 0's full weights, state and metrics, every rank's data
position, manifests with sha256, and a committed marker per rank; a restart resumes from the newest
checkpoint that verifies, so finished steps never run again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from sweettok_platform.ar.config import ArJobConfig
from sweettok_platform.core.log import get_logger
from sweettok_platform.core.raytrain import checkpoint as ck
from sweettok_platform.core.raytrain.worker import (EngineUpdater, WorkerLoop, deepspeed_config, ds_initialize,
                                                    log_placement, prepare_worker, progress_bar)

log = get_logger("ar")
STAGE = "ar"  # the TrainState / fault-injection stage name of generator runs


@dataclass(kw_only=True)
class ArWorkerPlan:
    """Everything a worker needs (crosses the Ray boundary as one typed object)."""

    job: ArJobConfig
    model_config: dict[str, Any]  # ArConfig.to_dict()
    live_metrics: str | None = None  # rank 0 mirrors metrics.jsonl (and appends executed.jsonl) here


class SequenceLoss(nn.Module):
    """The engine's module: ``forward(ids, labels, drop)`` -> next-token loss, so DeepSpeed's forward wraps it."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids: torch.Tensor, labels: torch.Tensor, drop: torch.Tensor) -> torch.Tensor:
        return self.model.loss(ids, labels, drop)


def ar_worker(config: dict[str, Any]) -> None:
    """Ray Train entry point: ``config = {"plan": ArWorkerPlan}``."""
    plan: ArWorkerPlan = config["plan"]
    prepare_worker(plan.job.use_gpu)
    ArRunner(plan).run()


class ArRunner(WorkerLoop):
    """One worker's view of a generator run: one DeepSpeed engine over the transformer's sequence loss."""

    def __init__(self, plan: ArWorkerPlan) -> None:
        from sweettok.ar import ArConfig, ArTransformer
        from sweettok.train.trainer import param_groups
        from sweettok_platform.ar.data import TokenShard

        job = plan.job
        super().__init__(job, stage=STAGE, run_name=job.run_name, run_uri=job.run_uri, live_metrics=plan.live_metrics,
                         checkpoint_every=job.checkpoint_every, logger=log, prefix="sweettok-ar")
        self.plan, self.steps = plan, job.optim.steps
        self.model = ArTransformer(ArConfig(**plan.model_config))
        module = SequenceLoss(self.model)
        params = param_groups(module, list(module.parameters()), job.optim.weight_decay)
        self.engine, *_ = ds_initialize(
            model=module.to(self.device), model_parameters=params,
            config=deepspeed_config(job.optim, zero_stage=job.zero_stage, precision=job.resolved_precision,
                                    lr=job.optim.lr),
        )
        self.engines = [(self.engine, "gen")]
        self.updater = EngineUpdater(self.engine)
        self.data = TokenShard(job.corpus, rank=self.rank, world=self.world, batch_size=job.optim.batch_size,
                               seed=job.seed * 1000 + self.rank)
        log_placement(self.rank, self.world, job.placement_strategy, log)
        self.tokens_per_step = job.optim.batch_size * self.model.config.tokens  # per worker
        self.restore()

    def train_step(self) -> dict[str, float]:
        """One optimizer step; the class-dropout draw is seeded by (seed, step, rank), so a redone step is equal."""
        from sweettok.ar import class_drop_mask
        from sweettok.train.config import lr_at

        job = self.plan.job
        lr = lr_at(self.step, job.optim)
        self.updater.set_lr(lr)
        ids, labels = self.data.next_batch()
        generator = torch.Generator().manual_seed(job.seed * 1_000_003 + self.step * 1009 + self.rank)
        drop = class_drop_mask(labels.shape[0], self.model.config.class_dropout, generator)
        loss = self.engine(ids.to(self.device), labels.to(self.device), drop.to(self.device))
        self.updater.update(loss)
        return {"loss": float(loss.detach()), "lr": lr}

    def step_extras(self, elapsed: float) -> dict[str, float]:
        return {"tokens_per_s_per_worker": self.tokens_per_step / elapsed}

    def start_line(self) -> str:
        job = self.plan.job
        return (f"{self.world} workers, ZeRO-{job.zero_stage}, {job.resolved_precision}, {len(self.data)} clips on "
                f"rank 0, {self.steps} steps of {job.optim.batch_size} x {self.model.config.tokens} tokens per worker")

    def progress_line(self, row: dict[str, Any]) -> str:
        return progress_line(row, self.steps)

    def rank0_weights(self) -> dict[str, Any] | None:
        return ck.model_state(self.model)


def progress_line(row: dict[str, Any], total: int) -> str:
    return (f"{progress_bar(row['step'], total)} loss {row['loss']:.4g} "
            f"lr {row['lr']:.2e} {row['tokens_per_s_per_worker']:.0f} tokens/s per worker")
