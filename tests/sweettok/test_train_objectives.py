"""Curriculum objectives on real video clips (tiny preset, CPU): every stage's loss falls, the right
parameters train, the discriminator switches on at ``disc_start``, and the trainer resumes exactly."""

from __future__ import annotations

import copy
import dataclasses
import warnings

import numpy as np
import pytest
import torch

from sweettok.config import tiny
from sweettok.model import SweetTokenizer
from sweettok.patchify import from_uint8
from sweettok.train import CurriculumObjective, LossWeights, set_trainable, tiny_stages, trainable_parameters
from sweettok.train.objectives import TEMPORAL_PREFIXES
from sweettok.train.trainer import Trainer
from sweettok_platform.core.media import ClipSpec, read_clips


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def clips(real_videos) -> torch.Tensor:
    """8 real 5x32x32 clips (b, c, t, h, w) in [-0.5, 0.5], decoded with decord from two videos."""
    spec = ClipSpec(frames=5, height=32, width=32, policy="windows", stride=23)
    frames = []
    for path in real_videos[:2]:
        frames += [c.frames for c in read_clips(str(path), spec)[:4]]
    x = from_uint8(torch.from_numpy(np.stack(frames)))  # (b, t, h, w, c)
    return x.permute(0, 4, 1, 2, 3).contiguous()


@pytest.fixture(scope="module")
def objective() -> CurriculumObjective:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random LPIPS trunk: no VGG weights on this machine
        return CurriculumObjective(tiny_stages())


def _run(model, objective, stage: int, clips: torch.Tensor, steps: int | None = None) -> list[dict]:
    cfg = tiny_stages()[stage]
    trainer = Trainer(model, objective, cfg)
    rows = []
    for i in range(steps or cfg.steps):
        j = (2 * i) % clips.shape[0]
        rows.append(trainer.train_step(clips[j : j + cfg.batch_size]))
    return rows


def _falls(rows: list[dict], key: str, window: int = 6) -> tuple[float, float]:
    first = float(np.mean([r[key] for r in rows[:window]]))
    last = float(np.mean([r[key] for r in rows[-window:]]))
    return first, last


@pytest.fixture(scope="module")
def curriculum(clips, objective) -> dict[int, tuple[SweetTokenizer, list[dict]]]:
    """Stages 0, 1, 2 run in order on one model, as the curriculum does: {stage: (model after, metrics)}."""
    torch.manual_seed(0)
    model = SweetTokenizer(tiny())
    out = {}
    for stage in (0, 1, 2):
        rows = _run(model, objective, stage, clips)
        out[stage] = (copy.deepcopy(model), rows)
    return out


def test_stage0_trains_only_the_teacher_and_its_loss_falls(clips, objective):
    torch.manual_seed(0)
    model = SweetTokenizer(tiny())
    before = copy.deepcopy(model.state_dict())
    rows = _run(model, objective, 0, clips, steps=25)
    first, last = _falls(rows, "mse")
    assert last < 0.7 * first, (first, last)
    after = model.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("teacher.") for k in changed)
    assert rows[-1]["teacher_usage"] > 0


def test_stage1_images_cross_entropy_falls(curriculum):
    rows = curriculum[1][1]
    first, last = _falls(rows, "ce")
    assert last < 0.9 * first, (first, last)
    assert rows[-1]["spatial_perplexity"] > 2, rows[-1]  # the spatial codes have not collapsed onto one
    assert "ce_temporal" not in rows[0] and "temporal_usage" not in rows[0]  # images: spatial branch only
    assert 0 < rows[-1]["spatial_usage"] <= 1 and rows[-1]["spatial_perplexity"] >= 1


def test_stage2_videos_cross_entropy_falls(curriculum):
    rows = curriculum[2][1]
    first, last = _falls(rows, "ce")
    assert last < 0.9 * first, (first, last)
    assert rows[-1]["spatial_perplexity"] > 2 and rows[-1]["temporal_perplexity"] > 2, rows[-1]
    assert {"ce_spatial", "ce_temporal", "temporal_usage", "temporal_perplexity"} <= set(rows[0])


def test_stage3_pixel_losses_fall_and_discriminator_starts(clips, objective, curriculum):
    model = copy.deepcopy(curriculum[2][0])
    cfg = tiny_stages()[3]
    rows = _run(model, objective, 3, clips)
    recon = [{"r": r["mse"] + cfg.loss.lpips * r["lpips"]} for r in rows]
    first, last = _falls(recon, "r")
    assert last < first, (first, last)
    assert all("gan" not in r and r["disc_loss"] == 0.0 for r in rows[: cfg.disc_start])  # off, exactly
    assert all("gan" in r and r["disc_loss"] > 0 for r in rows[cfg.disc_start :])


