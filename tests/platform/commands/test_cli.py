"""The `sweettok` command: encode/decode local files, help, readable errors and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from sweettok import SweetTokenizer, from_uint8, preset, save_bundle
from sweettok_platform.cli import build_parser
from sweettok_platform.core.media import ClipSpec, read_clips


def sweettok(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "sweettok_platform.cli", *args], capture_output=True, text=True, cwd=cwd)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> str:
    torch.manual_seed(3)
    path = str(tmp_path_factory.mktemp("bundle"))
    save_bundle(SweetTokenizer(preset("tiny")), path)
    return path


def test_encode_decode_a_real_video(tmp_path, bundle, real_video):
    tokens = tmp_path / "t.json"
    r = sweettok("encode", str(real_video), "--bundle", bundle, "--words", "-o", str(tokens))
    assert r.returncode == 0, r.stderr
    record = json.loads(tokens.read_text())
    (clip,) = record["clips"]
    assert len(clip["ids"]) == 8 + 16 and len(clip["words"]) == 24
    # the same ids as encoding the same decord clip directly through the model
    from sweettok import load_bundle

    model = load_bundle(bundle)
    frames = read_clips(str(real_video), ClipSpec(frames=5, height=32, width=32))[0].frames
    assert model.encode(from_uint8(torch.from_numpy(frames))[None]).tolist() == [clip["ids"]]
    assert record["tokenizer"] == model.bundle_hash

    for suffix in ("mp4", "npy"):
        out = tmp_path / f"r.{suffix}"
        r = sweettok("decode", str(tokens), "--bundle", bundle, "-o", str(out))
        assert r.returncode == 0, r.stderr
        assert out.stat().st_size > 0
    assert np.load(tmp_path / "r.npy").shape == (5, 32, 32, 3)


def test_encode_decode_an_image(tmp_path, bundle, real_video):
    import imageio.v3 as iio

    frame = read_clips(str(real_video), ClipSpec(frames=5, height=48, width=64))[0].frames[0]
    iio.imwrite(tmp_path / "im.png", frame)
    r = sweettok("encode", str(tmp_path / "im.png"), "--bundle", bundle, "-o", str(tmp_path / "t.json"))
    assert r.returncode == 0, r.stderr
    assert len(json.loads((tmp_path / "t.json").read_text())["clips"][0]["ids"]) == 8
    r = sweettok("decode", str(tmp_path / "t.json"), "--bundle", bundle, "-o", str(tmp_path / "r.png"))
    assert r.returncode == 0, r.stderr
    assert iio.imread(tmp_path / "r.png").shape == (32, 32, 3)


def test_errors_are_one_readable_line_with_exit_code_1(tmp_path, bundle):
    r = sweettok("encode", str(tmp_path / "missing.mp4"), "--bundle", bundle, "-o", str(tmp_path / "t.json"))
    assert r.returncode == 1 and r.stderr.strip() == f"sweettok encode: error: no such file: {tmp_path / 'missing.mp4'}"
    (tmp_path / "bad.mp4").write_bytes(b"not a video at all" * 100)
    r = sweettok("encode", str(tmp_path / "bad.mp4"), "--bundle", bundle, "-o", str(tmp_path / "t.json"))
    assert r.returncode == 1 and "cannot decode video" in r.stderr and "Traceback" not in r.stderr
    r = sweettok("--debug", "encode", str(tmp_path / "bad.mp4"), "--bundle", bundle, "-o", str(tmp_path / "t.json"))
    assert r.returncode == 1 and "Traceback" in r.stderr
    (tmp_path / "t.json").write_text(json.dumps({"clips": [{"ids": [0] * 23}]}))
    r = sweettok("decode", str(tmp_path / "t.json"), "--bundle", bundle, "-o", str(tmp_path / "r.mp4"))
    assert r.returncode == 1 and "expected 8 (image) or 24 (video) ids per row, got 23" in r.stderr
    r = sweettok("encode", "x.mp4", "--bundle", str(tmp_path), "-o", "t.json")
    assert r.returncode == 1 and "is not a tokenizer bundle" in r.stderr


def test_usage_errors_exit_2():
    assert sweettok("encode").returncode == 2
    assert sweettok("frobnicate").returncode == 2


def test_help_everywhere(capsys):
    """The installed command's top-level help; every subcommand's help through the same parser in-process (one
    interpreter start, not one per subcommand)."""
    parser = build_parser()
    names = list(parser._subparsers._group_actions[0].choices)
    assert {"encode", "decode", "tokenize", "eval", "train", "ar", "serve", "submit"} <= set(names)
    r = sweettok("--help")
    assert r.returncode == 0 and "usage: sweettok" in r.stdout and all(n in r.stdout for n in names), r.stderr
    for name in names:
        with pytest.raises(SystemExit) as exit:
            build_parser().parse_args([name, "--help"])
        assert exit.value.code == 0 and f"usage: sweettok {name}" in capsys.readouterr().out, name
