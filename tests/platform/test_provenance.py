"""Durable provenance: records name the shipped bundle by its package URI (never the directory a job loaded it
from, e.g. Ray's temporary ``runtime_resources``), and ``ar sample`` resolves a recorded bundle by its hash,
refusing one whose hash differs. (The end-to-end record, from a job submitted to a real head, is checked in
``test_submit.py``.)"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from sweettok_platform.ar.sample import load_decoder
from sweettok_platform.core.bundles import PACKAGE_URI, bundle_location, default_bundle, durable_bundle_uri

SHIPPED_HASH = json.loads((Path(default_bundle()) / "bundle.json").read_text())["hash"]


def test_the_shipped_bundle_is_recorded_by_package_uri_and_others_as_named(tmp_path):
    uri = durable_bundle_uri(default_bundle())
    assert uri == PACKAGE_URI + "small-study"
    assert Path(bundle_location(uri)) == Path(default_bundle())
    copy = tmp_path / "my-bundle"  # a user's bundle, even a copy of the shipped one, keeps the name it was given
    shutil.copytree(default_bundle(), copy)
    assert durable_bundle_uri(str(copy)) == str(copy)
    assert durable_bundle_uri(os.path.relpath(copy)) == str(copy)  # a relative name, made absolute where named
    assert durable_bundle_uri("s3://models/paper-v1") == "s3://models/paper-v1"
    with pytest.raises(ValueError, match="not a shipped bundle"):
        bundle_location(PACKAGE_URI + "../../etc")


def _record(bundle: str, content_hash: str) -> dict:
    return {"bundle": bundle, "tokenizer": content_hash, "corpus": "s3://corpora/c", "preset": None, "seed": 0}


def test_sample_resolves_the_recorded_bundle_by_hash_and_refuses_a_mismatch(tmp_path):
    model = load_decoder(_record(PACKAGE_URI + "small-study", SHIPPED_HASH), None)
    assert model.bundle_hash == SHIPPED_HASH
    # a record from before durable URIs: a Ray session's temporary copy that is gone; found by its hash
    gone = str(tmp_path / "session_1" / "runtime_resources" / "py_modules_files" / "sweettok_platform" / "bundles"
               / "small-study")
    assert load_decoder(_record(gone, SHIPPED_HASH), None).bundle_hash == SHIPPED_HASH
    with pytest.raises(FileNotFoundError, match="is gone and no shipped bundle has that hash"):
        load_decoder(_record(gone, "0" * 64), None)
    with pytest.raises(ValueError, match="tokenizer mismatch"):  # the recorded name, but another tokenizer's hash
        load_decoder(_record(PACKAGE_URI + "small-study", "f" * 64), None)