def test_stage1_trainable_parameters_all_get_gradients_from_images(objective, clips):
    torch.manual_seed(0)
    model = SweetTokenizer(tiny())
    params = set_trainable(model, 1)
    names = {id(p): n for n, p in model.named_parameters()}
    assert not any(names[id(p)].startswith(("teacher.", *TEMPORAL_PREFIXES)) for p in params)
    loss, _ = objective.generator_loss(model, clips[:2], 1, 0)
    loss.backward()
    assert all(p.grad is not None for p in params), [names[id(p)] for p in params if p.grad is None]
    stage2 = {id(p) for p in trainable_parameters(model, 2)}
    assert {id(p) for p in params} < stage2
    stage3 = trainable_parameters(model, 3, finetune_teacher_decoder=True)
    teacher = {id(p) for p in model.teacher.parameters()}
    tuned = [names[id(p)] for p in stage3 if id(p) in teacher]
    assert tuned and not any("codes" in n or "to_code" in n or n.startswith("teacher.enc") for n in tuned)


def test_discriminator_loss_is_zero_before_start_and_generator_term_leaves_disc_grads(clips, objective):
    cfg = tiny_stages()[3]
    torch.manual_seed(0)
    model = SweetTokenizer(tiny())
    set_trainable(model, 3, True)
    zero, metrics = objective.discriminator_loss(clips[:2], clips[2:4], cfg.disc_start - 1)
    assert float(zero.detach()) == 0.0 and metrics == {"disc_loss": 0.0}
    objective.discriminator.zero_grad(set_to_none=True)
    loss, metrics = objective.generator_loss(model, clips[:2], 3, cfg.disc_start)
    loss.backward()
    assert "gan" in metrics
    assert all(p.grad is None for p in objective.discriminator.parameters())
    assert all(p.requires_grad for p in objective.discriminator.parameters())
    d_loss, _ = objective.discriminator_loss(clips[:2], objective.last_reconstruction, cfg.disc_start)
    d_loss.backward()
    assert all(p.grad is not None for p in objective.discriminator.parameters())


def test_half_precision_discriminator_as_deepspeed_leaves_it(clips):
    cfg = dataclasses.replace(tiny_stages()[3], loss=LossWeights(mse=1.0, vq=1.0, gan=0.1), disc_start=0)
    objective = CurriculumObjective([cfg])
    assert objective.lpips is None  # no stage asks for it
    objective.discriminator.to(torch.bfloat16)
    torch.manual_seed(0)
    model = SweetTokenizer(tiny())
    loss, metrics = objective.generator_loss(model, clips[:2], 3, 0)
    assert loss.dtype == torch.float32 and "gan" in metrics
    d_loss, _ = objective.discriminator_loss(clips[:2], objective.last_reconstruction, 0)
    d_loss.backward()
    assert d_loss.dtype == torch.float32
    assert all(p.grad is not None and p.grad.dtype == torch.bfloat16 for p in objective.discriminator.parameters())


def test_trainer_resume_continues_exactly(clips, objective):
    cfg = tiny_stages()[2]
    torch.manual_seed(0)
    model = SweetTokenizer(tiny())
    trainer = Trainer(model, objective, cfg)
    for _ in range(3):
        trainer.train_step(clips[:2])
    state = copy.deepcopy(trainer.state_dict())
    tail = [trainer.train_step(clips[2:4])["loss"] for _ in range(2)]

    torch.manual_seed(1)
    fresh = Trainer(SweetTokenizer(tiny()), objective, cfg)
    fresh.load_state_dict(state)
    assert fresh.step == 3
    again = [fresh.train_step(clips[2:4])["loss"] for _ in range(2)]
    assert again == pytest.approx(tail, rel=1e-5)
    with pytest.raises(ValueError, match="stage2"):
        Trainer(SweetTokenizer(tiny()), objective, tiny_stages()[1]).load_state_dict(state)


def test_bad_batch_shape_is_a_clear_error(objective):
    model = SweetTokenizer(tiny())
    with pytest.raises(ValueError, match=r"\(b, c, t, h, w\)"):
        objective.generator_loss(model, torch.zeros(2, 3, 32, 32), 1, 0)
    with pytest.raises(ValueError, match="stage"):
        objective.generator_loss(model, torch.zeros(1, 3, 5, 32, 32), 4, 0)
