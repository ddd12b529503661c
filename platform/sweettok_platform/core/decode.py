"""Decoding input files into clips, with a time limit per group of windows.

A file that hangs the decoder (or crashes it: decord can segfault on hostile input) must not stop the job.
``TimedDecoder`` therefore decodes in a long-lived helper process. A file is read in groups of at most
``window_group`` windows (``TimedDecoder.groups``): the helper keeps the file open between the requests of
one file, answers each group as soon as it is decoded, and the time limit applies to each group, so a long
video costs memory for one group, not for the whole video, and a hang loses one group (recorded with its
window range): the helper is killed and restarted, and the next group goes on. The helper's memory is
capped (``memory_bytes``) and frames larger than ``max_frame_pixels`` are refused from the container
header, before decoding. The helper answers with raw uint8 frames whose shape the parent checks; nothing
from the helper is unpickled (``sweettok_platform.core.sandboxing``). With ``timeout_s=None`` files are decoded
in the calling process (no isolation, no memory cap, no copy).
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Iterator

import numpy as np

from sweettok_platform.core import sandboxing as wire
from sweettok_platform.core.sources import Item, open_item
from sweettok_platform.core.media import Clip, ClipSpec, MediaError

STARTUP_TIMEOUT_S = 120.0
# The helper runs this much nicer than its worker: where cores are short, the encode actors downstream get
# the CPU first, so decoded shards do not pile up while the encoder waits. Work-conserving: an idle encoder
# leaves the cores to the decoders. (On 2 cores: ~8% more clips/s than at equal priority.)
HELPER_NICENESS = 5
MAX_CLIPS_PER_FILE = 4096  # most clips the parent accepts in one answer
WINDOW_GROUP = 64  # windows per request: a long video is decoded, answered and handed on this many at a time
MAX_WINDOWS = 1_000_000  # most windows the parent asks for from one file (a helper's count is not trusted beyond)
MMAP_THRESHOLD = 1 << 20  # the helper's glibc mmap threshold (see TimedDecoder._start)
MAX_FAILED_GROUPS = 3  # groups in a row that fail (hang, crash, malformed answer) before the rest of a file is given up


@dataclass
class Decoded:
    """What one file (or one group of its windows) gave: its clips, or the reason it gave none; ``windows``
    is the file's number of windows when known."""

    item: Item
    clips: list[Clip] = field(default_factory=list)
    error: str | None = None
    windows: int | None = None


def decode_file(item: Item, spec: ClipSpec, max_pixels: int | None = None) -> Decoded:
    """Decode one file in this process; decoding problems become ``Decoded.error``."""
    return decode_group({}, item, spec, max_pixels, 0, 1 << 62)


