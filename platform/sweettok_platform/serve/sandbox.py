"""A pool of decoding processes: untrusted files are parsed outside the replica, under a time limit.

Each worker is ``python -m sweettok_platform.serve.sandbox``, speaking length-prefixed pickles over its
stdin/stdout. A call that runs past the time limit gets its worker killed and replaced (422 to the
caller); a worker that dies (a decoder crash on a malformed file) is replaced the same way. Either way
the replica itself never runs the decoder and stays up.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import struct
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from sweettok_platform.serve.limits import RequestError

_HEADER = struct.Struct("<Q")


def _write(stream, obj: Any) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _read(stream) -> Any:
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError("worker closed its pipe")
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("worker closed its pipe mid-message")
    return pickle.loads(data)


class _Worker:
    """One decoding process."""

    def __init__(self) -> None:
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sweettok_platform.serve.sandbox"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
        )

    def call(self, fn: Callable, args: tuple) -> tuple[bool, Any]:
        _write(self.proc.stdin, (fn, args))
        return _read(self.proc.stdout)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


class DecoderPool:
    """``await pool.run(fn, *args, timeout=s)`` runs ``fn`` in a worker process; at most ``size`` at once."""

    def __init__(self, size: int = 1) -> None:
        self.size = size
        self._slots: asyncio.Semaphore | None = None
        self._warming: set[_Worker] = set()
        self._idle: list[_Worker] = [self._spawn() for _ in range(size)]

    def _spawn(self) -> _Worker:
        """A new worker, already importing the decoders (its first answer is the warm-up's)."""
        worker = _Worker()
        _write(worker.proc.stdin, (_warm_up, ()))
        self._warming.add(worker)
        return worker

    def _replace(self, worker: _Worker) -> _Worker:
        self._warming.discard(worker)
        worker.kill()
        return self._spawn()

    async def run(self, fn: Callable, *args: Any, timeout: float) -> Any:
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.size)
        async with self._slots:
            worker = self._idle.pop()
            try:
                if worker in self._warming:
                    self._warming.discard(worker)
                    await asyncio.wait_for(asyncio.to_thread(_read, worker.proc.stdout), timeout=120)
                ok, value = await asyncio.wait_for(asyncio.to_thread(worker.call, fn, args), timeout)
            except asyncio.TimeoutError:
                worker = self._replace(worker)
                raise RequestError(422, f"decoding took longer than {timeout:g} s; file refused") from None
            except (EOFError, BrokenPipeError, pickle.UnpicklingError):
                worker = self._replace(worker)
                raise RequestError(422, "the decoder crashed on this file (corrupt or unsupported)") from None
            except BaseException:  # cancelled mid-call: the worker's answer would be stale
                worker = self._replace(worker)
                raise
            finally:
                self._idle.append(worker)
        if not ok:
            raise value
        return value

    def close(self) -> None:
        for worker in self._idle:
            worker.kill()
        self._idle = []


def _warm_up() -> None:
    import decord  # noqa: F401
    import PIL.Image  # noqa: F401
    import torch  # noqa: F401


def _serve_forever() -> None:
    """Worker main loop: read (fn, args), answer (True, result) or (False, exception)."""
    protocol_out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # library chatter on stdout must not corrupt the protocol
    stdin = sys.stdin.buffer
    while True:
        try:
            fn, args = _read(stdin)
        except EOFError:
            return
        try:
            answer = (True, fn(*args))
        except RequestError as e:
            answer = (False, e)
        except Exception as e:  # any decoder failure on an untrusted file is the file's fault
            answer = (False, RequestError(422, f"cannot decode file: {type(e).__name__}: {str(e)[:200]}"))
        try:
            _write(protocol_out, answer)
        except (pickle.PicklingError, TypeError, AttributeError) as e:
            _write(protocol_out, (False, RequestError(422, f"cannot decode file: {e}")))


if __name__ == "__main__":
    _serve_forever()
