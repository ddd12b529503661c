"""The one Ray Train worker loop of the project: the curriculum's stages and the generator each supply a
``WorkerLoop`` subclass (its engines, data and step); the loop owns everything else.

Each step: fault injection (tests) -> the subclass's ``train_step`` -> metrics averaged across ranks (one
all-reduce) -> rank 0 appends the row to ``metrics.jsonl``/``executed.jsonl`` and prints a progress line ->
every ``checkpoint_every`` steps a checkpoint: every DeepSpeed engine under its tag, rank 0's full weights,
state and metrics, every rank's data position, a sha256 manifest per rank, Ray Train's report, a committed
marker per rank. On start the newest checkpoint that verifies is restored, so committed steps never run again.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from typing import Any, Callable

from sweettok_platform.core.raytrain import checkpoint as ck
from sweettok_platform.core.raytrain import integrity


def prepare_worker(use_gpu: bool) -> None:
    """First thing in a Ray Train worker: Ray Train's per-report INFO lines (logged under a file-path logger
    name its own log-level setting misses) down to warnings; DeepSpeed's CPU accelerator without a GPU."""
    from ray.train.v2._internal.execution import context as train_context

    logging.getLogger(train_context.__file__).setLevel(logging.WARNING)
    if not use_gpu:
        os.environ["DS_ACCELERATOR"] = "cpu"  # before deepspeed is imported in this process


def ds_initialize(**kwargs: Any) -> Any:
    """``deepspeed.initialize(**kwargs)`` without the one line DeepSpeed ``print``s (not logs) when a process
    first loads its CPU shared-memory comm op, "DeepSpeed ...shm_comm_op built successfully": once per worker
    per run, it was 10 of the demo's foreign lines. Every other print passes (Ray Train routes them to its
    logger)."""
    import builtins

    import deepspeed

    current = builtins.print

    def print_(*objects: Any, **options: Any) -> None:
        text = " ".join(map(str, objects))
        if not (text.startswith("DeepSpeed ") and text.endswith(" built successfully")):
            current(*objects, **options)

    builtins.print = print_
    try:
        return deepspeed.initialize(**kwargs)
    finally:
        builtins.print = current


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


