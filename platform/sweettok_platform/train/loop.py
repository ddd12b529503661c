"""The Ray Train worker of one curriculum stage: DeepSpeed engines, EMA, the schedule, on the core loop.

Runs inside each training worker (``TorchTrainer(train_loop_per_worker=train_worker)``). The model, losses
and schedule are plain PyTorch from ``sweettok.train``; ``StageRunner`` builds them and supplies the step to
``core.raytrain.worker.WorkerLoop``, which restores, logs, averages metrics and checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sweettok_platform.core.log import get_logger
from sweettok_platform.core.raytrain import checkpoint as ck
from sweettok_platform.core.raytrain.worker import (EngineUpdater, WorkerLoop, deepspeed_config, ds_initialize,
                                                    log_placement, prepare_worker, progress_bar)
from sweettok_platform.train.config import TrainJobConfig

log = get_logger("train")


@dataclass(kw_only=True)
class WorkerPlan:
    """Everything a worker needs for one stage (crosses the Ray boundary as one typed object)."""

    job: TrainJobConfig
    stage: Any  # sweettok.train.config.StageConfig (resolved, with the job's overrides)
    model_config: dict[str, Any]  # TokenizerConfig.to_dict()
    init_weights: Any = None  # ObjectRef of safetensors bytes (previous stage's EMA weights) or None
    init_prefix: str | None = None  # load only these keys of init_weights (job.init_prefix), the rest fresh
    live_metrics: str | None = None  # rank 0 mirrors metrics.jsonl here while training (on its node),
    # and appends every executed step, redone ones included, to executed.jsonl beside it
    dataset_index: str | None = None  # URI of the dataset index the driver built (None: probe the files)


def train_worker(config: dict[str, Any]) -> None:
    """Ray Train entry point: ``config = {"plan": WorkerPlan}``."""
    plan: WorkerPlan = config["plan"]
    prepare_worker(plan.job.use_gpu)
    StageRunner(plan).run()


def load_init(model: Any, state: dict[str, Any], prefix: str | None) -> None:
    """Load a stage's starting weights: all of them, or only the keys under ``prefix`` (all must be there)."""
    if prefix is None:
        model.load_state_dict(state, strict=True)
        return
    own = [k for k in model.state_dict() if k.startswith(prefix)]
    missing = [k for k in own if k not in state]
    if not own or missing:
        raise ValueError(f"init_prefix {prefix!r}: the init weights lack {missing[:3] or 'every key'} of this model")
    model.load_state_dict({k: state[k] for k in own}, strict=False)


