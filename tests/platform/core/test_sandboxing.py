"""Both decoding sandboxes treat their worker as compromised: its answer is raw frames checked by shape, never a
pickle. Each test starts a real worker process that behaves as a decoder exploit would (sends a pickle that
writes a marker file when unpickled, lies about shapes, hangs, dies) and checks the parent refuses the file,
runs no code, allocates nothing the answer merely claims, and keeps working.
"""

from __future__ import annotations

import asyncio
import pickle
import sys
import textwrap
import time
from pathlib import Path

import pytest

from sweettok_platform.core.decode import TimedDecoder
from sweettok_platform.core.sources import Item
from sweettok_platform.core.media import ClipSpec
from sweettok_platform.serve.limits import LimitsConfig, RequestError
from sweettok_platform.serve.sandbox import DecoderPool

SPEC = ClipSpec(frames=5, height=32, width=32)


class _WritesMarker:
    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # unpickling this calls open(marker, "w"): code run in whoever unpickles it
        return (open, (self.marker, "w"))


def _worker(tmp_path: Path, answer: str) -> list[str]:
    """A worker command: says ready, reads one request, then runs ``answer`` (Python, ``out`` is its pipe)."""
    script = tmp_path / "worker.py"
    script.write_text(textwrap.dedent("""
        import os, struct, sys, time
        from sweettok_platform.core import sandboxing as wire
        out = 1
        wire.send(out, {"ready": True})
        header = wire.recv_header(0)
        wire.recv_payload(0, header, 1 << 40)
    """) + textwrap.dedent(answer))
    return [sys.executable, str(script)]


def _pickle_answer(marker: Path) -> str:
    payload = pickle.dumps((True, _WritesMarker(str(marker))))
    # the frame of the old protocol exactly: an 8-byte length, then the pickle
    return f"os.write(out, struct.pack('<Q', {len(payload)}) + {payload!r})\ntime.sleep(30)\n"


def _run_pool(argv: list[str], data: bytes = b"x", timeout: float = 60) -> RequestError:
    async def go() -> RequestError:
        pool = DecoderPool(1, argv=argv)
        try:
            with pytest.raises(RequestError) as e:
                await pool.decode(data, ".mp4", SPEC, LimitsConfig(), timeout=timeout)
            return e.value
        finally:
            pool.close()

    return asyncio.run(go())


def test_serve_sandbox_never_unpickles_a_workers_answer(tmp_path):
    marker = tmp_path / "pwned"
    error = _run_pool(_worker(tmp_path, _pickle_answer(marker)))
    assert error.status == 422 and "malformed answer" in error.reason
    assert not marker.exists(), "the replica ran code sent by a decoder process"


BAD_ANSWERS = {
    "bytes short of the shape": ({"ok": True, "shape": [1, 5, 32, 32, 3], "dtype": "uint8", "starts": [0],
                                  "windows": [0], "fps": 8.0}, 100),
    "shape of 10^6 clips": ({"ok": True, "shape": [10**6, 5, 32, 32, 3], "dtype": "uint8", "starts": [0],
                             "windows": [0], "fps": 8.0}, 10**6 * 5 * 32 * 32 * 3),
    "wrong frame size": ({"ok": True, "shape": [1, 5, 4096, 4096, 3], "dtype": "uint8", "starts": [0],
                          "windows": [0], "fps": 8.0}, 5 * 4096 * 4096 * 3),
    "object dtype": ({"ok": True, "shape": [1, 5, 32, 32, 3], "dtype": "object", "starts": [0], "windows": [0],
                      "fps": 8.0}, 5 * 32 * 32 * 3),
    "starts not integers": ({"ok": True, "shape": [1, 5, 32, 32, 3], "dtype": "uint8", "starts": ["0"],
                             "windows": [0], "fps": 8.0}, 5 * 32 * 32 * 3),
    "refusal with a 500": ({"ok": False, "status": 500, "reason": "x"}, 0),
}


@pytest.mark.parametrize("case", BAD_ANSWERS)
def test_serve_sandbox_checks_the_frames_header_before_reading(tmp_path, case):
    header, nbytes = BAD_ANSWERS[case]
    # the header claims nbytes; the worker sends only what it says (never more than 15 MB here) and waits
    sent = min(nbytes, 5 * 32 * 32 * 3)
    answer = (f"import json\nraw = json.dumps({{**{header!r}, 'nbytes': {nbytes}}}).encode()\n"
              f"os.write(out, struct.pack('<Q', len(raw)) + raw + bytes({sent}))\ntime.sleep(30)\n")
    began = time.monotonic()
    error = _run_pool(_worker(tmp_path, answer), timeout=20)
    assert error.status == 422 and "malformed answer" in error.reason, error.reason
    assert time.monotonic() - began < 15, "the parent waited for bytes it should have refused"


