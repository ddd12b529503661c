"""A pool of decoding processes: untrusted files are parsed outside the replica, under time and memory limits.

Each worker is ``python -m sweettok_platform.serve.sandbox``. The replica sends it a file and the clip
settings (a JSON header and the file's bytes); the worker answers with raw uint8 clips whose shape the
replica checks before reading them, or with a refusal (status, reason). No pickles either way
(``sweettok_platform.core.sandboxing``), so a decoder exploit stays in the worker. The worker's data segment is
capped (``decoder_memory_bytes``): a file that would make the decoder allocate more is refused. A call
that runs past the time limit gets its worker killed and replaced (422 to the caller); a worker that dies
(a decoder crash) or sends a malformed answer is replaced the same way. The replica never runs a decoder.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import subprocess
import sys

import numpy as np

from sweettok_platform.core import sandboxing as wire
from sweettok_platform.core.media import ClipSpec
from sweettok_platform.serve.inputs import Clips, decode_upload
from sweettok_platform.serve.limits import LimitsConfig, RequestError

STARTUP_TIMEOUT_S = 120.0
WORKER_ARGV = [sys.executable, "-m", "sweettok_platform.serve.sandbox"]


class _Worker:
    """One decoding process and the two ends of its pipes."""

    def __init__(self, argv: list[str], memory_bytes: int | None) -> None:
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        if memory_bytes is not None:
            env["SWEETTOK_DECODER_MEMORY_BYTES"] = str(memory_bytes)
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0, env=env)
        self.ready = False

    def wait_ready(self) -> None:
        header = wire.recv_header(self.proc.stdout.fileno())
        if header.get("ready") is not True or header["nbytes"]:
            raise wire.WireError("the decoder did not start properly")
        self.ready = True

    def decode(self, data: bytes, suffix: str, spec: ClipSpec, limits: LimitsConfig) -> Clips:
        """Send one file; read back its clips, checked against ``spec`` and ``limits`` before use."""
        request = {"op": "decode", "suffix": suffix, "spec": dataclasses.asdict(spec),
                   "limits": dataclasses.asdict(limits)}
        wire.send(self.proc.stdin.fileno(), request, data)
        out = self.proc.stdout.fileno()
        header = wire.recv_header(out)
        if header.get("ok") is not True:
            status = header.get("status")
            if header["nbytes"] or not (isinstance(status, int) and 400 <= status < 500):
                raise wire.WireError("malformed refusal")
            raise RequestError(status, wire.text(header.get("reason")))
        shape = wire.check_frames_header(header, height=spec.height, width=spec.width, frames={1, spec.frames},
                                         max_clips=limits.max_clips)
        payload = wire.recv_payload(out, header, header["nbytes"])
        return Clips(frames=wire.frames_from(payload, shape), starts=wire.ints(header.get("starts"), shape[0], "starts"),
                     windows=wire.ints(header.get("windows"), shape[0], "windows"), fps=wire.number(header.get("fps"), "fps"))

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()
        self.proc.stdin.close()
        self.proc.stdout.close()


class DecoderPool:
    """``await pool.decode(data, suffix, spec, limits, timeout=s)`` decodes in a worker; ``size`` at once.

    ``memory_bytes`` caps each worker's data segment; ``argv`` is the worker command (tests start hostile ones).
    """

    def __init__(self, size: int = 1, *, memory_bytes: int | None = None, argv: list[str] | None = None) -> None:
        self.size = size
        self.memory_bytes = memory_bytes
        self.argv = list(argv or WORKER_ARGV)
        self._slots: asyncio.Semaphore | None = None
        self._idle: list[_Worker] = [self._spawn() for _ in range(size)]

    def _spawn(self) -> _Worker:
        """A new worker; it imports the decoders now and says ready (read at its first use)."""
        return _Worker(self.argv, self.memory_bytes)

    async def decode(self, data: bytes, suffix: str, spec: ClipSpec, limits: LimitsConfig, *, timeout: float) -> Clips:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.size)
        async with self._slots:
            worker = self._idle.pop()
            try:
                # the first call also waits for the worker's start (imports), outside the decoding time limit
                if not worker.ready:
                    await asyncio.wait_for(asyncio.to_thread(worker.wait_ready), STARTUP_TIMEOUT_S)
                return await asyncio.wait_for(asyncio.to_thread(worker.decode, data, suffix, spec, limits), timeout)
            except RequestError:  # the file was refused; the worker is fine
                raise
            except asyncio.TimeoutError:
                worker = self._replace(worker)
                raise RequestError(422, f"decoding took longer than {timeout:g} s; file refused") from None
            except (EOFError, OSError):
                worker = self._replace(worker)
                raise RequestError(422, "the decoder crashed on this file (corrupt or unsupported)") from None
            except wire.WireError as e:
                worker = self._replace(worker)
                raise RequestError(422, f"the decoder sent a malformed answer on this file: {e}") from None
            except BaseException:  # cancelled mid-call: the worker's answer would be stale
                worker = self._replace(worker)
                raise
            finally:
                self._idle.append(worker)

    def _replace(self, worker: _Worker) -> _Worker:
        worker.kill()
        return self._spawn()

    def close(self) -> None:
        for worker in self._idle:
            worker.kill()
        self._idle = []


def _serve_forever() -> None:
    """Worker main loop: read a file and its settings, answer its clips or a refusal."""
    out = os.dup(1)
    os.dup2(2, 1)  # library chatter on stdout must not corrupt the protocol
    memory = os.environ.get("SWEETTOK_DECODER_MEMORY_BYTES")
    wire.limit_memory(int(memory) if memory else None)
    import decord  # noqa: F401  (import before saying ready: the time limit is for decoding only)
    import PIL.Image  # noqa: F401
    import torch

    torch.set_num_threads(1)
    wire.send(out, {"ready": True})
    while True:
        try:
            request, data = wire.recv(0, max_bytes=1 << 40)  # the parent is trusted
        except EOFError:
            return
        try:
            clips = decode_upload(bytes(data), request["suffix"], ClipSpec(**request["spec"]),
                                LimitsConfig(**request["limits"]))
            frames = np.ascontiguousarray(clips.frames, dtype=np.uint8)
            del data, clips.frames
            wire.send(out, {"ok": True, "shape": list(frames.shape), "dtype": "uint8", "starts": clips.starts,
                            "windows": clips.windows, "fps": clips.fps}, memoryview(frames.reshape(-1)))
            continue
        except RequestError as e:
            answer = {"status": e.status, "reason": e.reason}
        except MemoryError:
            answer = {"status": 413, "reason": f"decoding this file needs more than the decoder's memory limit "
                                               f"of {memory} bytes"}
        except Exception as e:  # any decoder failure on an untrusted file is the file's fault
            answer = {"status": 422, "reason": f"cannot decode file: {type(e).__name__}: {str(e)[:200]}"}
        wire.send(out, {"ok": False, **answer})


if __name__ == "__main__":
    _serve_forever()
