"""Reading torch files without running code from them.

``torch.load(weights_only=False)`` unpickles arbitrary objects: a file that names ``os.system`` runs it.
Everything here reads with ``weights_only=True``: tensors, plain containers, numbers and strings, plus an
explicit allow-list of harmless types (``RELEASE_GLOBALS``: what Lightning checkpoints of the public
OmniTokenizer release pickle besides tensors). A file that needs anything else is refused with an error
that names the type and the one-off conversion to safetensors (``convert_to_safetensors``), which a user
runs knowingly on a file they trust.
"""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

# Lightning pickles ``save_hyperparameters()`` args as an argparse Namespace; nothing else is allowed
RELEASE_GLOBALS: tuple[type, ...] = (argparse.Namespace,)


class UnsafeCheckpointError(ValueError):
    """A torch file that cannot be read without unpickling arbitrary objects."""


def load_torch_file(path: str | Path, allowed: tuple[type, ...] = ()) -> Any:
    """``torch.load`` with ``weights_only=True`` (and ``allowed`` types); never executes code from the file."""
    try:
        with torch.serialization.safe_globals(list(allowed)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        detail = str(e).strip().splitlines()
        reason = next((line.strip() for line in detail if "GLOBAL" in line or "global" in line), detail[0] if detail else "")
        raise UnsafeCheckpointError(
            f"{path}: refusing to unpickle it (it holds objects other than tensors: {reason}). If you trust this "
            f"file, convert it once with `sweettok convert-checkpoint --trust-pickle {path} OUT.safetensors` "
            "and load OUT.safetensors instead"
        ) from e


def tensor_state(obj: Any, path: str | Path) -> dict[str, Tensor]:
    """A loaded checkpoint -> its flat tensor state dict (``state_dict`` / ``model`` / ``module`` unwrapped)."""
    for key in ("state_dict", "model", "module"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: expected a state dict, got {type(obj).__name__}")
    return {k: v for k, v in obj.items() if isinstance(v, Tensor)}


def convert_to_safetensors(src: str | Path, dst: str | Path, *, trust_pickle: bool) -> int:
    """One-off conversion of a torch checkpoint to ``.safetensors`` (its tensor state dict); returns the tensor
    count. With ``trust_pickle`` the source is fully unpickled, which runs any code it holds: only for files
    from a source you trust."""
    from safetensors.torch import save_file

    if not trust_pickle:
        state = load_torch_file(src, RELEASE_GLOBALS)
    else:
        state = torch.load(src, map_location="cpu", weights_only=False)  # the user asked for it, knowingly
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensor_state(state, src).items()}
    if not tensors:
        raise ValueError(f"{src}: no tensors found")
    save_file(tensors, str(dst))
    return len(tensors)
