"""Training checkpoints (issue 12, items 1 and 5): nothing is unpickled from storage, a corrupt newest
checkpoint is skipped for the newest intact one, the CLI line names the root cause, and keep_checkpoints
prunes what earlier attempts left. The end-to-end test runs real Ray Train + DeepSpeed ZeRO-2 on 2 workers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from sweettok import storage
from sweettok_platform.train import TrainJobConfig, run_curriculum
from sweettok_platform.core.raytrain import checkpoint as ck
from sweettok_platform.core.raytrain import integrity
from sweettok.safe_load import UnsafeCheckpointError

pytestmark = pytest.mark.timeout(900)


class Payload:
    """Unpickling this touches ``marker``: the stand-in for an attacker's code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _rank_files(directory: Path, step: int = 3) -> None:
    state = ck.TrainState(stage="stage0", step=step, world_size=2)
    ema = {"decay": 0.99, "warmup": True, "updates": step, "shadow": {"w": torch.randn(64, 8)}}
    ck.save_rank_files(str(directory), rank=0, state=state, position=6, weights={"w": torch.ones(2)}, ema=ema)
    (directory / "gen").mkdir()
    (directory / "gen" / "mp_rank_00_model_states.pt").write_bytes(os.urandom(4096))
    integrity.write_manifest(str(directory), 0)
    ck.save_rank_files(str(directory), rank=1, state=state, position=6)
    integrity.write_manifest(str(directory), 1)


def test_ema_is_safetensors_and_round_trips(tmp_path):
    _rank_files(tmp_path)
    assert not (tmp_path / "ema.pt").exists() and (tmp_path / "ema.safetensors").exists()
    ema = ck.load_ema(str(tmp_path))
    assert ema["updates"] == 3 and ema["decay"] == 0.99 and ema["shadow"]["w"].shape == (64, 8)


def test_a_legacy_ema_pt_with_a_payload_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"decay": 0.9, "warmup": True, "updates": 1, "shadow": {}, "x": Payload(marker)}, tmp_path / "ema.pt")
    with pytest.raises(UnsafeCheckpointError):
        ck.load_ema(str(tmp_path))
    assert not marker.exists()
    torch.save({"decay": 0.9, "warmup": True, "updates": 1, "shadow": {"w": torch.zeros(2)}}, tmp_path / "ema.pt")
    assert ck.load_ema(str(tmp_path))["updates"] == 1  # a plain legacy file still loads, without unpickling


