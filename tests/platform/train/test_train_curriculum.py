"""The whole curriculum (stages 0-3) on Ray Train with 2 CPU workers and DeepSpeed ZeRO-2, on real videos,
with checkpoints and the bundle on S3 (a real moto S3 server).

One job runs once per module (about 4 minutes on 2 cores); a worker of stage 2 is killed mid-stage by
fault injection, and the tests read what the run left behind.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import pyarrow.fs as pafs
from safetensors.torch import load as load_safetensors

from sweettok import from_uint8, load_bundle, storage
from sweettok_platform.core.media import ClipSpec, read_clips
from sweettok_platform.train import TrainJobConfig, run_curriculum

STAGES = ["stage0", "stage1", "stage2", "stage3"]
STEPS, EVERY, CRASH_AT = 8, 4, 7  # stage2's rank 0 exits before step 7; its last checkpoint is step 4

pytestmark = pytest.mark.timeout(900)


def make_job(root, videos, storage_path: str) -> TrainJobConfig:
    overrides = {s: {"steps": STEPS, "checkpoint_every": EVERY} for s in STAGES}
    overrides["stage3"].update(disc_start=4)  # the discriminator engine trains in the second half
    return TrainJobConfig.from_dict(dict(
        name="tiny", storage_path=storage_path, log_dir=str(root / "logs"),
        dataset=dict(source=dict(paths=[str(v) for v in videos]), max_clips=16, cache_dir=str(root / "cache")),
        model=dict(preset="tiny"), stages=STAGES, stage_overrides=overrides,
        num_workers=2, zero_stage=2, log_every=4, max_failures=2,
        fault=dict(stage="stage2", step=CRASH_AT, marker=str(root / "crashed")),
    ))


@pytest.fixture(scope="module")
def run(ray_cluster, s3_endpoint, tmp_path_factory, real_videos):
    import boto3

    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket="train-curriculum")
    root = tmp_path_factory.mktemp("curriculum")
    config = make_job(root, real_videos, "s3://train-curriculum/runs")
    return root, config, run_curriculum(config)


def ls(uri: str) -> set[str]:
    fs, path = storage.resolve(uri)
    return {i.base_name for i in fs.get_file_info(pafs.FileSelector(path))}


def rows(root, stage: str, name: str = "metrics.jsonl") -> list[dict]:
    with open(root / "logs" / stage / name) as f:
        return [json.loads(line) for line in f]


def test_every_stage_loss_falls(run):
    root, config, _ = run
    for stage in STAGES:
        r = rows(root, stage)
        assert [x["step"] for x in r] == list(range(1, STEPS + 1)), stage
        key = "mse" if stage == "stage3" else "loss"  # stage 3's total gains a GAN term at disc_start
        first, last = np.mean([x[key] for x in r[:2]]), np.mean([x[key] for x in r[-2:]])
        assert last < first, f"{stage}: {key} {first:.4f} -> {last:.4f}"
        assert all(x["clips_per_s"] > 0 for x in r)
        assert (root / "logs" / stage / "loss.png").stat().st_size > 1000
        assert {"loss.png", "metrics.jsonl", "final.json"} <= ls(config.stage_uri(stage))
    assert all("temporal_usage" not in x for x in rows(root, "stage1"))  # images: spatial branch only
    assert all("teacher_usage" in x for x in rows(root, "stage0"))
    s3 = rows(root, "stage3")
    assert all(x["disc_loss"] == 0 for x in s3[:4]) and all(x["disc_loss"] > 0 for x in s3[4:])


def test_zero2_partitions_optimizer_state_across_two_workers(run):
    _, config, _ = run
    files = ls(storage.join(config.stage_uri("stage2"), f"step_{STEPS:08d}", "gen"))
    assert {"zero_pp_rank_0_mp_rank_00_optim_states.pt", "zero_pp_rank_1_mp_rank_00_optim_states.pt"} <= set(files)
    assert "mp_rank_00_model_states.pt" in files
    assert "disc" in ls(storage.join(config.stage_uri("stage3"), f"step_{STEPS:08d}"))


def test_killed_worker_resumes_from_last_checkpoint_without_repeating_steps(run):
    root, config, _ = run
    assert (root / "crashed").exists(), "the fault was never injected"
    last_checkpoint = (CRASH_AT - 1) // EVERY * EVERY
    r = rows(root, "stage2")
    assert [x["step"] for x in r] == list(range(1, STEPS + 1))
    assert [x["attempt"] for x in r] == [0] * last_checkpoint + [1] * (STEPS - last_checkpoint)
    # every step either attempt executed: checkpointed steps ran once; the steps between the last
    # checkpoint and the crash ran twice, and the second time gave the same loss (exact resume:
    # weights, optimizer state and data position all came back)
    executed = rows(root, "stage2", "executed.jsonl")
    first = [x["step"] for x in executed if x["attempt"] == 0]
    second = [x["step"] for x in executed if x["attempt"] == 1]
    assert first == list(range(1, CRASH_AT)) and second == list(range(last_checkpoint + 1, STEPS + 1))
    redone = {x["step"]: x["loss"] for x in executed if x["attempt"] == 0 and x["step"] > last_checkpoint}
    assert redone and all(x["loss"] == pytest.approx(redone[x["step"]], rel=1e-5) for x in executed
                          if x["attempt"] == 1 and x["step"] in redone)
    state = json.loads(storage.read_bytes(storage.join(config.stage_uri("stage2"), f"step_{STEPS:08d}", "data_rank0.json")))
    assert state["position"] == STEPS * 2  # rank 0 consumed exactly STEPS batches of 2 over both attempts
    for stage in ("stage0", "stage1", "stage3"):
        assert {x["attempt"] for x in rows(root, stage)} == {0}


def test_exported_bundle_loads_and_encodes_a_real_clip(run, real_video):
    _, config, uri = run
    assert uri == config.bundle_uri()
    model = load_bundle(uri)
    final = load_safetensors(storage.read_bytes(storage.join(config.stage_uri("stage3"), f"step_{STEPS:08d}",
                                                             "weights.safetensors")))
    state = model.state_dict()
    assert all(torch.equal(state[k], v.to(state[k].dtype)) for k, v in final.items())  # the EMA weights
    patch = model.config.patch
    clips = read_clips(str(real_video), ClipSpec(frames=patch.frames, height=patch.height, width=patch.width))
    x = from_uint8(torch.from_numpy(np.stack([c.frames for c in clips])))
    ids = model.encode(x)
    assert ids.shape == (1, model.num_spatial + model.num_temporal)
    assert model.decode_ids(ids).shape == (1, 3, patch.frames, patch.height, patch.width)


def test_rerun_resumes_instead_of_starting_over(run):
    root, config, uri = run
    before = {s: rows(root, s) for s in STAGES}
    fs, path = storage.resolve(storage.join(config.stage_uri("stage3"), "final.json"))
    fs.delete_file(path)  # as if the driver died at the end of stage 3
    config.fault = None
    assert run_curriculum(config) == uri
    after = {s: rows(root, s) for s in STAGES}
    assert after == before  # no step ran again: stages 0-2 skipped, stage 3 restored at its last step
    assert "final.json" in ls(config.stage_uri("stage3"))
