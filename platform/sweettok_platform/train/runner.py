"""Driver side of training: check the job, run each stage as a Ray Train run, chain stages, export.

``run_curriculum(config)`` is the one call the CLI and the demo make. Each stage is a ``TorchTrainer``
run named ``<name>-<stage>`` under ``storage_path``: a worker failure restarts the worker group from
the latest checkpoint (``FailureConfig``), and a rerun of the same job resumes (Ray Train restores a
run with the same name and storage path; a stage with a ``final.json`` is skipped). Stage N+1 starts
from stage N's final EMA weights. After the last stage of the curriculum the EMA weights are exported
as a tokenizer bundle.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any

from sweettok import storage
from sweettok.train.config import STAGE_NAMES, StageConfig
from sweettok_platform.log import RAY_RUNTIME_ENV, get_logger
from sweettok_platform.train import checkpoint as ck
from sweettok_platform.train.config import TrainJobConfig
from sweettok_platform.train import index as dataset_index
from sweettok_platform.train.data import clips_from_index, resolve_paths



@dataclass(kw_only=True)
class StagePlan:
    """What the driver decided for one stage before starting any worker."""

    stage: StageConfig
    init: str | None  # weights URI to start from (None: fresh weights; or chained from the previous stage)
    init_prefix: str | None = None  # only these keys of ``init`` (the job's init_prefix, first stage only)
    done: ck.StageResult | None  # set when this stage already finished (a rerun skips it)
    dataset_index: str | None = None  # URI of the stored dataset index every worker cuts its clips from


log = get_logger("train")


def init_weights_uri(uri: str) -> str:
    """A checkpoint directory, a bundle directory or a ``.safetensors`` file -> the weights file URI."""
    if uri.endswith(".safetensors"):
        candidates = [uri]
    else:
        candidates = [storage.join(uri, ck.WEIGHTS), storage.join(uri, "model.safetensors")]
    for candidate in candidates:
        if storage.exists(candidate):
            return candidate
    raise FileNotFoundError(f"init {uri}: expected a training checkpoint ({ck.WEIGHTS}) or a tokenizer "
                            "bundle (model.safetensors); found neither")


def check_job(config: TrainJobConfig) -> list[StagePlan]:
    """Validate everything that can be checked without workers; returns the per-stage plan.

    Raises FileNotFoundError / ValueError with one readable line: missing dataset, missing teacher
    checkpoint, a stage whose predecessor has not finished.
    """
    model_config = config.model.build()
    stages = config.stage_configs()
    check_perceptual_trunk(config, model_config.preset, stages)
    teacher = model_config.teacher
    if teacher.kind != "vq":
        if not teacher.checkpoint:
            raise ValueError(f"teacher kind {teacher.kind!r} needs model.overrides.teacher.checkpoint")
        if not storage.exists(teacher.checkpoint):
            raise FileNotFoundError(f"teacher checkpoint does not exist: {teacher.checkpoint}")
        if "stage0" in config.stages:
            raise ValueError("stage0 trains the project's VQ teacher; with a pretrained teacher start at stage1")
    if model_config.quantizer.kind == "language":
        codebook = model_config.quantizer.codebook
        if not codebook or not storage.exists(codebook):
            raise FileNotFoundError(f"language codebook does not exist: {codebook}")

    files = dataset_index.capped(resolve_paths(config.dataset.paths), config.dataset.max_clips)
    index = dataset_index.load_or_build(files, config.index_uri())  # stored once checked; reruns reuse it
    patch = model_config.patch
    for name in config.stages:
        images = stages[name].data == "images"
        frames = 1 if images else patch.frames
        stride = (config.dataset.image_stride if images else config.dataset.stride) or patch.frames
        stage_index = index if images else index.videos()
        count = len(clips_from_index(stage_index, frames, stride, config.dataset.max_clips))
        if count < config.num_workers:
            kind = "images" if images else f"{frames}-frame clips"
            raise ValueError(f"{name}: the dataset {config.dataset.paths} yields {count} {kind}, "
                             f"fewer than num_workers={config.num_workers}")

    plans: list[StagePlan] = []
    index_uri = index.uri or storage.join(config.index_uri(), f"{dataset_index.fingerprint(files)}.parquet")
    for position, name in enumerate(config.stages):
        done = ck.read_final(config.stage_uri(name))
        if done is not None and done.steps < stages[name].steps:
            done = None  # more steps asked for: resume from the final checkpoint and train on
        init, prefix = None, None
        if position == 0:
            if config.init:
                init, prefix = init_weights_uri(config.init), config.init_prefix
            elif name != "stage0" and not (name == "stage1" and teacher.kind != "vq"):
                previous = STAGE_NAMES[STAGE_NAMES.index(name) - 1]
                result = ck.read_final(config.stage_uri(previous))
                if result is None and done is None:
                    raise FileNotFoundError(
                        f"{name} starts from {previous}'s final checkpoint, but {previous} has not finished "
                        f"(no {storage.join(config.stage_uri(previous), ck.FINAL)}); run {previous} first "
                        "or set init to a checkpoint or bundle"
                    )
                init = result.weights if result is not None else None
        plans.append(StagePlan(stage=stages[name], init=init, done=done, init_prefix=prefix,
                               dataset_index=index_uri))
    if index.uri is None:
        dataset_index.store(index, config.index_uri())  # every check passed: keep it for reruns and workers
    return plans


# presets whose jobs may train LPIPS on a randomly initialised VGG trunk (tests and the CPU demo only)
RANDOM_TRUNK_PRESETS = ("tiny",)


def check_perceptual_trunk(config: TrainJobConfig, preset_name: str, stages: dict[str, StageConfig]) -> None:
    """A stage with a perceptual weight needs its network's real weights (outside the ``tiny`` preset for
    LPIPS; always for ConvNeXt-S): a randomly initialised trunk is no perceptual loss, and only a warning in a
    worker log would say so. Checked on the driver, before any worker starts."""
    for name in config.stages:
        if stages[name].loss.lpips > 0 and stages[name].perceptual == "convnext_logits" and not config.convnext_weights:
            raise ValueError(
                f"{name} has perceptual=convnext_logits (loss.lpips={stages[name].loss.lpips}) but convnext_weights "
                "is not set: give a torchvision-format convnext_small (IMAGENET1K_V1) state dict, or set "
                f"stage_overrides.{name}.perceptual=lpips_vgg or stage_overrides.{name}.loss.lpips=0"
            )
        if config.convnext_weights:
            from pathlib import Path

            if not Path(config.convnext_weights).is_file():
                raise ValueError(f"convnext_weights: no such local file (every node reads it from the same path): "
                                 f"{config.convnext_weights}")
    if config.lpips_vgg_weights or preset_name in RANDOM_TRUNK_PRESETS:
        return
    for name in config.stages:
        if stages[name].loss.lpips > 0 and stages[name].perceptual == "lpips_vgg":
            raise ValueError(
                f"{name} has loss.lpips={stages[name].loss.lpips} but lpips_vgg_weights is not set: LPIPS would run "
                f"on a random VGG16 trunk. Set lpips_vgg_weights to torchvision-format VGG16 weights, or "
                f"stage_overrides.{name}.loss.lpips=0"
            )


def torch_trainer(worker: Any, plan: Any, job: Any, *, name: str, env: dict[str, str]) -> Any:
    """The ``TorchTrainer`` every training run of the project uses: ``job``'s workers and resources, gloo on
    CPU (DeepSpeed's CPU accelerator) or nccl on GPU, checkpoints and failure retries under
    ``job.storage_path``, and Ray Train's own console lines at WARNING (its INFO lines repeat each step's
    metrics dict; the project's progress lines are INFO and stay)."""
    from ray.train import CheckpointConfig, FailureConfig, LoggingConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

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



def run_stage(
    config: TrainJobConfig, stage: StageConfig, init: str | None, init_prefix: str | None = None,
    dataset_index: str | None = None,
) -> ck.StageResult:
    """Run (or resume) one stage as a Ray Train run; returns its final checkpoint."""
    import ray

    config = config.with_absolute_paths()
    from sweettok_platform.train.loop import WorkerPlan, train_worker

    model_config = config.model.build()
    log_dir = os.path.join(config.local_log_dir(), stage.name)
    if ck.latest_committed(config.stage_uri(stage.name), config.num_workers) is None:
        for name in ("metrics.jsonl", "executed.jsonl"):  # a fresh start: no rows from an older run
            if os.path.exists(os.path.join(log_dir, name)):
                os.remove(os.path.join(log_dir, name))
    init_ref = ray.put(storage.read_bytes(init)) if init else None
    plan = WorkerPlan(job=config, stage=stage, model_config=model_config.to_dict(), init_weights=init_ref,
                      init_prefix=init_prefix,
                      live_metrics=os.path.join(log_dir, "metrics.jsonl"), dataset_index=dataset_index)
    env = storage.storage_env() if config.storage_path.startswith("s3://") else {}
    trainer = torch_trainer(train_worker, plan, config, name=config.run_name(stage.name), env=env)
    from sweettok_platform.train.integrity import drop_stale_ray_snapshot

    if drop_stale_ray_snapshot(config.stage_uri(stage.name)):
        log.warning(f"{stage.name}: Ray's run snapshot listed a removed checkpoint; resuming from the checkpoints on storage")
    started = time.perf_counter()
    log.info(f"{stage.name}: {stage.steps} steps on {config.num_workers} workers -> {config.stage_uri(stage.name)}")
    try:
        trainer.fit()
    except Exception as e:  # Ray's "Training failed due to worker errors:" -> the first worker's exception
        from sweettok_platform.train.integrity import root_cause

        raise RuntimeError(f"{stage.name} failed: {root_cause(e)}") from e
    _prune(config, stage)
    final = storage.join(config.stage_uri(stage.name), f"step_{stage.steps:08d}")
    if not storage.exists(storage.join(final, ck.WEIGHTS)):
        raise RuntimeError(f"{stage.name} ended without its final checkpoint {final}")
    result = ck.StageResult(stage=stage.name, checkpoint=final, steps=stage.steps)
    _write_stage_report(config, stage, result, log_dir)
    ck.write_final(config.stage_uri(stage.name), result)
    log.info(f"{stage.name}: done in {time.perf_counter() - started:.0f} s -> {final}")
    return result


def _prune(config: TrainJobConfig, stage: StageConfig) -> None:
    """keep_checkpoints also across restarts: Ray Train prunes only the checkpoints its current run listed."""
    from sweettok_platform.train.integrity import prune

    for uri in prune(config.stage_uri(stage.name), config.keep_checkpoints, config.num_workers):
        log.info(f"{stage.name}: removed old checkpoint {uri} (keep_checkpoints={config.keep_checkpoints})")


def _write_stage_report(config: TrainJobConfig, stage: StageConfig, result: ck.StageResult, log_dir: str) -> None:
    """metrics.jsonl from the final checkpoint + the loss-curve PNG, locally and beside the checkpoints."""
    from sweettok.train.plots import plot_metrics

    os.makedirs(log_dir, exist_ok=True)
    metrics = os.path.join(log_dir, "metrics.jsonl")
    with open(metrics, "wb") as f:
        f.write(storage.read_bytes(storage.join(result.checkpoint, "metrics.jsonl")))
    png = os.path.join(log_dir, "loss.png")
    plot_metrics(metrics, png)
    for name in ("metrics.jsonl", "loss.png"):
        with open(os.path.join(log_dir, name), "rb") as f:
            storage.write_bytes(storage.join(config.stage_uri(stage.name), name), f.read())


def export_bundle(config: TrainJobConfig, result: ck.StageResult) -> str:
    """The final stage's EMA weights -> a tokenizer bundle at ``config.bundle_uri()``; returns the URI."""
    from sweettok import SweetTokenizer, save_bundle

    model = SweetTokenizer(config.model.build(), weights_follow=True)
    model.load_state_dict(ck.read_weights(result.weights), strict=True)
    uri = config.bundle_uri()
    digest = save_bundle(model.eval(), uri, extra={"trained": {"job": config.name, "stage": result.stage,
                                                              "checkpoint": result.checkpoint}})
    log.info(f"exported bundle {uri} (hash {digest[:12]})")
    return uri


def run_curriculum(config: TrainJobConfig) -> str:
    """Run the job's stages in order (skipping finished ones) and export the bundle; returns its URI.

    The bundle is exported when the job runs through ``stage3``; a job that stops earlier returns the
    last stage's final checkpoint URI instead.
    """
    import ray

    config = config.with_absolute_paths()
    plans = check_job(config)  # every bad input fails here, before a worker starts
    if not ray.is_initialized():
        env = {"env_vars": {"DS_ACCELERATOR": "cpu"}} if not config.use_gpu else {}
        ray.init(runtime_env={**RAY_RUNTIME_ENV, **env})
    started = time.perf_counter()
    result: ck.StageResult | None = None
    for plan in plans:
        if plan.done is not None:
            log.info(f"{plan.stage.name}: already finished ({plan.done.checkpoint}); skipping")
            result = plan.done
            continue
        init = plan.init or (result.weights if result is not None else None)
        result = run_stage(config, plan.stage, init, plan.init_prefix if plan.init else None, plan.dataset_index)
    assert result is not None
    log.info(f"curriculum {config.stages} done in {time.perf_counter() - started:.0f} s")
    if result.stage == "stage3":
        return export_bundle(config, result)
    return result.checkpoint