class StageRunner(WorkerLoop):
    """One worker's view of a stage: the generator (and stage 3's discriminator) engines, EMA on rank 0."""

    def __init__(self, plan: WorkerPlan) -> None:
        import ray
        import torch
        from safetensors.torch import load as load_safetensors

        from sweettok import SweetTokenizer, TokenizerConfig
        from sweettok.train.convnext import ConvNeXtConfig
        from sweettok.train.ema import EMA
        from sweettok.train.lpips import LPIPSConfig
        from sweettok.train.objectives import CurriculumObjective, set_trainable
        from sweettok.train.trainer import param_groups
        from sweettok_platform.train import index as dataset_index
        from sweettok_platform.train.data import worker_loader

        job, cfg = plan.job, plan.stage
        super().__init__(job, stage=cfg.name, run_name=job.run_name(cfg.name), run_uri=job.stage_uri(cfg.name),
                         live_metrics=plan.live_metrics, checkpoint_every=cfg.checkpoint_every, logger=log,
                         prefix="sweettok-ckpt")
        self.plan, self.index, self.steps = plan, cfg.index, cfg.steps
        model_config = TokenizerConfig.from_dict(plan.model_config)
        model = SweetTokenizer(model_config)
        if plan.init_weights is not None:
            load_init(model, load_safetensors(ray.get(plan.init_weights)), plan.init_prefix)
        params = param_groups(model, set_trainable(model, self.index, cfg.finetune_teacher_decoder,
                                                   cfg.freeze_tokenizer), cfg.weight_decay)
        self.objective = CurriculumObjective(
            [cfg], lpips=LPIPSConfig(vgg_weights=job.lpips_vgg_weights) if cfg.loss.lpips > 0 else None,
            convnext=ConvNeXtConfig(weights=job.convnext_weights) if job.convnext_weights else None,
        ).to(self.device)
        precision = job.precision_for(cfg)
        ds = dict(zero_stage=job.zero_stage, precision=precision)
        self.engine, *_ = ds_initialize(
            model=model.to(self.device), model_parameters=params,
            config=deepspeed_config(cfg, lr=cfg.lr, **ds),
        )
        self.disc = None
        if self.index == 3 and cfg.loss.gan > 0:
            d = self.objective.discriminator
            self.disc, *_ = ds_initialize(
                model=d, model_parameters=list(d.parameters()), config=deepspeed_config(cfg, lr=cfg.disc_lr, **ds)
            )
        self.engines = [(self.engine, "gen"), (self.disc, "disc")]
        self.dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
        log_placement(self.rank, self.world, job.placement_strategy, log)
        self.ema = EMA(self.engine.module, cfg.ema_decay) if self.rank == 0 else None
        patch = model_config.patch
        self.data = self.loader = worker_loader(
            job.dataset, frames=patch.frames, height=patch.height, width=patch.width,
            images=cfg.data == "images", batch_size=cfg.batch_size, rank=self.rank, world=self.world,
            seed=job.seed + self.index,
            index=dataset_index.read(plan.dataset_index) if plan.dataset_index else None,
        )
        self.clips_per_step = cfg.batch_size * self.world
        self.restore()

    # ---- WorkerLoop hooks -----------------------------------------------------------------------
    def train_step(self) -> dict[str, float]:
        """One optimizer step of the generator (and the discriminator in stage 3): the step the in-process
        ``Trainer`` runs (``sweettok.train.trainer.train_step``), with DeepSpeed engines as updaters."""
        from sweettok.train.trainer import train_step

        x = self.loader.next_batch().to(self.device, self.dtype)  # (b, c, t, h, w)
        metrics = train_step(self.engine, self.objective, self.plan.stage, self.step, x,
                             EngineUpdater(self.engine), EngineUpdater(self.disc) if self.disc else None, self.ema)
        return {**metrics, **self._memory()}

    def step_extras(self, elapsed: float) -> dict[str, float]:
        return {"input_wait_s": self.loader.take_wait(), "clips_per_s": self.clips_per_step / elapsed}

    def start_line(self) -> str:
        job, cfg = self.plan.job, self.plan.stage
        return (f"{self.world} workers, ZeRO-{job.zero_stage}, {job.precision_for(cfg)}, {len(self.loader)} clips "
                f"on rank 0, {cfg.steps} steps of {self.clips_per_step} clips")

    def progress_line(self, row: dict[str, Any]) -> str:
        return _progress_line(row, self.steps)

    def rank0_weights(self) -> dict[str, Any] | None:
        assert self.ema is not None
        weights = ck.model_state(self.engine.module)
        weights.update({k: v.cpu() for k, v in self.ema.shadow.items()})
        return weights

    def ema_state(self) -> dict[str, Any] | None:
        return self.ema.state_dict() if self.ema is not None else None

    def load_extra(self, directory: str) -> None:
        if self.ema is not None:
            self.ema.load_state_dict(ck.load_ema(directory))

    def finish(self) -> None:
        self.loader.close()

    def _memory(self) -> dict[str, float]:
        """This worker's peak memory: process RSS (CPU) or allocated device memory, and optimizer state."""
        import resource

        import torch

        inner = getattr(self.engine.optimizer, "optimizer", self.engine.optimizer)
        state_bytes = sum(t.numel() * t.element_size() for s in inner.state.values() for t in s.values()
                          if torch.is_tensor(t))
        out = {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
               "optim_state_mb": state_bytes / 2**20}
        if self.device.type == "cuda":
            out["peak_device_mb"] = torch.cuda.max_memory_allocated(self.device) / 2**20
        return out


def _progress_line(row: dict[str, Any], total: int) -> str:
    """A compact console line: step, loss terms, usage, throughput."""
    # stage 0's loss goes below zero through the code-usage entropy term (maximised): shown on its own
    keys = [k for k in ("loss", "ce", "vq", "mse", "entropy", "lpips", "gan", "disc_loss", "code_accuracy",
                        "spatial_usage", "temporal_usage", "teacher_usage") if k in row]
    terms = " ".join(f"{k} {row[k]:.4g}" for k in keys)
    # input wait: the share of the step spent waiting for decoded clips (high: decoding is the bottleneck)
    wait = row.get("input_wait_s", 0.0) / max(row["step_time_s"], 1e-9)
    return (f"{progress_bar(row['step'], total)} {terms} "
            f"lr {row['lr']:.2e} {row['clips_per_s']:.1f} clips/s, input wait {wait:.0%}")
