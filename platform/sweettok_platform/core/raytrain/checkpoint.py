"""Training checkpoints: what one holds, how every rank writes its part, and the stage-final marker.

A checkpoint directory (one per reported step, ``step_00000040``; Ray Train merges the ranks' files):
  ``gen/``                DeepSpeed engine of the tokenizer (model states from rank 0, one ZeRO optimizer
                          partition per rank); ``disc/`` the same for the stage-3 discriminator
  ``weights.safetensors`` rank 0: the EMA weights of the whole tokenizer (next stage / bundle export)
  ``ema.safetensors``     rank 0: EMA shadow weights; ``ema.json`` its decay, warm-up and update count
  ``state.json``          rank 0: stage, step, attempt, world size
  ``data_rank<r>.json``   every rank: its data position (samples consumed)
  ``metrics.jsonl``       rank 0: one row per finished step, so far
  ``manifest_rank<r>.json`` every rank: size and sha256 of each file it wrote (``verify`` checks them)
  ``committed_rank<r>``   every rank, written to storage after its upload returned: the checkpoint is
                          complete when all ranks' markers exist
``<storage_path>/<name>-<stage>/final.json`` marks a finished stage and names its final checkpoint.

Nothing here unpickles: EMA state is safetensors + JSON, and DeepSpeed's engine files are read with
``weights_only=True`` (``safe_deepspeed_loading``) after ``verify`` found them byte-identical to what was
committed. A checkpoint that fails verification is skipped for the newest intact one (``integrity.py``).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass
from typing import Any

import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from sweettok import storage

FINAL = "final.json"
WEIGHTS = "weights.safetensors"
EMA_TENSORS, EMA_META = "ema.safetensors", "ema.json"


@dataclass(kw_only=True)
class TrainState:
    """Where a stage's training stands."""

    stage: str
    step: int  # steps finished
    attempt: int = 0  # restarts so far (0 = first attempt)
    world_size: int = 1


@dataclass(kw_only=True)
class StageResult:
    """A finished stage: its final checkpoint and step count (``final.json``)."""

    stage: str
    checkpoint: str  # URI of the final checkpoint directory
    steps: int

    @property
    def weights(self) -> str:
        return storage.join(self.checkpoint, WEIGHTS)


def model_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().contiguous().cpu().float() if v.is_floating_point() else v.detach().contiguous().cpu()
            for k, v in model.state_dict().items()}


def save_rank_files(
    directory: str, *, rank: int, state: TrainState, position: int,
    weights: dict[str, torch.Tensor] | None = None, ema: dict | None = None, metrics: list[dict] | None = None,
) -> None:
    """Write this rank's non-DeepSpeed files into ``directory`` (rank 0 also the shared ones)."""
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, f"data_rank{rank}.json"), "w") as f:
        json.dump({"position": position}, f)
    if rank != 0:
        return
    with open(os.path.join(directory, "state.json"), "w") as f:
        json.dump(asdict(state), f)
    if weights is not None:
        with open(os.path.join(directory, WEIGHTS), "wb") as f:
            f.write(save_safetensors(weights))
    if ema is not None:
        with open(os.path.join(directory, EMA_TENSORS), "wb") as f:
            f.write(save_safetensors({k: v.contiguous() for k, v in ema["shadow"].items()}))
        with open(os.path.join(directory, EMA_META), "w") as f:
            json.dump({k: v for k, v in ema.items() if k != "shadow"}, f)
    if metrics is not None:
        write_jsonl(os.path.join(directory, "metrics.jsonl"), metrics)


def load_state(directory: str) -> TrainState:
    with open(os.path.join(directory, "state.json")) as f:
        return TrainState(**json.load(f))


def load_position(directory: str, rank: int) -> int:
    path = os.path.join(directory, f"data_rank{rank}.json")
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint {directory} has no data position for rank {rank} "
                                "(was it written with a different number of workers?)")
    with open(path) as f:
        return int(json.load(f)["position"])


def load_ema(directory: str) -> dict:
    """The EMA state written by ``save_rank_files`` (or a legacy ``ema.pt``, read with ``weights_only=True``)."""
    if not os.path.exists(os.path.join(directory, EMA_TENSORS)) and os.path.exists(os.path.join(directory, "ema.pt")):
        from sweettok.safe_load import load_torch_file

        return load_torch_file(os.path.join(directory, "ema.pt"))
    with open(os.path.join(directory, EMA_META)) as f:
        state = json.load(f)
    with open(os.path.join(directory, EMA_TENSORS), "rb") as f:
        state["shadow"] = load_safetensors(f.read())
    return state


def read_metrics(path: str) -> list[dict[str, Any]]:
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def write_jsonl(path: str, rows: list[dict[str, Any]]) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    os.replace(tmp, path)


def append_jsonl(path: str, row: dict[str, Any]) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def read_weights(uri: str) -> dict[str, torch.Tensor]:
    """A ``weights.safetensors`` (local or s3://) -> state dict."""
    return load_safetensors(storage.read_bytes(uri))


# ---- finding the latest complete checkpoint ----------------------------------------------------
def checkpoint_name(step: int) -> str:
    return f"step_{step:08d}"


def mark_committed(stage_uri: str, step: int, rank: int) -> None:
    """Record that ``rank``'s files of the step's checkpoint are on storage."""
    storage.write_bytes(storage.join(stage_uri, checkpoint_name(step), f"committed_rank{rank}"), b"")


def latest_committed(stage_uri: str, world_size: int) -> str | None:
    """URI of the newest checkpoint under ``stage_uri`` that every rank committed, or None.

    Ray Train learns of a reported checkpoint when it next polls the workers; a worker that dies
    right after reporting can leave a complete checkpoint on storage that Ray does not list. This
    lookup finds it, so a restart never repeats steps that a complete checkpoint holds.
    """
    import pyarrow.fs as pafs

    fs, path = storage.resolve(stage_uri)
    infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    steps = sorted((int(m.group(1)) for i in infos if (m := re.fullmatch(r"step_(\d{8})", i.base_name))),
                   reverse=True)
    for step in steps:
        uri = storage.join(stage_uri, checkpoint_name(step))
        if all(storage.exists(storage.join(uri, f"committed_rank{r}")) for r in range(world_size)):
            return uri
    return None


def checkpoint_step(uri: str) -> int:
    match = re.search(r"step_(\d{8})/?$", uri)
    return int(match.group(1)) if match else -1


# ---- stage markers (driver side) ---------------------------------------------------------------
def write_final(stage_uri: str, result: StageResult) -> None:
    storage.write_bytes(storage.join(stage_uri, FINAL), json.dumps(asdict(result), indent=2).encode())


def read_final(stage_uri: str) -> StageResult | None:
    """The finished-stage marker under ``stage_uri``, or None if the stage has not finished."""
    uri = storage.join(stage_uri, FINAL)
    if not storage.exists(uri):
        return None
    return StageResult(**json.loads(storage.read_bytes(uri)))