def test_verify_catches_truncation_random_bytes_and_missing_ranks(tmp_path):
    _rank_files(tmp_path)
    assert integrity.verify(str(tmp_path), 2) is None
    ema = tmp_path / "ema.safetensors"
    data = ema.read_bytes()
    ema.write_bytes(data[: len(data) // 2])
    assert "ema.safetensors has" in integrity.verify(str(tmp_path), 2)
    ema.write_bytes(data)
    states = tmp_path / "gen" / "mp_rank_00_model_states.pt"
    states.write_bytes(os.urandom(4096))  # same size, other bytes
    assert "gen/mp_rank_00_model_states.pt does not match" in integrity.verify(str(tmp_path), 2)
    (tmp_path / "manifest_rank1.json").unlink()
    assert "rank 1's manifest is missing" in integrity.verify(str(tmp_path), 2)


def test_prune_keeps_the_newest_complete_checkpoints(tmp_path):
    stage = tmp_path / "t-stage0"
    for step, ranks in ((10, 2), (20, 2), (30, 2), (40, 2), (50, 1)):  # step 50 is still being written
        for r in range(ranks):
            storage.write_bytes(str(stage / ck.checkpoint_name(step) / f"committed_rank{r}"), b"")
    removed = integrity.prune(str(stage), keep=2, world_size=2)
    assert sorted(Path(u).name for u in removed) == [ck.checkpoint_name(10), ck.checkpoint_name(20)]
    assert sorted(p.name for p in stage.iterdir()) == [ck.checkpoint_name(s) for s in (30, 40, 50)]


def test_root_cause_names_the_first_worker_exception():
    from ray.train import WorkerGroupError

    error = WorkerGroupError("rank 0 and 1 failed", {1: OSError(28, "No space left on device"),
                                                     0: ValueError("bad checkpoint\nmore detail")})
    assert integrity.root_cause(error) == "worker 0: ValueError: bad checkpoint"


# ---- end to end: Ray Train + DeepSpeed ZeRO-2 ----------------------------------------------------
def _job(root: Path, videos, steps: int, **extra) -> TrainJobConfig:
    return TrainJobConfig.from_dict(dict(
        name="t", storage_path=str(root / "store"), log_dir=str(root / "logs"),
        dataset=dict(source=dict(paths=[str(v) for v in videos]), max_clips=8, cache_dir=str(root / "cache")),
        model=dict(preset="tiny"), stages=["stage0"],
        stage_overrides={"stage0": {"steps": steps, "checkpoint_every": 2}},
        num_workers=2, zero_stage=2, log_every=100, keep_checkpoints=2, **extra,
    ))


def _executed(root: Path) -> list[dict]:
    with open(root / "logs" / "stage0" / "executed.jsonl") as f:
        return [json.loads(line) for line in f]


def test_corrupt_newest_checkpoint_falls_back_and_a_payload_never_runs(ray_cluster, tmp_path, real_videos):
    config = _job(tmp_path, real_videos, steps=4)
    run_curriculum(config)
    stage = Path(config.stage_uri("stage0"))
    assert {p.name for p in stage.glob("step_*")} == {ck.checkpoint_name(2), ck.checkpoint_name(4)}
    assert (stage / ck.checkpoint_name(4) / "ema.safetensors").exists()
    assert not list(stage.rglob("ema.pt"))

    # random bytes in the newest checkpoint's DeepSpeed model states, same size
    states = stage / ck.checkpoint_name(4) / "gen" / "mp_rank_00_model_states.pt"
    states.write_bytes(os.urandom(states.stat().st_size))
    run_curriculum(_job(tmp_path, real_videos, steps=6))  # more steps: resumes the finished stage
    executed = [r for r in _executed(tmp_path) if r["attempt"] > 0]
    assert [r["step"] for r in executed] == [3, 4, 5, 6]  # resumed from the intact step 2, not step 4
    # keep_checkpoints=2 holds across the restart: step 2 (from the first run) is gone. (Ray Train also
    # drops its older registration of the re-written step 4, which removes that directory too.)
    names = {p.name for p in stage.glob("step_*")}
    assert {ck.checkpoint_name(6)} <= names <= {ck.checkpoint_name(4), ck.checkpoint_name(6)}

    # someone with write access to storage swaps in a pickle payload and rewrites the manifest to match
    marker = tmp_path / "pwned"
    newest = stage / ck.checkpoint_name(6)
    payload = newest / "gen" / "mp_rank_00_model_states.pt"
    torch.save({"module": {}, "x": Payload(marker)}, payload)
    integrity.write_manifest(str(newest), 0)
    manifest = json.loads((newest / "manifest_rank0.json").read_text())
    manifest["files"] = {k: v for k, v in manifest["files"].items()
                         if not k.startswith("data_rank1") and "zero_pp_rank_1" not in k}
    (newest / "manifest_rank0.json").write_text(json.dumps(manifest))
    with pytest.raises(RuntimeError) as failed:
        run_curriculum(_job(tmp_path, real_videos, steps=8, max_failures=0))
    line = str(failed.value).splitlines()[0]
    assert line.startswith("stage0 failed: worker ") and "refusing to unpickle" in line, line
    assert not marker.exists()


def test_prune_leaves_what_rays_snapshot_lists_and_a_stale_snapshot_is_dropped(tmp_path):
    stage = tmp_path / "t-stage0"
    for step in (10, 20, 30):
        for r in range(2):
            storage.write_bytes(str(stage / ck.checkpoint_name(step) / f"committed_rank{r}"), b"")
    snapshot = {"checkpoint_results": [{"checkpoint_dir_name": ck.checkpoint_name(10)}]}
    (stage / integrity.RAY_SNAPSHOT).write_text(json.dumps(snapshot))
    assert integrity.prune(str(stage), keep=1, world_size=2) == [str(stage / ck.checkpoint_name(20))]
    assert not integrity.drop_stale_ray_snapshot(str(stage))
    snapshot["checkpoint_results"].append({"checkpoint_dir_name": ck.checkpoint_name(40)})  # gone
    (stage / integrity.RAY_SNAPSHOT).write_text(json.dumps(snapshot))
    assert integrity.drop_stale_ray_snapshot(str(stage)) and not (stage / integrity.RAY_SNAPSHOT).exists()
