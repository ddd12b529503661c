"""``sweettok convert-checkpoint``: refuses a pickled payload unless the user vouches with --trust-pickle."""

from __future__ import annotations

from pathlib import Path

import torch

from sweettok.teacher.omnitokenizer import read_release_state
from sweettok_platform.cli import main


class Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_convert_checkpoint_command(tmp_path, capsys):
    state = {"encoder.w": torch.randn(3, 2), "codebook.embeddings": torch.randn(4, 2)}
    marker = tmp_path / "pwned"
    path = str(tmp_path / "release.ckpt")
    torch.save({"state_dict": state, "callbacks": Payload(marker)}, path)
    out = str(tmp_path / "teacher.safetensors")
    assert main(["convert-checkpoint", path, out]) == 1  # refused without --trust-pickle
    assert "refusing to unpickle" in capsys.readouterr().err and not marker.exists()
    assert main(["convert-checkpoint", "--trust-pickle", path, out]) == 0
    assert marker.exists()  # the user asked for the full unpickle, knowingly
    loaded = read_release_state(out)
    assert loaded.keys() == state.keys() and torch.equal(loaded["encoder.w"], state["encoder.w"])
