"""Decoding input files into clips, with a per-file time limit.

A file that hangs the decoder (or crashes it: decord can segfault on hostile input) must not stop the job.
``TimedDecoder`` therefore decodes in a long-lived helper process; a file that runs past the limit gets
the helper killed (and restarted for the next file) and comes back as an error. With ``timeout_s=None``
files are decoded in the calling process (no isolation, no copy).
"""

from __future__ import annotations

import os
import pickle
import select
import struct
import subprocess
import sys
from dataclasses import asdict, dataclass, field

from sweettok_platform.data.sources import Item
from sweettok_platform.media import Clip, ClipSpec, MediaError, read_clips_uri

STARTUP_TIMEOUT_S = 120.0
# The helper runs this much nicer than its worker: where cores are short, the encode actors downstream get
# the CPU first, so decoded shards do not pile up while the encoder waits. Work-conserving: an idle encoder
# leaves the cores to the decoders. (On 2 cores: ~8% more clips/s than at equal priority.)
HELPER_NICENESS = 5


@dataclass
class Decoded:
    """What one file gave: its clips, or the reason it gave none."""

    item: Item
    clips: list[Clip] = field(default_factory=list)
    error: str | None = None


def decode_file(item: Item, spec: ClipSpec) -> Decoded:
    """Decode one file in this process; decoding problems become ``Decoded.error``."""
    try:
        return Decoded(item=item, clips=read_clips_uri(item.uri, spec, name=item.key))
    except MediaError as e:
        return Decoded(item=item, error=str(e))
    except Exception as e:  # any other failure of a third-party decoder is still this file's problem
        return Decoded(item=item, error=f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")


def _send(fd: int, obj: object) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    view = memoryview(struct.pack("<Q", len(data)) + data)
    while view:
        view = view[os.write(fd, view) :]


def _recv(fd: int) -> object:
    def read(n: int) -> bytes:
        chunks = []
        while n:
            chunk = os.read(fd, min(n, 1 << 20))
            if not chunk:
                raise EOFError("decoder pipe closed")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    (size,) = struct.unpack("<Q", read(8))
    return pickle.loads(read(size))


def serve_stdio() -> None:
    """The helper process: decode requests from stdin, answer on (the original) stdout, until EOF."""
    os.nice(HELPER_NICENESS)  # decoding yields to encoding (see HELPER_NICENESS)
    out = os.dup(1)
    os.dup2(2, 1)  # stray prints from decoders go to stderr, not into the answer pipe
    import decord  # noqa: F401  (import before saying ready: the time limit is for decoding only)
    import torch

    torch.set_num_threads(1)  # one file at a time per helper; parallelism comes from more decode tasks

    _send(out, "ready")
    while True:
        try:
            item_dict, spec_dict = _recv(0)
        except EOFError:
            return
        result = decode_file(Item(**item_dict), ClipSpec(**spec_dict))
        _send(out, (result.clips, result.error))


class TimedDecoder:
    """Decodes files in a helper process with a per-file time limit; reuse one per worker."""

    def __init__(self, spec: ClipSpec, timeout_s: float | None = 60.0) -> None:
        self.spec = spec
        self.timeout_s = timeout_s
        self._proc: subprocess.Popen | None = None

    def _start(self) -> None:
        # a fresh interpreter (not fork: forking a Ray worker's threads is unsafe; not multiprocessing
        # spawn: it re-runs the parent's __main__)
        code = "from sweettok_platform.data.decode import serve_stdio; serve_stdio()"
        self._proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, bufsize=0)
        ready, _, _ = select.select([self._proc.stdout.fileno()], [], [], STARTUP_TIMEOUT_S)
        if not ready or _recv(self._proc.stdout.fileno()) != "ready":
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
        if self.timeout_s is None:
            return decode_file(item, self.spec)
        if self._proc is None or self._proc.poll() is not None:
            self._start()
        proc = self._proc
        try:
            _send(proc.stdin.fileno(), (item.to_dict(), asdict(self.spec)))
            ready, _, _ = select.select([proc.stdout.fileno()], [], [], self.timeout_s)
            if not ready:
                self._stop()
                return Decoded(item=item, error=f"timeout: decoding took more than {self.timeout_s:g} s")
            clips, error = _recv(proc.stdout.fileno())
        except (EOFError, OSError):
            code = proc.poll()
            self._stop()
            return Decoded(item=item, error=f"decoder crashed (exit code {code})")
        return Decoded(item=item, clips=clips, error=error)

    def close(self) -> None:
        self._stop()

    def __del__(self) -> None:
        try:
            self._stop()
        except Exception:
            pass
