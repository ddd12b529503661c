"""The whole curriculum (stages 0-3) on Ray Train with 2 CPU workers and DeepSpeed ZeRO-2, on real videos.

One job runs once per module (about 4 minutes on 2 cores); a worker of stage 2 is killed mid-stage by
fault injection, and the tests read what the run left behind.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from sweettok import from_uint8, load_bundle
from sweettok_platform.media import ClipSpec, read_clips
from sweettok_platform.train import TrainJobConfig, run_curriculum

STAGES = ["stage0", "stage1", "stage2", "stage3"]
STEPS, EVERY, CRASH_AT = 8, 4, 7  # stage2's rank 0 exits before step 7; its last checkpoint is step 4

pytestmark = pytest.mark.timeout(900)


def make_job(root, videos) -> TrainJobConfig:
    overrides = {s: {"steps": STEPS, "checkpoint_every": EVERY} for s in STAGES}
    overrides["stage3"].update(disc_start=4)  # the discriminator engine trains in the second half
    return TrainJobConfig.from_dict(dict(
        name="tiny", storage_path=str(root / "store"), log_dir=str(root / "logs"),
        dataset=dict(paths=[str(v) for v in videos], max_clips=16, cache_dir=str(root / "cache")),
        model=dict(preset="tiny"), stages=STAGES, stage_overrides=overrides,
        num_workers=2, zero_stage=2, log_every=4, max_failures=2,
        fault=dict(stage="stage2", step=CRASH_AT, marker=str(root / "crashed")),
    ))


@pytest.fixture(scope="module")
def run(ray_cluster, tmp_path_factory, real_videos):
    root = tmp_path_factory.mktemp("curriculum")
    config = make_job(root, real_videos)
    return root, config, run_curriculum(config)


def rows(root, stage: str) -> list[dict]:
    with open(root / "logs" / stage / "metrics.jsonl") as f:
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
        assert os.path.exists(os.path.join(config.stage_uri(stage), "loss.png"))
    assert all("temporal_usage" not in x for x in rows(root, "stage1"))  # images: spatial branch only
    assert all("teacher_usage" in x for x in rows(root, "stage0"))
    s3 = rows(root, "stage3")
    assert all(x["disc_loss"] == 0 for x in s3[:4]) and all(x["disc_loss"] > 0 for x in s3[4:])


def test_zero2_partitions_optimizer_state_across_two_workers(run):
    _, config, _ = run
    files = os.listdir(os.path.join(config.stage_uri("stage2"), f"step_{STEPS:08d}", "gen"))
    assert {"zero_pp_rank_0_mp_rank_00_optim_states.pt", "zero_pp_rank_1_mp_rank_00_optim_states.pt"} <= set(files)
    assert "mp_rank_00_model_states.pt" in files
    assert "disc" in os.listdir(os.path.join(config.stage_uri("stage3"), f"step_{STEPS:08d}"))


def test_killed_worker_resumes_from_last_checkpoint_without_repeating_steps(run):
    root, _, _ = run
    assert (root / "crashed").exists(), "the fault was never injected"
    r = rows(root, "stage2")
    last_checkpoint = (CRASH_AT - 1) // EVERY * EVERY
    assert [x["step"] for x in r] == list(range(1, STEPS + 1))
    assert [x["attempt"] for x in r] == [0] * last_checkpoint + [1] * (STEPS - last_checkpoint)
    # the data position came back too: rank 0 consumed exactly STEPS batches over both attempts
    with open(os.path.join(run[1].stage_uri("stage2"), f"step_{STEPS:08d}", "data_rank0.json")) as f:
        assert json.load(f)["position"] == STEPS * 2
    for stage in ("stage0", "stage1", "stage3"):
        assert {x["attempt"] for x in rows(root, stage)} == {0}


def test_exported_bundle_loads_and_encodes_a_real_clip(run, real_video):
    _, config, uri = run
    assert uri == config.bundle_uri()
    model = load_bundle(uri)
    final = load_file(os.path.join(config.stage_uri("stage3"), f"step_{STEPS:08d}", "weights.safetensors"))
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
    os.remove(os.path.join(config.stage_uri("stage3"), "final.json"))  # as if the driver died at the end
    config.fault = None
    assert run_curriculum(config) == uri
    after = {s: rows(root, s) for s in STAGES}
    assert after == before  # no step ran again: stages 0-2 skipped, stage 3 restored at its last step
    assert os.path.exists(os.path.join(config.stage_uri("stage3"), "final.json"))
