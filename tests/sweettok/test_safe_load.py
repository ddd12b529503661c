"""No code runs from loaded files: a pickle payload that would write a marker file is refused by every
torch-file reader (OmniTokenizer teacher checkpoints, also when a bundle names one; VQ teacher files),
while the release's Lightning layout (argparse Namespace hyper-parameters) still loads."""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

import pytest
import torch

from conftest import shared_file

from sweettok.bundle import load_bundle, save_bundle
from sweettok.config import PatchConfig, TeacherConfig, tiny
from sweettok.model import SweetTokenizer
from sweettok.safe_load import UnsafeCheckpointError, convert_to_safetensors
from sweettok.teacher.omnitokenizer import OmniConfig, OmniTokenizerTeacher, read_release_state
from sweettok.teacher.vq import read_teacher_state

TINY_PATCH = PatchConfig(frames=5, height=32, width=32)
SMALL = OmniConfig(dim=32, dim_head=8, heads=4, enc_block="tw", dec_block="tt", temporal_depth=1, window_size=2)


class Payload:
    """Unpickling this touches ``marker``: the stand-in for an attacker's code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _teacher_config(path=None) -> TeacherConfig:
    return TeacherConfig(kind="omnitokenizer", codebook_size=64, code_dim=8, checkpoint=path)


@pytest.fixture(scope="module")
def release_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return OmniTokenizerTeacher(TINY_PATCH, _teacher_config(), SMALL).release_state_dict()


def _poisoned(tmp_path: Path, state: dict) -> tuple[str, Path]:
    marker = tmp_path / "pwned"
    path = tmp_path / "poisoned.ckpt"
    torch.save({"state_dict": state, "hyper_parameters": {"args": argparse.Namespace(n_codes=64)},
                "callbacks": Payload(marker)}, path)
    return str(path), marker


def test_release_checkpoint_with_a_payload_is_refused_and_runs_nothing(tmp_path, release_state):
    path, marker = _poisoned(tmp_path, release_state)
    with pytest.raises(UnsafeCheckpointError, match="refusing to unpickle.*convert-checkpoint"):
        read_release_state(path)
    with pytest.raises(UnsafeCheckpointError):
        OmniTokenizerTeacher(TINY_PATCH, _teacher_config(path))
    assert not marker.exists()


def test_lightning_layout_with_namespace_hyperparameters_loads(tmp_path, release_state):
    path = tmp_path / "release.ckpt"
    torch.save({"state_dict": release_state, "hyper_parameters": {"args": argparse.Namespace(n_codes=64, lr=1e-4)}},
               path)
    teacher = OmniTokenizerTeacher(TINY_PATCH, _teacher_config(str(path)))
    assert teacher.arch == SMALL


def test_the_release_layout_fixture_still_loads():
    state = read_release_state(str(shared_file("fixtures/omnitokenizer/omnitokenizer-release-layout-small.ckpt")))
    assert tuple(state["codebook.embeddings"].shape) == (512, 8)


def test_bundle_naming_a_poisoned_teacher_checkpoint_runs_nothing(tmp_path, release_state):
    good = tmp_path / "teacher.ckpt"
    torch.save({"state_dict": release_state}, good)
    config = dataclasses.replace(tiny(), teacher=_teacher_config(str(good)))
    save_bundle(SweetTokenizer(config), str(tmp_path / "bundle"))
    marker = tmp_path / "pwned"
    torch.save({"state_dict": release_state, "x": Payload(marker)}, good)  # the teacher file is replaced later
    with pytest.raises(UnsafeCheckpointError):
        load_bundle(str(tmp_path / "bundle"))
    assert not marker.exists()


def test_vq_teacher_file_with_a_payload_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "vq.pt"
    torch.save({"model": {"w": torch.zeros(2)}, "extra": Payload(marker)}, path)
    with pytest.raises(UnsafeCheckpointError):
        read_teacher_state(str(path))
    assert not marker.exists()


def test_explicit_conversion_to_safetensors(tmp_path, release_state):
    path, marker = _poisoned(tmp_path, release_state)
    with pytest.raises(UnsafeCheckpointError):
        convert_to_safetensors(path, tmp_path / "out.safetensors", trust_pickle=False)
    assert not marker.exists()
    # the user trusts the file and says so: the conversion unpickles once, the result is plain tensors
    count = convert_to_safetensors(path, tmp_path / "out.safetensors", trust_pickle=True)
    assert count == len(release_state) and marker.exists()
    os.remove(marker)
    teacher = OmniTokenizerTeacher(TINY_PATCH, _teacher_config(str(tmp_path / "out.safetensors")))
    assert teacher.arch == SMALL and not marker.exists()

