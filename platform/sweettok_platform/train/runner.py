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

from sweettok import storage
from sweettok.train.config import STAGE_NAMES, StageConfig
from sweettok_platform.core.config import RESOLVED_CONFIG, write_resolved
from sweettok_platform.core.log import get_logger
from sweettok_platform.core.raytrain import checkpoint as ck
from sweettok_platform.core.raytrain.trainer import clear_stale_logs, ensure_ray, fit_run
from sweettok_platform.train.config import TrainJobConfig
from sweettok_platform.train import index as dataset_index
from sweettok_platform.train.data import clips_from_index, dataset_files



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

    files = dataset_index.capped(dataset_files(config.dataset), config.dataset.max_clips)
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
            where = config.dataset.source.paths or config.dataset.source.root
            raise ValueError(f"{name}: the dataset {where} yields {count} {kind}, "
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


def run_stage(
    config: TrainJobConfig, stage: StageConfig, init: str | None, init_prefix: str | None = None,
    dataset_index: str | None = None,
) -> ck.StageResult:
    """Run (or resume) one stage as a Ray Train run; returns its final checkpoint."""
    import ray

    from sweettok_platform.train.loop import WorkerPlan, train_worker

    config = config.with_absolute_paths()
    model_config = config.model.build()
    log_dir = os.path.join(config.local_log_dir(), stage.name)
    clear_stale_logs(config.stage_uri(stage.name), config.num_workers, log_dir)
    init_ref = ray.put(storage.read_bytes(init)) if init else None
    plan = WorkerPlan(job=config, stage=stage, model_config=model_config.to_dict(), init_weights=init_ref,
                      init_prefix=init_prefix,
                      live_metrics=os.path.join(log_dir, "metrics.jsonl"), dataset_index=dataset_index)
    env = storage.storage_env() if config.storage_path.startswith("s3://") else {}
    write_resolved(storage.join(config.stage_uri(stage.name), RESOLVED_CONFIG), {"job": config, "stage": stage})
    final = fit_run(train_worker, plan, config, name=config.run_name(stage.name), run_uri=config.stage_uri(stage.name),
                    steps=stage.steps, label=stage.name, logger=log, env=env)
    result = ck.StageResult(stage=stage.name, checkpoint=final, steps=stage.steps)
    _write_stage_report(config, stage, result, log_dir)
    ck.write_final(config.stage_uri(stage.name), result)
    return result


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
    config = config.with_absolute_paths()
    plans = check_job(config)  # every bad input fails here, before a worker starts
    ensure_ray(config.use_gpu)
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