def decode_group(opened: dict, item: Item, spec: ClipSpec, max_pixels: int | None, first: int,
                 count: int) -> Decoded:
    """Windows ``first .. first + count - 1`` of ``item`` in this process; ``opened`` keeps the file that
    was opened last (one file at a time), so the groups of one file open it once."""
    key = json.dumps([item.uri, item.key, asdict(spec), max_pixels])
    try:
        if opened.get("key") != key:
            opened.clear()  # the previous file's reader (and remote bytes) go before the next opens
            opened.update(key=key, video=open_item(item.uri, spec, name=item.key, max_pixels=max_pixels))
        video = opened["video"]
        return Decoded(item=item, clips=video.clips(first, count), windows=len(video))
    except MediaError as e:
        return Decoded(item=item, error=str(e))
    except Exception as e:  # any other failure of a third-party decoder is still this file's problem
        return Decoded(item=item, error=f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")


def serve_stdio(memory_bytes: int | None = None) -> None:
    """The helper process: decode requests from stdin, answer on (the original) stdout, until EOF."""
    os.nice(HELPER_NICENESS)  # decoding yields to encoding (see HELPER_NICENESS)
    out = os.dup(1)
    os.dup2(2, 1)  # stray prints from decoders go to stderr, not into the answer pipe
    wire.limit_memory(memory_bytes)
    import decord  # noqa: F401  (import before saying ready: the time limit is for decoding only)
    import torch

    torch.set_num_threads(1)  # one file at a time per helper; parallelism comes from more decode tasks

    wire.send(out, {"ready": True})
    opened: dict = {}
    while True:
        try:
            request, _ = wire.recv(0, max_bytes=0)  # from the trusted parent
        except EOFError:
            return
        item, spec = Item(**request["item"]), ClipSpec(**request["spec"])
        first, count = request.get("windows") or (0, MAX_CLIPS_PER_FILE)
        try:
            result = decode_group(opened, item, spec, request.get("max_pixels"), first, count)
        except MemoryError:
            opened.clear()
            result = Decoded(item=item, error=f"too large: decoding needs more than the decoder's memory limit "
                                               f"of {memory_bytes} bytes")
        clips = result.clips
        shapes = {c.frames.shape for c in clips}
        if len(shapes) > 1:  # images and videos are never mixed within one file
            clips, result.error = [], f"clips of different shapes {sorted(shapes)}"
        if request.get("windows") is None and result.windows is not None and result.windows > MAX_CLIPS_PER_FILE:
            clips, result.error = [], f"too many clips: {result.windows} (at most {MAX_CLIPS_PER_FILE}; use a larger stride)"
        frames = np.ascontiguousarray(np.stack([c.frames for c in clips]), np.uint8) if clips else None
        header = {"error": result.error, "windows": result.windows,
                  "clips": [{"start": c.start, "window": c.window, "fps": c.fps} for c in clips],
                  **({"shape": list(frames.shape), "dtype": "uint8"} if frames is not None else {})}
        del clips, result
        wire.send(out, header, memoryview(frames.reshape(-1)) if frames is not None else b"")


def _read_answer(fd: int, item: Item, spec: ClipSpec, deadline: float) -> Decoded:
    """The helper's answer, checked before use: clips of ``spec``'s size in uint8, or an error string."""
    header = wire.recv_header(fd, deadline)
    error, meta, windows = header.get("error"), header.get("clips"), header.get("windows")
    if not isinstance(meta, list) or not all(isinstance(m, dict) for m in meta):
        raise wire.WireError("no clip list")
    if windows is not None:
        windows = wire.ints([windows], 1, "windows")[0]
        if windows < 0:
            raise wire.WireError("windows: negative")
    if not meta:
        if header["nbytes"]:
            raise wire.WireError("frames without clips")
        if error is None and windows is not None:
            return Decoded(item=item, windows=windows)  # a group past the last window
        return Decoded(item=item, error=wire.text(error if error is not None else "no clips", 500), windows=windows)
    shape = wire.check_frames_header(header, height=spec.height, width=spec.width, frames={1, spec.frames},
                                     max_clips=min(len(meta), MAX_CLIPS_PER_FILE))
    if shape[0] != len(meta):
        raise wire.WireError(f"{shape[0]} clips of frames for {len(meta)} clips")
    frames = wire.frames_from(wire.recv_payload(fd, header, header["nbytes"], deadline), shape)
    starts = wire.ints([m.get("start") for m in meta], len(meta), "start")
    indices = wire.ints([m.get("window") for m in meta], len(meta), "window")
    return Decoded(item=item, clips=[Clip(frames=f, start=s, window=w, fps=wire.number(m.get("fps"), "fps"))
                                     for f, s, w, m in zip(frames, starts, indices, meta)], windows=windows)


class TimedDecoder:
    """Decodes files in a helper process with a per-file time limit; reuse one per worker.

    ``max_frame_pixels`` refuses larger frames (from the header, before decoding); ``memory_bytes`` caps the
    helper's data segment; ``argv`` replaces the helper command (tests start hostile ones).
    """

    def __init__(self, spec: ClipSpec, timeout_s: float | None = 60.0, *, max_frame_pixels: int | None = None,
                 memory_bytes: int | None = None, argv: list[str] | None = None) -> None:
        self.spec = spec
        self.timeout_s = timeout_s
        self.max_frame_pixels = max_frame_pixels
        self.memory_bytes = memory_bytes
        self.argv = argv
        self._proc: subprocess.Popen | None = None
        self._opened: dict = {}  # the open file of in-process groups (timeout_s None)

    def _start(self) -> None:
        # a fresh interpreter (not fork: forking a Ray worker's threads is unsafe; not multiprocessing
        # spawn: it re-runs the parent's __main__)
        code = f"from sweettok_platform.core.decode import serve_stdio; serve_stdio({self.memory_bytes!r})"
        # glibc keeps freed large blocks (resize temporaries, per-window frames) in the heap unless they are
        # mmapped; a threshold hands them back, so the helper's RSS follows one file's frames, not its peak.
        # 1 MiB, not lower: below it (a 320x240 frame is 225 KiB) every frame was a fresh mmap and its page
        # faults, ~1.2 ms CPU per 9x64x64 clip, 20% of decoding (benchmarks/profile_tokenize.py); 720p and
        # larger frames, where the memory is, stay mmapped
        env = {**os.environ, "MALLOC_MMAP_THRESHOLD_": os.environ.get("MALLOC_MMAP_THRESHOLD_", str(MMAP_THRESHOLD))}
        self._proc = subprocess.Popen(self.argv or [sys.executable, "-c", code], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, bufsize=0, env=env)
        ready, _, _ = select.select([self._proc.stdout.fileno()], [], [], STARTUP_TIMEOUT_S)
        try:
            started = bool(ready) and wire.recv_header(self._proc.stdout.fileno()) == {"ready": True, "nbytes": 0}
        except (EOFError, OSError, wire.WireError):
            started = False
        if not started:
            self._stop()
            raise RuntimeError(f"the decoder helper process did not start within {STARTUP_TIMEOUT_S} s")

    def _stop(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc.stdin.close()
            self._proc.stdout.close()
        self._proc = None

    def __call__(self, item: Item) -> Decoded:
        """Every clip of ``item`` in one answer (at most MAX_CLIPS_PER_FILE), under one time limit."""
        if self.timeout_s is None:
            return decode_file(item, self.spec, self.max_frame_pixels)
        return self._request(item, None, "decoding")

    def group(self, item: Item, first: int, count: int, windows: int | None = None) -> Decoded:
        """Windows ``first .. first + count - 1`` of ``item`` under their own time limit. ``windows``: the
        file's number of windows if an earlier group said it (kept on a timeout, so the next group goes on)."""
        if self.timeout_s is None:
            return decode_group(self._opened, item, self.spec, self.max_frame_pixels, first, count)
        last = first + count - 1 if windows is None else min(first + count, windows) - 1
        what = f"windows {first}..{last}" + (f" of {windows}" if windows is not None else "")
        result = self._request(item, [first, count], what)
        if result.windows is None and windows is not None:
            result.windows = windows
        return result

    def groups(self, item: Item, size: int = WINDOW_GROUP, start: int = 0,
               windows: int | None = None) -> Iterator[Decoded]:
        """``item``'s clips from window ``start`` in groups of at most ``size`` windows, each under its own time
        limit; a group that fails is yielded with its error (naming its window range) and the next group goes
        on, unless the file's number of windows is not known yet (then that error ends the file) or
        ``MAX_FAILED_GROUPS`` groups in a row failed (then one more error row says the rest was given up)."""
        first, failed = start, 0
        while windows is None or first < min(windows, MAX_WINDOWS):
            result = self.group(item, first, size, windows)
            if result.error is None and not result.clips:
                return  # past the end (or a helper whose count was wrong): nothing more to ask for
            yield result
            if result.windows is None:
                return
            failed = failed + 1 if result.error is not None else 0
            windows, first = result.windows, first + size
            if failed >= MAX_FAILED_GROUPS and first < windows:
                yield Decoded(item=item, windows=windows, error=f"gave up windows {first}..{windows - 1} of "
                                                                f"{windows}: {failed} groups in a row failed")
                return

    def _request(self, item: Item, windows: list[int] | None, what: str) -> Decoded:
        if self._proc is None or self._proc.poll() is not None:
            self._start()
        proc = self._proc
        try:
            request = {"item": item.to_dict(), "spec": asdict(self.spec), "max_pixels": self.max_frame_pixels,
                       "windows": windows}
            wire.send(proc.stdin.fileno(), request)
            ready, _, _ = select.select([proc.stdout.fileno()], [], [], self.timeout_s)
            if not ready:
                self._stop()
                return Decoded(item=item, error=f"timeout: {what} took more than {self.timeout_s:g} s")
            # the answer has begun; its transfer gets a time limit of its own
            return _read_answer(proc.stdout.fileno(), item, self.spec, time.monotonic() + self.timeout_s)
        except TimeoutError:
            self._stop()
            return Decoded(item=item, error=f"timeout: the decoder's answer ({what}) took more than {self.timeout_s:g} s")
        except (EOFError, OSError):
            code = proc.poll()
            self._stop()
            return Decoded(item=item, error=f"decoder crashed ({what}; exit code {code})")
        except wire.WireError as e:
            self._stop()
            return Decoded(item=item, error=f"decoder sent a malformed answer: {e}")

    def close(self) -> None:
        self._stop()

    def __del__(self) -> None:
        try:
            self._stop()
        except Exception:
            pass