def test_serve_sandbox_time_limit_and_crash_leave_the_pool_working(tmp_path, real_video):
    assert "longer than 1 s" in _run_pool(_worker(tmp_path, "time.sleep(60)\n"), timeout=1).reason
    assert "crashed" in _run_pool(_worker(tmp_path, "os.abort()\n")).reason

    async def real() -> None:
        pool = DecoderPool(1)
        try:
            with pytest.raises(RequestError, match="cannot decode video"):
                await pool.decode(b"\0" * 2048, ".mp4", SPEC, LimitsConfig(), timeout=60)
            clips = await pool.decode(real_video.read_bytes(), ".mp4", SPEC, LimitsConfig(), timeout=60)
            assert clips.frames.shape == (1, 5, 32, 32, 3) and clips.frames.dtype.name == "uint8"
            assert clips.starts == [122] and clips.fps == 25.0
        finally:
            pool.close()

    asyncio.run(real())


def _helper(tmp_path: Path, answer: str) -> list[str]:
    """A tokenize decode helper that says ready, reads one request and answers ``answer``."""
    script = tmp_path / "helper.py"
    script.write_text(textwrap.dedent("""
        import os, struct, sys, time
        from sweettok_platform.core import sandboxing as wire
        out = 1
        wire.send(out, {"ready": True})
        wire.recv(0, 0)
    """) + textwrap.dedent(answer))
    return [sys.executable, str(script)]


def test_tokenize_decoder_never_unpickles_a_helpers_answer(tmp_path, real_video):
    marker = tmp_path / "pwned"
    item = Item(uri=str(real_video), key="bikes.mp4")
    decoded = TimedDecoder(SPEC, timeout_s=30, argv=_helper(tmp_path, _pickle_answer(marker)))(item)
    assert decoded.clips == [] and "malformed answer" in decoded.error
    assert not marker.exists(), "the decode task ran code sent by its helper"

    lie = ("import json\nraw = json.dumps({'error': None, 'clips': [{'start': 0, 'window': 0, 'fps': 8}], "
           "'shape': [1, 5, 8192, 8192, 3], 'dtype': 'uint8', 'nbytes': 5 * 8192 * 8192 * 3}).encode()\n"
           "os.write(out, struct.pack('<Q', len(raw)) + raw)\ntime.sleep(30)\n")
    began = time.monotonic()
    decoded = TimedDecoder(SPEC, timeout_s=30, argv=_helper(tmp_path, lie))(item)
    assert "malformed answer" in decoded.error and time.monotonic() - began < 20

    real = TimedDecoder(SPEC, timeout_s=60)
    try:
        clips = real(item).clips
        assert len(clips) == 1 and clips[0].frames.shape == (5, 32, 32, 3) and clips[0].start == 122
    finally:
        real.close()


def test_a_helper_claiming_endless_windows_does_not_keep_the_parent_asking(tmp_path, real_video):
    item = Item(uri=str(real_video), key="bikes.mp4")
    endless = ("import json\nwhile True:\n"
               "    raw = json.dumps({'error': None, 'clips': [], 'windows': 10**12, 'nbytes': 0}).encode()\n"
               "    os.write(out, struct.pack('<Q', len(raw)) + raw)\n    wire.recv(0, 0)\n")
    decoder = TimedDecoder(SPEC, timeout_s=30, argv=_helper(tmp_path, endless))
    try:
        began = time.monotonic()
        assert list(decoder.groups(item, start=64, windows=10**12)) == []  # one empty answer ends the file
        assert time.monotonic() - began < 10
    finally:
        decoder.close()
    broken = TimedDecoder(SPEC, timeout_s=30, argv=_helper(tmp_path, "os.write(out, b'junk' * 4)\n"))
    try:  # every group gets a malformed answer: three failed groups in a row, then the rest is given up
        groups = list(broken.groups(item, start=64, windows=10**12))
    finally:
        broken.close()
    gave_up = "gave up windows 256..999999999999 of 1000000000000"
    assert [g.error.split(":")[0] for g in groups] == ["decoder sent a malformed answer"] * 3 + [gave_up]