class WorkerLoop:
    """One worker's run: restore, step, log, checkpoint. A subclass builds its engines and data in
    ``__init__`` (after ``super().__init__``, which sets rank, world, device and the seed), sets
    ``self.engines`` (``[(engine or None, tag)]``), ``self.data`` (``seek``/``position``/``len``) and
    ``self.steps``, calls ``self.restore()``, and supplies ``train_step``; the hooks below are optional."""

    engines: list[tuple[Any, str]]
    data: Any
    steps: int

    def __init__(self, job: Any, *, stage: str, run_name: str, run_uri: str, live_metrics: str | None,
                 checkpoint_every: int, logger: logging.Logger, prefix: str) -> None:
        import ray.train
        import torch

        self.job, self.stage, self.run_name, self.run_uri = job, stage, run_name, run_uri
        self.live_metrics, self.every, self.logger, self.prefix = live_metrics, max(1, checkpoint_every), logger, prefix
        ctx = ray.train.get_context()
        self.rank, self.world = ctx.get_world_rank(), ctx.get_world_size()
        if job.use_gpu:
            from ray.train.torch import get_device

            self.device = get_device()
        else:
            self.device = torch.device("cpu")
            torch.set_num_threads(max(1, int(job.cpus_per_worker)))
        torch.manual_seed(job.seed)  # identical init on every rank (DeepSpeed also broadcasts rank 0's)
        self.step, self.attempt, self.rows = 0, 0, []

    # ---- supplied by the subclass ---------------------------------------------------------------
    def train_step(self) -> dict[str, float]:
        raise NotImplementedError

    def step_extras(self, elapsed: float) -> dict[str, float]:
        """Figures of this worker's step (before the all-reduce): throughput, input wait."""
        return {}

    def start_line(self) -> str:
        return f"{self.world} workers, {self.steps} steps"

    def progress_line(self, row: dict[str, Any]) -> str:
        return progress_bar(row["step"], self.steps)

    def rank0_weights(self) -> dict[str, Any] | None:
        """The full model weights rank 0 writes into each checkpoint."""
        return None

    def ema_state(self) -> dict[str, Any] | None:
        return None

    def load_extra(self, directory: str) -> None:
        """Restore what the subclass keeps beside its engines (rank 0's EMA) from a checkpoint directory."""

    def finish(self) -> None:
        """After the last step (close the data loader)."""

    # ---- the loop -------------------------------------------------------------------------------
    def restore(self) -> None:
        restore_newest(self.run_uri, self.world, self.rank, self._load, self.log)

    def _load(self, path: str, d: str) -> None:
        state = load_engines(path, d, self.world, self.engines)
        self.data.seek(ck.load_position(d, self.rank))
        if self.rank == 0:
            self.load_extra(d)
            self.rows = [r for r in ck.read_metrics(os.path.join(d, "metrics.jsonl")) if r["step"] <= state.step]
        self.step, self.attempt = state.step, state.attempt + 1
        if self.rank == 0:
            self.log(f"resumed from {path} at step {self.step} (attempt {self.attempt})")
            if self.live_metrics:
                ck.write_jsonl(self.live_metrics, self.rows)

    def _save(self, summary: dict[str, Any]) -> None:
        def write(tmp: str) -> None:
            for engine, tag in self.engines:
                if engine is not None:
                    engine.save_checkpoint(tmp, tag=tag)
            state = ck.TrainState(stage=self.stage, step=self.step, attempt=self.attempt, world_size=self.world)
            rank0 = self.rank == 0
            ck.save_rank_files(tmp, rank=self.rank, state=state, position=self.data.position,
                               weights=self.rank0_weights() if rank0 else None,
                               ema=self.ema_state() if rank0 else None, metrics=self.rows if rank0 else None)

        commit_checkpoint(write, summary, step=self.step, rank=self.rank, prefix=self.prefix, commit_uri=self.run_uri)

    def run(self) -> None:
        if self.rank == 0 and self.step == 0:
            self.log(self.start_line())
        while self.step < self.steps:
            inject_fault(self.job.fault, self.stage, self.rank, self.step, self.log)
            start = time.perf_counter()
            metrics = self.train_step()
            elapsed = time.perf_counter() - start  # this worker's own step (before the metrics all-reduce)
            metrics = mean_across_ranks({**metrics, **self.step_extras(elapsed)}, self.world, self.device)
            self.step += 1
            row = {"stage": self.stage, "step": self.step, "attempt": self.attempt, **metrics, "step_time_s": elapsed}
            if self.rank == 0:
                self.rows.append(row)
                if self.live_metrics:
                    for name in ("metrics.jsonl", "executed.jsonl"):
                        ck.append_jsonl(os.path.join(os.path.dirname(self.live_metrics), name), row)
                if self.step % max(1, self.job.log_every) == 0 or self.step == self.steps:
                    self.log(self.progress_line(row))
            if self.step % self.every == 0 or self.step == self.steps:
                self._save({k: v for k, v in row.items() if isinstance(v, (int, float))})
        self.finish()

    def log(self, message: str, level: int = logging.INFO) -> None:
        self.logger.log(level, f"[{self.run_name}] {message}")


def progress_bar(step: int, total: int, width: int = 20) -> str:
    done = int(width * step / total)
    return f"|{'#' * done}{'.' * (width - done)}| step {step}/{total}"


def restore_newest(run_uri: str, world: int, rank: int, load: Callable[[str, str], None],
                   log: Callable[..., None]) -> None:
    """Call ``load(path, local_dir)`` with the newest checkpoint of the run that verifies (Ray's, or a newer
    committed one on storage); corrupt ones are skipped with a warning, and none intact left is an error."""
    import ray.train

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

    state = ck.load_state(d)
    if state.world_size != world:
        raise ValueError(f"checkpoint {path} was written by {state.world_size} workers, "
                         f"this run has {world}; ZeRO optimizer partitions do not match")
    for engine, tag in engines:
        if engine is not None:
            integrity.safe_deepspeed_loading(engine)  # weights_only=True: never unpickles code
            engine.load_checkpoint(d, tag=tag)
    return state


def commit_checkpoint(write: Callable[[str], None], summary: dict[str, Any], *, step: int, rank: int,
                      prefix: str, commit_uri: str) -> None:
    """One rank's checkpoint: ``write(dir)`` fills a temporary directory, a manifest of sizes and sha256 is
    added (checked before any resume), Ray Train reports it, and the rank marks the step committed."""
    import ray.train

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
