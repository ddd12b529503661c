"""The driver side every Ray Train run of the project shares: the ``TorchTrainer`` it builds, and one run
from start (or resume) to its verified final checkpoint."""

from __future__ import annotations

import os
import time
from typing import Any

from sweettok import storage
from sweettok_platform.core.log import RAY_RUNTIME_ENV
from sweettok_platform.core.raytrain import checkpoint as ck
from sweettok_platform.core.raytrain import integrity


def ensure_ray(use_gpu: bool, address: str | None = None, num_cpus: int | None = None) -> None:
    """Join ``address`` (or RAY_ADDRESS), else start a local Ray (of ``num_cpus``), with the project's worker
    setup; nothing when this process is already connected. A local Ray starts with its dashboard: it serves the
    State API that Ray Train's placement-group cleaner polls every second (without it each poll logs a warning).
    The worker setup (``core.log.ray_worker_setup``) points that cleaner at this cluster when several run on one
    machine (without it: "Found multiple active Ray instances" and a traceback)."""
    import ray

    if ray.is_initialized():
        return
    env = {"env_vars": {"DS_ACCELERATOR": "cpu"}} if not use_gpu else {}
    joining = address or os.environ.get("RAY_ADDRESS")
    local = {} if joining else {"include_dashboard": True, "num_cpus": num_cpus}
    ray.init(address=address, runtime_env={**RAY_RUNTIME_ENV, **env}, **local)


def clear_stale_logs(run_uri: str, num_workers: int, log_dir: str) -> None:
    """A run with no committed checkpoint starts fresh: no metrics rows from an older run in ``log_dir``."""
    if ck.latest_committed(run_uri, num_workers) is None:
        for name in ("metrics.jsonl", "executed.jsonl"):
            if os.path.exists(os.path.join(log_dir, name)):
                os.remove(os.path.join(log_dir, name))


def torch_trainer(worker: Any, plan: Any, job: Any, *, name: str, env: dict[str, str]) -> Any:
    """The ``TorchTrainer`` every training run of the project uses: ``job``'s workers and resources, gloo on
    CPU (DeepSpeed's CPU accelerator) or nccl on GPU, checkpoints and failure retries under
    ``job.storage_path``, and Ray Train's own console lines at WARNING (its INFO lines repeat each step's
    metrics dict; the project's progress lines are INFO and stay)."""
    from ray.train import CheckpointConfig, FailureConfig, LoggingConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    # Ray Train's preemption watcher (an extra actor per run) only logs node drains and answers
    # ray.train.get_preemption_info(), which no worker here asks: a lost node is a failure that resumes from
    # the newest checkpoint. Off unless the user's environment turns it on; Ray passes the driver's setting
    # to the controller. (Each run had also logged a core_worker ERROR line about the watcher's arguments.)
    os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
    env = dict(env)
    if not job.use_gpu:
        env["DS_ACCELERATOR"] = "cpu"
    resources = {"CPU": job.cpus_per_worker, **({"GPU": job.gpus_per_worker} if job.use_gpu else {})}
    storage_path, fs = job.storage_path, None
    if storage_path.startswith("s3://"):
        # keys in the driver's environment are pinned so the pickled filesystem works in Ray Train's
        # controller and workers; without keys (instance roles, IRSA) each process uses its default chain
        fs, storage_path = storage.s3_filesystem(pin_keys=True), storage_path[len("s3://"):]
    return TorchTrainer(
        worker,
        train_loop_config={"plan": plan},
        scaling_config=ScalingConfig(num_workers=job.num_workers, use_gpu=job.use_gpu,
                                     resources_per_worker=resources, placement_strategy=job.placement_strategy),
        torch_config=TorchConfig(backend="nccl" if job.use_gpu else "gloo"),
        run_config=RunConfig(
            name=name, storage_path=storage_path, storage_filesystem=fs,
            failure_config=FailureConfig(max_failures=job.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=max(1, job.keep_checkpoints)),
            worker_runtime_env={"env_vars": env, **RAY_RUNTIME_ENV},
            logging_config=LoggingConfig(log_level="WARNING"),
        ),
    )


def fit_run(worker: Any, plan: Any, job: Any, *, name: str, run_uri: str, steps: int, label: str, logger: Any,
            env: dict[str, str]) -> str:
    """Run (or resume) one Ray Train run to its last step; prune old checkpoints (``keep_checkpoints`` across
    restarts too: Ray Train prunes only what its current run listed); returns the final checkpoint's URI.

    A failure raises one line naming the first worker's exception (not Ray's wrapper)."""
    trainer = torch_trainer(worker, plan, job, name=name, env=env)
    if integrity.drop_stale_ray_snapshot(run_uri):
        logger.warning(f"{label}: Ray's run snapshot listed a removed checkpoint; resuming from the checkpoints "
                       "on storage")
    started = time.perf_counter()
    logger.info(f"{label}: {steps} steps on {job.num_workers} workers -> {run_uri}")
    try:
        trainer.fit()
    except Exception as e:  # Ray's "Training failed due to worker errors:" -> the first worker's exception
        raise RuntimeError(f"{label} failed: {integrity.root_cause(e)}") from e
    for uri in integrity.prune(run_uri, job.keep_checkpoints, job.num_workers):
        logger.info(f"{label}: removed old checkpoint {uri} (keep_checkpoints={job.keep_checkpoints})")
    final = storage.join(run_uri, ck.checkpoint_name(steps))
    if not storage.exists(storage.join(final, ck.WEIGHTS)):
        raise RuntimeError(f"{label} ended without its final checkpoint {final}")
    logger.info(f"{label}: done in {time.perf_counter() - started:.0f} s -> {final}")
    return final
