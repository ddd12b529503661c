"""The Ray Train worker loop of generator training: a DeepSpeed engine over ``sweettok.ar.ArTransformer``.

Checkpoints are the curriculum's (``train/checkpoint.py``, ``train/integrity.py``): a DeepSpeed engine
directory ``gen/`` (ZeRO partitions per rank), rank 0's full weights, state and metrics, every rank's data
position, manifests with sha256, and a committed marker per rank; a restart resumes from the newest
checkpoint that verifies, so finished steps never run again.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from sweettok_platform.ar.config import ArJobConfig
from sweettok_platform.log import get_logger

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
    from ray.train.v2._internal.execution import context as train_context

    logging.getLogger(train_context.__file__).setLevel(logging.WARNING)
    if not plan.job.use_gpu:
        os.environ["DS_ACCELERATOR"] = "cpu"  # before deepspeed is imported in this process
    ArRunner(plan).run()


class ArRunner:
    """One worker's view of a generator run: build, restore, step, checkpoint."""

    def __init__(self, plan: ArWorkerPlan) -> None:
        import deepspeed
        import ray.train

        from sweettok.ar import ArConfig, ArTransformer
        from sweettok.train.trainer import param_groups
        from sweettok_platform.ar.data import TokenShard
        from sweettok_platform.train.loop import deepspeed_config, log_placement

        self.plan, job = plan, plan.job
        ctx = ray.train.get_context()
        self.rank, self.world = ctx.get_world_rank(), ctx.get_world_size()
        if job.use_gpu:
            from ray.train.torch import get_device

            self.device = get_device()
        else:
            self.device = torch.device("cpu")
            torch.set_num_threads(max(1, int(job.cpus_per_worker)))
        torch.manual_seed(job.seed)  # identical init on every rank
        self.model = ArTransformer(ArConfig(**plan.model_config))
        module = SequenceLoss(self.model)
        params = param_groups(module, list(module.parameters()), job.optim.weight_decay)
        self.engine, *_ = deepspeed.initialize(
            model=module.to(self.device), model_parameters=params,
            config=deepspeed_config(job.optim, zero_stage=job.zero_stage, precision=job.resolved_precision,
                                    lr=job.optim.lr),
        )
        self.data = TokenShard(job.corpus, rank=self.rank, world=self.world, batch_size=job.optim.batch_size,
                               seed=job.seed * 1000 + self.rank)
        log_placement(self.rank, self.world, job.placement_strategy, log)
        self.step, self.attempt, self.rows = 0, 0, []
        self._restore()

    # ---- checkpoints (the curriculum's format and checks) ----------------------------------------
    def _restore(self) -> None:
        from sweettok_platform.train.loop import restore_newest

        restore_newest(self.plan.job.run_uri, self.world, self.rank, self._load, self._log)

    def _load(self, path: str, d: str) -> None:
        from sweettok_platform.train import checkpoint as ck
        from sweettok_platform.train.loop import load_engines

        state = load_engines(path, d, self.world, [(self.engine, "gen")])
        self.data.seek(ck.load_position(d, self.rank))
        if self.rank == 0:
            self.rows = [r for r in ck.read_metrics(os.path.join(d, "metrics.jsonl")) if r["step"] <= state.step]
        self.step, self.attempt = state.step, state.attempt + 1
        if self.rank == 0:
            self._log(f"resumed from {path} at step {self.step} (attempt {self.attempt})")
            if self.plan.live_metrics:
                ck.write_jsonl(self.plan.live_metrics, self.rows)

    def _save(self, summary: dict[str, Any]) -> None:
        from sweettok_platform.train import checkpoint as ck
        from sweettok_platform.train.loop import commit_checkpoint

        def write(tmp: str) -> None:
            self.engine.save_checkpoint(tmp, tag="gen")
            state = ck.TrainState(stage=STAGE, step=self.step, attempt=self.attempt, world_size=self.world)
            weights = ck.model_state(self.model) if self.rank == 0 else None
            ck.save_rank_files(tmp, rank=self.rank, state=state, position=self.data.position, weights=weights,
                               metrics=self.rows if self.rank == 0 else None)

        commit_checkpoint(write, summary, step=self.step, rank=self.rank, prefix="sweettok-ar",
                          commit_uri=self.plan.job.run_uri)

    # ---- training -------------------------------------------------------------------------------
    def _fault(self) -> None:
        from sweettok_platform.train.loop import inject_fault

        inject_fault(self.plan.job.fault, STAGE, self.rank, self.step, self._log)

    def train_step(self) -> dict[str, float]:
        """One optimizer step; the class-dropout draw is seeded by (seed, step, rank), so a redone step is equal."""
        from sweettok.ar import class_drop_mask
        from sweettok.train.config import lr_at

        job = self.plan.job
        lr = lr_at(self.step, job.optim)
        for group in self.engine.optimizer.param_groups:
            group["lr"] = lr
        ids, labels = self.data.next_batch()
        generator = torch.Generator().manual_seed(job.seed * 1_000_003 + self.step * 1009 + self.rank)
        drop = class_drop_mask(labels.shape[0], self.model.config.class_dropout, generator)
        loss = self.engine(ids.to(self.device), labels.to(self.device), drop.to(self.device))
        self.engine.backward(loss)
        self.engine.step()
        return {"loss": float(loss.detach()), "lr": lr}

    def run(self) -> None:
        from sweettok_platform.train import checkpoint as ck
        from sweettok_platform.train.loop import mean_across_ranks

        job = self.plan.job
        steps, every = job.optim.steps, max(1, job.checkpoint_every)
        tokens_per_step = job.optim.batch_size * self.model.config.tokens  # per worker
        if self.rank == 0 and self.step == 0:
            self._log(f"{self.world} workers, ZeRO-{job.zero_stage}, {job.resolved_precision}, {len(self.data)} clips "
                      f"on rank 0, {steps} steps of {job.optim.batch_size} x {self.model.config.tokens} tokens per worker")
        while self.step < steps:
            self._fault()
            start = time.perf_counter()
            metrics = self.train_step()
            elapsed = time.perf_counter() - start  # this worker's own step (before the metrics all-reduce)
            metrics = mean_across_ranks({**metrics, "tokens_per_s_per_worker": tokens_per_step / elapsed},
                                        self.world, self.device)
            self.step += 1
            row = {"stage": STAGE, "step": self.step, "attempt": self.attempt, **metrics, "step_time_s": elapsed}
            if self.rank == 0:
                self.rows.append(row)
                if self.plan.live_metrics:
                    for name in ("metrics.jsonl", "executed.jsonl"):
                        ck.append_jsonl(os.path.join(os.path.dirname(self.plan.live_metrics), name), row)
                if self.step % max(1, job.log_every) == 0 or self.step == steps:
                    self._log(progress_line(row, steps))
            if self.step % every == 0 or self.step == steps:
                self._save({k: v for k, v in row.items() if isinstance(v, (int, float))})

    def _log(self, message: str, level: int = logging.INFO) -> None:
        log.log(level, f"[{self.plan.job.run_name}] {message}")


def progress_line(row: dict[str, Any], total: int) -> str:
    width = 20
    done = int(width * row["step"] / total)
    return (f"|{'#' * done}{'.' * (width - done)}| step {row['step']}/{total} loss {row['loss']:.4g} "
            f"lr {row['lr']:.2e} {row['tokens_per_s_per_worker']:.0f} tokens/s per worker")
