"""Bundles: save/load round trip and content hash."""

from __future__ import annotations

import json

import pytest
import torch

from sweettok import SweetTokenizer, load_bundle, preset, save_bundle


def test_save_load_round_trip_gives_identical_outputs(tmp_path):
    torch.manual_seed(1)
    model = SweetTokenizer(preset("tiny")).eval()
    digest = save_bundle(model, str(tmp_path / "b"))
    loaded = load_bundle(str(tmp_path / "b"))
    x = torch.rand(2, 5, 32, 32, 3) - 0.5
    ids = model.encode(x)
    assert torch.equal(loaded.encode(x), ids)
    assert torch.equal(loaded.decode_ids(ids), model.decode_ids(ids))
    assert loaded.bundle_hash == digest and loaded.config == model.config
    saved = json.loads((tmp_path / "b" / "config.json").read_text())
    assert saved["preset"] == "tiny" and saved["encoder"]["width"] == 64


def test_hash_is_deterministic_and_tracks_weights(tmp_path):
    torch.manual_seed(2)
    model = SweetTokenizer(preset("tiny"))
    a = save_bundle(model, str(tmp_path / "a"))
    b = save_bundle(model, str(tmp_path / "b"))
    with torch.no_grad():
        model.head.proj.bias.add_(1.0)
    c = save_bundle(model, str(tmp_path / "c"))
    assert a == b != c


def test_loading_a_non_bundle_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a tokenizer bundle"):
        load_bundle(str(tmp_path))


def test_language_bundle_hash_does_not_depend_on_where_it_lives(tmp_path):
    from sweettok.codebook import build_codebook, language_config

    info = build_codebook(corpus=None, model_dir=None, output=str(tmp_path / "cb"), max_words_per_branch=64)
    torch.manual_seed(4)
    model = SweetTokenizer(language_config(preset("tiny"), info.uri)).eval()
    first = save_bundle(model, str(tmp_path / "a"))
    loaded = load_bundle(str(tmp_path / "a"))
    assert save_bundle(loaded, str(tmp_path / "elsewhere" / "b")) == first
    x = torch.rand(1, 5, 32, 32, 3) - 0.5
    assert torch.equal(loaded.encode(x), model.encode(x))
    assert loaded.ids_to_words(model.encode(x)) == model.ids_to_words(model.encode(x))
