"""EMA of weights: the formula, copy_to, state round trip, and that it works for any module."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sweettok.train import EMA


def test_plain_formula_and_copy_to():
    model = nn.Linear(3, 2)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    ema = EMA(model, decay=0.9, warmup=False)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema.update(model)
    for name in dict(model.named_parameters()):
        assert torch.allclose(ema.shadow[name], start[name] + 0.1, atol=1e-6)
    target = nn.Linear(3, 2)
    ema.copy_to(target)
    assert torch.allclose(target.weight, start["weight"] + 0.1, atol=1e-6)


def test_converges_to_constant_weights_and_lags_moving_ones():
    model = nn.Linear(4, 4)
    ema = EMA(model, decay=0.999)
    with torch.no_grad():
        model.weight.fill_(2.0)
    for _ in range(3000):
        ema.update(model)
    assert torch.allclose(ema.shadow["weight"], torch.full((4, 4), 2.0), atol=0.2)
    assert ema.current_decay() == pytest.approx(3001 / 3010)  # warm-up: min(decay, (1 + n) / (10 + n))
    lagging = EMA(model, decay=0.999, warmup=False)
    with torch.no_grad():
        model.weight.fill_(3.0)
    lagging.update(model)
    assert torch.allclose(lagging.shadow["weight"], torch.full((4, 4), 2.001), atol=1e-5)


def test_state_round_trip_and_fp32_shadow_of_half_model():
    model = nn.Sequential(nn.Linear(3, 3), nn.LayerNorm(3)).to(torch.bfloat16)
    ema = EMA(model, decay=0.99)
    assert all(v.dtype == torch.float32 for v in ema.shadow.values())
    ema.update(model)
    state = ema.state_dict()
    other = EMA(model, decay=0.5)
    other.load_state_dict(state)
    assert other.decay == 0.99 and other.updates == 1
    assert all(torch.equal(other.shadow[k], ema.shadow[k]) for k in ema.shadow)
    with pytest.raises(ValueError, match="does not match"):
        EMA(nn.Linear(3, 3)).load_state_dict(state)
    with pytest.raises(ValueError, match="decay"):
        EMA(model, decay=1.0)
