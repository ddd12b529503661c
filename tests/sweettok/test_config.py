"""Presets, overrides and serialisation of the config."""

from __future__ import annotations

import json

import pytest

from sweettok.config import PRESETS, TokenizerConfig, apply_overrides, preset


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip_through_json(name):
    cfg = preset(name)
    again = TokenizerConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and again.preset == name


def test_paper_preset_matches_the_paper():
    cfg = preset("paper")
    assert (cfg.patch.frames, cfg.patch.height, cfg.patch.width) == (17, 256, 256)
    assert (cfg.patch.p_t, cfg.patch.p_h, cfg.patch.p_w) == (4, 8, 8)
    assert (cfg.encoder.width, cfg.encoder.heads, cfg.encoder.spatial_layers, cfg.encoder.temporal_layers) == (512, 8, 8, 4)
    fields = ("width", "heads", "spatial_layers", "temporal_layers", "mlp_ratio")
    assert all(getattr(cfg.decoder, f) == getattr(cfg.encoder, f) for f in fields)
    assert (cfg.spatial_queries, cfg.temporal_queries, cfg.quantizer.latent_dim) == (256, 1024, 256)


def test_overrides_merge_nested_values():
    cfg = preset("tiny", {"encoder": {"width": 32}, "spatial_queries": 4})
    assert cfg.encoder.width == 32 and cfg.encoder.heads == 4 and cfg.spatial_queries == 4
    assert apply_overrides(cfg, {"quantizer": {"beta": 0.5}}).quantizer.beta == 0.5


def test_unknown_keys_and_presets_are_rejected():
    with pytest.raises(ValueError, match="encoder.widht: unknown setting; TransformerConfig takes width"):
        preset("tiny", {"encoder": {"widht": 32}})
    with pytest.raises(ValueError, match="unknown preset 'huge'"):
        preset("huge")
