"""The Ray Train worker loop of one curriculum stage: DeepSpeed engines, EMA, schedule, checkpoints.

Runs inside each training worker (``TorchTrainer(train_loop_per_worker=train_worker)``). The model,
losses and schedule are plain PyTorch from ``sweettok.train``; this file only wires them to DeepSpeed,
the data shard and Ray Train's report/checkpoint calls.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Callable

from sweettok_platform.log import get_logger
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


def deepspeed_config(stage: Any, *, zero_stage: int, precision: str, lr: float) -> dict[str, Any]:
    """The DeepSpeed config of one engine: ZeRO stage, precision, AdamW (torch's on CPU), clipping."""
    config: dict[str, Any] = {
        "train_micro_batch_size_per_gpu": stage.batch_size,
        "gradient_accumulation_steps": 1,
        "zero_optimization": {"stage": zero_stage},
        "optimizer": {"type": "AdamW", "params": {
            "lr": lr, "betas": list(stage.betas), "eps": stage.eps, "weight_decay": stage.weight_decay,
            "torch_adam": True,  # torch.optim.AdamW: no JIT-built fused op needed on the nodes
        }},
        "fp16": {"enabled": precision == "fp16"},
        "bf16": {"enabled": precision == "bf16"},
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }
    if stage.grad_clip > 0:
        config["gradient_clipping"] = stage.grad_clip
    return config


class EngineUpdater:
    """``sweettok.train.trainer.Updater`` over a DeepSpeed engine (its config does clipping and precision)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def set_lr(self, lr: float) -> None:
        for group in self.engine.optimizer.param_groups:
            group["lr"] = lr

    def update(self, loss: Any) -> dict[str, float]:
        self.engine.backward(loss)
        self.engine.step()
        return {}


def train_worker(config: dict[str, Any]) -> None:
    """Ray Train entry point: ``config = {"plan": WorkerPlan}``."""
    plan: WorkerPlan = config["plan"]
    # Ray Train logs each report (the whole metrics dict) at INFO under a file-path logger name that its
    # own log-level setting misses: keep it to warnings like the rest of Ray Train's lines
    from ray.train.v2._internal.execution import context as train_context

    logging.getLogger(train_context.__file__).setLevel(logging.WARNING)
    if not plan.job.use_gpu:
        os.environ["DS_ACCELERATOR"] = "cpu"  # before deepspeed is imported in this process
    StageRunner(plan).run()


def log_placement(rank: int, world: int, strategy: str, logger: Any) -> None:
    """Rank 0 prints one line: on which Ray nodes the workers run (every rank's node id, gathered)."""
    import ray
    import torch.distributed as dist

    node = ray.get_runtime_context().get_node_id()
    nodes: list[Any] = [None] * world
    if dist.is_initialized() and world > 1:
        dist.all_gather_object(nodes, node)
    else:
        nodes = [node]
    if rank == 0:
        ranks = ", ".join(f"rank {r} on {n[:8]}" for r, n in enumerate(nodes))
        logger.info(f"placement ({strategy}): {world} workers on {len(set(nodes))} node(s): {ranks}")


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


class StageRunner:
    """One worker's view of a stage: build, restore, step, checkpoint."""

    def __init__(self, plan: WorkerPlan) -> None:
        import deepspeed
        import ray
        import ray.train
        import torch
        from safetensors.torch import load as load_safetensors

        from sweettok import SweetTokenizer, TokenizerConfig
        from sweettok.train.ema import EMA
        from sweettok.train.convnext import ConvNeXtConfig
        from sweettok.train.lpips import LPIPSConfig
        from sweettok.train.objectives import CurriculumObjective, set_trainable
        from sweettok.train.trainer import param_groups
        from sweettok_platform.train import index as dataset_index
        from sweettok_platform.train.data import worker_loader

        self.plan, job, cfg = plan, plan.job, plan.stage
        ctx = ray.train.get_context()
        self.rank, self.world = ctx.get_world_rank(), ctx.get_world_size()
        self.index = cfg.index
        if job.use_gpu:
            from ray.train.torch import get_device

            self.device = get_device()
        else:
            self.device = torch.device("cpu")
            torch.set_num_threads(max(1, int(job.cpus_per_worker)))
        torch.manual_seed(job.seed)  # identical init on every rank (DeepSpeed also broadcasts rank 0's)

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
        self.engine, *_ = deepspeed.initialize(
            model=model.to(self.device), model_parameters=params,
            config=deepspeed_config(cfg, lr=cfg.lr, **ds),
        )
        self.disc = None
        if self.index == 3 and cfg.loss.gan > 0:
            d = self.objective.discriminator
            self.disc, *_ = deepspeed.initialize(
                model=d, model_parameters=list(d.parameters()), config=deepspeed_config(cfg, lr=cfg.disc_lr, **ds)
            )
        self.dtype = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]
        log_placement(self.rank, self.world, job.placement_strategy, log)
        self.ema = EMA(self.engine.module, cfg.ema_decay) if self.rank == 0 else None
        patch = model_config.patch
        self.loader = worker_loader(
            job.dataset, frames=patch.frames, height=patch.height, width=patch.width,
            images=cfg.data == "images", batch_size=cfg.batch_size, rank=self.rank, world=self.world,
            seed=job.seed + self.index,
            index=dataset_index.read(plan.dataset_index) if plan.dataset_index else None,
        )
        self.step, self.attempt, self.rows = 0, 0, []
        self._restore()

    # ---- checkpoints --------------------------------------------------------------------------
    def _restore(self) -> None:
        """Resume from the newest complete checkpoint that verifies (Ray's, or a newer committed one on
        storage); corrupt ones are skipped with a warning, and no intact one left is an error."""
        restore_newest(self.plan.job.stage_uri(self.plan.stage.name), self.world, self.rank, self._load, self._log)

    def _load(self, path: str, d: str) -> None:
        from sweettok_platform.train import checkpoint as ck

        state = load_engines(path, d, self.world, [(self.engine, "gen"), (self.disc, "disc")])
        self.loader.seek(ck.load_position(d, self.rank))
        if self.ema is not None:
            self.ema.load_state_dict(ck.load_ema(d))
            self.rows = [r for r in ck.read_metrics(os.path.join(d, "metrics.jsonl")) if r["step"] <= state.step]
        self.step, self.attempt = state.step, state.attempt + 1
        if self.rank == 0:
            self._log(f"resumed from {path} at step {self.step} (attempt {self.attempt})")
            if self.plan.live_metrics:
                ck.write_jsonl(self.plan.live_metrics, self.rows)

    def _save(self, summary: dict[str, Any]) -> None:
        from sweettok_platform.train import checkpoint as ck

        def write(tmp: str) -> None:
            self.engine.save_checkpoint(tmp, tag="gen")
            if self.disc is not None:
                self.disc.save_checkpoint(tmp, tag="disc")
            state = ck.TrainState(stage=self.plan.stage.name, step=self.step, attempt=self.attempt,
                                  world_size=self.world)
            weights = ema = None
            if self.ema is not None:
                weights = ck.model_state(self.engine.module)
                weights.update({k: v.cpu() for k, v in self.ema.shadow.items()})
                ema = self.ema.state_dict()
            ck.save_rank_files(tmp, rank=self.rank, state=state, position=self.loader.position,
                               weights=weights, ema=ema, metrics=self.rows if self.rank == 0 else None)

        commit_checkpoint(write, summary, step=self.step, rank=self.rank, prefix="sweettok-ckpt",
                          commit_uri=self.plan.job.stage_uri(self.plan.stage.name))

    def _fault(self) -> None:
        inject_fault(self.plan.job.fault, self.plan.stage.name, self.rank, self.step, self._log)

    def _mean_across_ranks(self, metrics: dict[str, float]) -> dict[str, float]:
        return mean_across_ranks(metrics, self.world, self.device)

    def train_step(self) -> dict[str, float]:
        """One optimizer step of the generator (and the discriminator in stage 3): the step the in-process
        ``Trainer`` runs (``sweettok.train.trainer.train_step``), with DeepSpeed engines as updaters."""
        from sweettok.train.trainer import train_step

        x = self.loader.next_batch().to(self.device, self.dtype)  # (b, c, t, h, w)
        metrics = train_step(self.engine, self.objective, self.plan.stage, self.step, x,
                             EngineUpdater(self.engine), EngineUpdater(self.disc) if self.disc else None, self.ema)
        return {**metrics, **self._memory()}

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

    def run(self) -> None:
        from sweettok_platform.train import checkpoint as ck

        cfg, job = self.plan.stage, self.plan.job
        every = max(1, cfg.checkpoint_every)
        clips_per_step = cfg.batch_size * self.world
        if self.rank == 0 and self.step == 0:
            self._log(f"{self.world} workers, ZeRO-{job.zero_stage}, {job.precision_for(cfg)}, "
                      f"{len(self.loader)} clips on rank 0, {cfg.steps} steps of {clips_per_step} clips")
        while self.step < cfg.steps:
            self._fault()
            start = time.perf_counter()
            metrics = self.train_step()
            metrics["input_wait_s"] = self.loader.take_wait()
            metrics = self._mean_across_ranks(metrics)
            elapsed = time.perf_counter() - start
            self.step += 1
            row = {"stage": cfg.name, "step": self.step, "attempt": self.attempt, **metrics,
                   "clips_per_s": clips_per_step / elapsed, "step_time_s": elapsed}
            if self.rank == 0:
                self.rows.append(row)
                if self.plan.live_metrics:
                    for name in ("metrics.jsonl", "executed.jsonl"):
                        ck.append_jsonl(os.path.join(os.path.dirname(self.plan.live_metrics), name), row)
                if self.step % max(1, job.log_every) == 0 or self.step == cfg.steps:
                    self._log(_progress_line(row, cfg.steps))
            if self.step % every == 0 or self.step == cfg.steps:
                self._save({k: v for k, v in row.items() if isinstance(v, (int, float))})
        self.loader.close()

    def _log(self, message: str, level: int = logging.INFO) -> None:
        log.log(level, f"[{self.plan.job.run_name(self.plan.stage.name)}] {message}")


# ---- shared by every Ray Train worker loop of the project (curriculum stages, the AR generator) ----------
def restore_newest(run_uri: str, world: int, rank: int, load: Callable[[str, str], None],
                   log: Callable[..., None]) -> None:
    """Call ``load(path, local_dir)`` with the newest checkpoint of the run that verifies (Ray's, or a newer
    committed one on storage); corrupt ones are skipped with a warning, and none intact left is an error."""
    import ray.train

    from sweettok_platform.train import integrity

    skipped = []
    for checkpoint in integrity.restore_candidates(ray.train.get_checkpoint(), run_uri, world):
        with checkpoint.as_directory() as d:
            problem = integrity.verify(d, world)
            if problem is None:
                load(checkpoint.path, d)
                return
        skipped.append(f"{checkpoint.path}: {problem}")
        if rank == 0:
            log(f"checkpoint {checkpoint.path} fails verification ({problem}); trying an older one", logging.WARNING)
    if skipped:
        raise integrity.CheckpointCorruptError(f"no intact checkpoint to resume from: {'; '.join(skipped)}")


def load_engines(path: str, d: str, world: int, engines: list[tuple[Any, str]]) -> Any:
    """The checkpoint's ``TrainState`` after loading each DeepSpeed engine (``None`` ones skipped) from its tag;
    a checkpoint written by another number of workers is refused (ZeRO partitions would not match)."""
    from sweettok_platform.train import checkpoint as ck
    from sweettok_platform.train.integrity import safe_deepspeed_loading

    state = ck.load_state(d)
    if state.world_size != world:
        raise ValueError(f"checkpoint {path} was written by {state.world_size} workers, "
                         f"this run has {world}; ZeRO optimizer partitions do not match")
    for engine, tag in engines:
        if engine is not None:
            safe_deepspeed_loading(engine)  # weights_only=True: never unpickles code
            engine.load_checkpoint(d, tag=tag)
    return state


def commit_checkpoint(write: Callable[[str], None], summary: dict[str, Any], *, step: int, rank: int,
                      prefix: str, commit_uri: str) -> None:
    """One rank's checkpoint: ``write(dir)`` fills a temporary directory, a manifest of sizes and sha256 is
    added (checked before any resume), Ray Train reports it, and the rank marks the step committed."""
    import ray.train

    from sweettok_platform.train import checkpoint as ck
    from sweettok_platform.train import integrity

    tmp = tempfile.mkdtemp(prefix=f"{prefix}-r{rank}-")
    try:
        write(tmp)
        integrity.write_manifest(tmp, rank)
        ray.train.report(summary, checkpoint=ray.train.Checkpoint.from_directory(tmp),
                         checkpoint_dir_name=ck.checkpoint_name(step))
        ck.mark_committed(commit_uri, step, rank)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def inject_fault(fault: Any, stage: str, rank: int, step: int, log: Callable[[str], None]) -> None:
    """Fault injection for recovery tests: rank 0 exits hard before ``fault.step`` of ``fault.stage``, once."""
    if (fault is not None and rank == 0 and fault.stage == stage and fault.step == step + 1
            and not os.path.exists(fault.marker)):
        with open(fault.marker, "w") as f:
            f.write(f"rank 0 exited before step {fault.step}\n")
        log(f"fault injection: exiting before step {fault.step}")
        os._exit(1)


def mean_across_ranks(metrics: dict[str, float], world: int, device: Any) -> dict[str, float]:
    """Each metric averaged over the ranks (one all-reduce)."""
    import torch
    import torch.distributed as dist

    if world == 1 or not dist.is_initialized():
        return metrics
    keys = sorted(metrics)
    values = torch.tensor([metrics[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(values)
    return {k: float(v) / world for k, v in zip(keys, values.tolist())}


def _progress_line(row: dict[str, Any], total: int) -> str:
    """A compact console line: step, loss terms, usage, throughput."""
    width = 20
    done = int(width * row["step"] / total)
    # stage 0's loss goes below zero through the code-usage entropy term (maximised): shown on its own
    keys = [k for k in ("loss", "ce", "vq", "mse", "entropy", "lpips", "gan", "disc_loss", "code_accuracy",
                        "spatial_usage", "temporal_usage", "teacher_usage") if k in row]
    terms = " ".join(f"{k} {row[k]:.4g}" for k in keys)
    # input wait: the share of the step spent waiting for decoded clips (high: decoding is the bottleneck)
    wait = row.get("input_wait_s", 0.0) / max(row["step_time_s"], 1e-9)
    return (f"|{'#' * done}{'.' * (width - done)}| step {row['step']}/{total} {terms} "
            f"lr {row['lr']:.2e} {row['clips_per_s']:.1f} clips/s, input wait {wait:.0%}")
