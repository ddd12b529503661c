"""Checkpoint integrity: what each rank committed, checked before a resume, and cleanup after restarts.

- ``write_manifest``: every rank records the size and sha256 of each file it wrote (``manifest_rank<r>.json``)
  before the upload; ``verify`` checks a downloaded checkpoint against all ranks' manifests, so a truncated
  ``ema.safetensors`` or random bytes in DeepSpeed's model states are caught before anything is loaded.
- ``restore_candidates``: the checkpoints a worker may resume from, newest first; the worker loop takes the
  newest one that verifies (a warning names the ones skipped).
- ``safe_deepspeed_loading``: DeepSpeed reads its engine files with ``weights_only=True`` plus the few
  DeepSpeed types its optimizer states pickle, instead of a full unpickle.
- ``prune``: keeps the newest ``keep_checkpoints`` complete checkpoints, also those Ray Train never listed
  (written by an earlier attempt or driver).
- ``root_cause``: one line naming the first worker exception of a failed Ray Train run.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from typing import Any

from sweettok import storage

MANIFEST = re.compile(r"manifest_rank(\d+)\.json")
UNHASHED = re.compile(r"(manifest_rank\d+\.json|committed_rank\d+)")


class CheckpointCorruptError(RuntimeError):
    """No checkpoint of a stage passed verification."""


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_manifest(directory: str, rank: int) -> None:
    """Record size and sha256 of every file this rank put in ``directory`` (its local checkpoint)."""
    files: dict[str, dict[str, Any]] = {}
    for base, _, names in os.walk(directory):
        for name in names:
            path = os.path.join(base, name)
            rel = os.path.relpath(path, directory).replace(os.sep, "/")
            if not UNHASHED.fullmatch(rel):
                files[rel] = {"size": os.path.getsize(path), "sha256": _sha256(path)}
    with open(os.path.join(directory, f"manifest_rank{rank}.json"), "w") as f:
        json.dump({"rank": rank, "files": files}, f, indent=1, sort_keys=True)


def verify(directory: str, world_size: int) -> str | None:
    """None if ``directory`` holds every file all ranks committed, byte for byte; else what is wrong.

    A checkpoint without any manifest was written before manifests existed and is accepted as it is.
    """
    present = {int(m.group(1)) for name in os.listdir(directory) if (m := MANIFEST.fullmatch(name))}
    if not present:
        return None
    missing = sorted(set(range(world_size)) - present)
    if missing:
        return f"rank {missing[0]}'s manifest is missing (the checkpoint is incomplete)"
    for rank in range(world_size):
        with open(os.path.join(directory, f"manifest_rank{rank}.json")) as f:
            files = json.load(f)["files"]
        for rel, want in sorted(files.items()):
            path = os.path.join(directory, *rel.split("/"))
            if not os.path.isfile(path):
                return f"{rel} is missing"
            size = os.path.getsize(path)
            if size != want["size"]:
                return f"{rel} has {size} bytes, {want['size']} were committed (truncated or overwritten)"
            if _sha256(path) != want["sha256"]:
                return f"{rel} does not match its committed sha256 (corrupted)"
    return None


def restore_candidates(ray_checkpoint: Any, stage_uri: str, world_size: int) -> list[Any]:
    """``ray.train.Checkpoint``s to try, newest first: every checkpoint all ranks committed, plus Ray's own
    latest (which a worker that died right after reporting may have left uncommitted)."""
    import pyarrow.fs as pafs
    import ray.train

    from sweettok_platform.core.raytrain.checkpoint import checkpoint_name, checkpoint_step

    fs, path = storage.resolve(stage_uri)
    infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    steps = sorted((int(m.group(1)) for i in infos if (m := re.fullmatch(r"step_(\d{8})", i.base_name))), reverse=True)
    found: dict[int, Any] = {}
    for step in steps:
        uri = storage.join(stage_uri, checkpoint_name(step))
        if all(storage.exists(storage.join(uri, f"committed_rank{r}")) for r in range(world_size)):
            found[step] = ray.train.Checkpoint(storage.resolve(uri)[1], filesystem=fs)
    if ray_checkpoint is not None and checkpoint_step(ray_checkpoint.path) not in found:
        found[checkpoint_step(ray_checkpoint.path)] = ray_checkpoint
    return [found[s] for s in sorted(found, reverse=True)]


RAY_SNAPSHOT = "checkpoint_manager_snapshot.json"  # Ray Train's list of the run's reported checkpoints


def _ray_listed(stage_uri: str) -> set[str]:
    uri = storage.join(stage_uri, RAY_SNAPSHOT)
    if not storage.exists(uri):
        return set()
    snapshot = json.loads(storage.read_bytes(uri))
    return {r.get("checkpoint_dir_name") for r in snapshot.get("checkpoint_results", [])}


def drop_stale_ray_snapshot(stage_uri: str) -> bool:
    """Remove Ray Train's run snapshot when it lists a checkpoint directory that is gone.

    Ray refuses to restore such a run. It happens after a fall-back past a corrupt checkpoint: the redone
    steps re-report the same directory names, and Ray's pruning of the older entry deletes the new directory.
    Resuming does not need the snapshot: ``restore_candidates`` lists the committed checkpoints on storage.
    """
    listed = _ray_listed(stage_uri)
    if all(storage.exists(storage.join(stage_uri, name)) for name in listed if name):
        return False
    storage.delete(storage.join(stage_uri, RAY_SNAPSHOT))
    return True


def prune(stage_uri: str, keep: int, world_size: int) -> list[str]:
    """Delete the stage's checkpoint directories older than its newest ``keep`` complete ones; returns them.
    Directories that Ray Train's snapshot lists are Ray's to prune (it refuses to restore without them)."""
    import pyarrow.fs as pafs

    from sweettok_platform.core.raytrain.checkpoint import checkpoint_name

    fs, path = storage.resolve(stage_uri)
    infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    steps = sorted((int(m.group(1)) for i in infos if (m := re.fullmatch(r"step_(\d{8})", i.base_name))), reverse=True)
    complete = [s for s in steps if all(storage.exists(storage.join(stage_uri, checkpoint_name(s), f"committed_rank{r}"))
                                        for r in range(world_size))]
    if len(complete) <= max(1, keep):
        return []
    oldest_kept = complete[max(1, keep) - 1]
    listed = _ray_listed(stage_uri)
    removed = [storage.join(stage_uri, checkpoint_name(s)) for s in steps
               if s < oldest_kept and checkpoint_name(s) not in listed]
    for uri in removed:
        storage.delete(uri)
    return removed


# DeepSpeed's ZeRO optimizer files pickle these besides tensors (deepspeed 0.19); nothing else is allowed
def _deepspeed_globals() -> list[type]:
    from deepspeed.runtime.fp16.loss_scaler import DynamicLossScaler, LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    return [LossScaler, DynamicLossScaler, ZeroStageEnum, fragment_address]


def safe_deepspeed_loading(engine: Any) -> None:
    """Make ``engine.load_checkpoint`` read its files with ``weights_only=True`` (and DeepSpeed's own types)."""
    from sweettok.safe_load import load_torch_file

    allowed = tuple(_deepspeed_globals())

    def load(path: str, map_location: Any = None) -> Any:
        return load_torch_file(path, allowed)

    engine.checkpoint_engine.load = load


def root_cause(error: BaseException) -> str:
    """One line for a failed Ray Train run: the first worker's (lowest rank's) exception, unwrapped."""
    failures = getattr(error, "worker_failures", None)
    cause: BaseException = error
    prefix = ""
    if failures:
        rank = min(failures)
        cause, prefix = failures[rank], f"worker {rank}: "
    cause = getattr(error, "controller_failure", None) or cause
    for _ in range(5):  # RayTaskError / wrapped causes -> the user's exception
        inner = getattr(cause, "cause", None) or cause.__cause__
        if inner is None or inner is cause:
            break
        cause = inner
    lines = [line.strip() for line in str(cause).strip().splitlines() if line.strip()]
    # a traceback text: its last line is "Type: message"
    message = lines[-1] if lines and lines[0].startswith("Traceback") else (lines[0] if lines else "")
    name = type(cause).__name__
    return f"{prefix}{message if message.startswith(name) else f'{name}: {message}'}"
