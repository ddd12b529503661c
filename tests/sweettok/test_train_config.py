"""Stage configs, presets (paper Table 9 / §4.1) and the cosine-with-warm-up schedule."""

from __future__ import annotations

import pytest

from sweettok.train import StageConfig, lr_at, paper_stages, stage_presets, tiny_stages


def test_lr_warms_up_linearly_then_decays_by_cosine_to_min():
    cfg = StageConfig(name="stage1", steps=1000, batch_size=1, lr=1e-3, min_lr=1e-4, warmup_steps=100)
    warm = [lr_at(s, cfg) for s in range(100)]
    assert warm[0] == pytest.approx(1e-5) and warm[-1] == pytest.approx(1e-3)
    assert all(b > a for a, b in zip(warm, warm[1:]))
    diffs = [warm[i + 1] - warm[i] for i in range(99)]
    assert max(diffs) == pytest.approx(min(diffs))  # linear
    decay = [lr_at(s, cfg) for s in range(100, 1001)]
    assert decay[0] == pytest.approx(1e-3)
    assert all(b <= a for a, b in zip(decay, decay[1:]))
    assert lr_at(550, cfg) == pytest.approx((1e-3 + 1e-4) / 2)  # cosine midpoint
    assert lr_at(1000, cfg) == pytest.approx(1e-4) and lr_at(5000, cfg) == pytest.approx(1e-4)
    # the discriminator's schedule has the same shape around its own peak
    assert lr_at(550, cfg, peak=2e-3) == pytest.approx(2 * lr_at(550, cfg))


def test_paper_stages_follow_table_9():
    s0, s1, s2, s3 = paper_stages()
    assert [s.index for s in (s0, s1, s2, s3)] == [0, 1, 2, 3]
    assert (s1.batch_size, s2.batch_size, s3.batch_size) == (32, 8, 12)
    assert (s1.steps, s2.steps, s3.steps) == (1_000_000, 500_000, 500_000)
    assert all(s.lr == 1e-4 and s.min_lr == 1e-5 and s.warmup_steps == 10_000 for s in (s1, s2, s3))
    assert s1.betas == (0.9, 0.99) and s3.betas == (0.9, 0.999)
    assert (s1.precision, s2.precision, s3.precision) == ("fp16", "fp16", "bf16")
    assert s3.disc_start == 20_000 and s3.disc_lr == 1e-4 and s3.loss.gan > 0 and s3.loss.lpips > 0
    assert s1.data == "images" and s2.data == "videos"
    assert s1.loss.mse == 0 and s1.loss.ce > 0 and s3.loss.ce == 0
    assert all(s.ema_decay == 0.999 and s.weight_decay == 1e-4 for s in (s1, s2, s3))


def test_tiny_stages_are_short_and_every_stage_is_present():
    stages = tiny_stages()
    assert [s.name for s in stages] == ["stage0", "stage1", "stage2", "stage3"]
    assert all(s.steps <= 50 and s.precision == "fp32" for s in stages)
    assert stages[3].disc_start < stages[3].steps
    assert [s.name for s in stage_presets("paper")] == [s.name for s in stages]


def test_round_trip_and_readable_errors():
    cfg = paper_stages()[3]
    again = StageConfig.from_dict(cfg.to_dict())
    assert again == cfg
    data = cfg.to_dict() | {"betas": [0.5, 0.6]}  # YAML gives lists
    assert StageConfig.from_dict(data).betas == (0.5, 0.6)
    with pytest.raises(ValueError, match="stepz: unknown setting; StageConfig takes"):
        StageConfig.from_dict(cfg.to_dict() | {"stepz": 3})
    with pytest.raises(ValueError, match="stage name"):
        StageConfig(name="stage9", steps=1, batch_size=1)
    with pytest.raises(ValueError, match="precision"):
        StageConfig(name="stage1", steps=1, batch_size=1, precision="fp8")
    with pytest.raises(ValueError, match="steps and batch_size"):
        StageConfig(name="stage1", steps=0, batch_size=1)
    with pytest.raises(ValueError, match="unknown stage preset"):
        stage_presets("huge")
