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


# ---- integrity (issue 12, item 2) ----------------------------------------------------------------
def _tiny_bundle(path, seed: int = 5) -> tuple[SweetTokenizer, str]:
    torch.manual_seed(seed)
    model = SweetTokenizer(preset("tiny")).eval()
    return model, save_bundle(model, str(path))


def test_a_bundle_with_other_weights_is_refused_naming_the_file(tmp_path):
    from sweettok.bundle import BundleIntegrityError

    _tiny_bundle(tmp_path / "a", seed=5)
    _tiny_bundle(tmp_path / "b", seed=6)
    (tmp_path / "a" / "model.safetensors").write_bytes((tmp_path / "b" / "model.safetensors").read_bytes())
    with pytest.raises(BundleIntegrityError, match="model.safetensors does not match"):
        load_bundle(str(tmp_path / "a"))
    manifest = json.loads((tmp_path / "a" / "bundle.json").read_text())  # an old manifest without per-file hashes
    del manifest["sha256"]
    (tmp_path / "a" / "bundle.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleIntegrityError, match="content hash"):
        load_bundle(str(tmp_path / "a"))


def test_missing_or_unlisted_files_are_refused(tmp_path):
    from sweettok.bundle import BundleIntegrityError

    _tiny_bundle(tmp_path / "a")
    (tmp_path / "a" / "config.json").unlink()
    with pytest.raises(BundleIntegrityError, match="config.json is missing"):
        load_bundle(str(tmp_path / "a"))
    _tiny_bundle(tmp_path / "b")
    manifest = json.loads((tmp_path / "b" / "bundle.json").read_text())
    manifest["files"] = ["config.json"]  # a manifest that leaves the weights out of the hash
    (tmp_path / "b" / "bundle.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleIntegrityError, match="does not list"):
        load_bundle(str(tmp_path / "b"))


def test_an_interrupted_re_export_leaves_the_old_bundle_intact(tmp_path, monkeypatch):
    import os

    old_model, old_hash = _tiny_bundle(tmp_path / "b", seed=5)
    torch.manual_seed(6)
    new_model = SweetTokenizer(preset("tiny")).eval()
    real_open, writes = open, []

    def failing_open(path, mode="r", *args, **kwargs):  # the process dies after writing the weights
        if "w" in mode and str(path).endswith("bundle.json"):
            raise KeyboardInterrupt
        writes.append(str(path))
        return real_open(path, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", failing_open)
    with pytest.raises(KeyboardInterrupt):
        save_bundle(new_model, str(tmp_path / "b"))
    monkeypatch.undo()
    assert any(w.endswith("model.safetensors") for w in writes)
    loaded = load_bundle(str(tmp_path / "b"))
    assert loaded.bundle_hash == old_hash
    x = torch.rand(1, 5, 32, 32, 3) - 0.5
    assert torch.equal(loaded.encode(x), old_model.encode(x))
    assert sorted(os.listdir(tmp_path)) == ["b"]  # no temporary directory left behind
    new_hash = save_bundle(new_model, str(tmp_path / "b"))  # a completed re-export replaces it
    assert load_bundle(str(tmp_path / "b")).bundle_hash == new_hash != old_hash


def test_a_bundle_is_never_written_over_unrelated_files(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not part of a bundle"):
        _tiny_bundle(tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


def test_s3_bundle_manifest_is_written_last_and_verified(s3_bucket):
    import boto3

    from sweettok.bundle import BundleIntegrityError

    uri = f"s3://{s3_bucket}/bundles/t"
    _, digest = _tiny_bundle(uri)
    assert load_bundle(uri).bundle_hash == digest
    s3 = boto3.client("s3")
    objects = s3.list_objects_v2(Bucket=s3_bucket, Prefix="bundles/t/")["Contents"]
    modified = {o["Key"].rsplit("/", 1)[1]: o["LastModified"] for o in objects}
    assert modified["bundle.json"] == max(modified.values())
    other = SweetTokenizer(preset("tiny"))
    body = save_bundle_bytes(other)
    s3.put_object(Bucket=s3_bucket, Key="bundles/t/model.safetensors", Body=body)
    with pytest.raises(BundleIntegrityError, match="model.safetensors"):
        load_bundle(uri)


def save_bundle_bytes(model: SweetTokenizer) -> bytes:
    from safetensors.torch import save

    return save({k: v.contiguous() for k, v in model.state_dict().items()})
