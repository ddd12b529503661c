"""What the two decoding sandboxes (``serve.sandbox``, ``data.decode``) share: the wire format and the memory cap.

A message on a pipe is an 8-byte little-endian length, a JSON header of that length (at most
``MAX_HEADER_BYTES``), then ``header["nbytes"]`` raw bytes. Decoded frames travel as raw uint8 bytes with
their shape in the header; the parent checks the shape against what it asked for (``check_frames_header``)
before it reads the bytes or makes an array of them. Nothing is unpickled on either side, so a decoder
exploit inside the sandbox ends there: all it can send back is bytes the parent reads as pixels.
"""

from __future__ import annotations

import json
import math
import os
import select
import struct
import time
from typing import Any

import numpy as np

MAX_HEADER_BYTES = 1 << 20
_LENGTH = struct.Struct("<Q")


class WireError(Exception):
    """A malformed message from the other end of a sandbox pipe (treat the sandbox as broken)."""


def send(fd: int, header: dict[str, Any], payload: bytes | bytearray | memoryview = b"") -> None:
    """Write one message: ``header`` (JSON; ``nbytes`` is set here) and ``payload``."""
    raw = json.dumps({**header, "nbytes": len(payload)}, separators=(",", ":")).encode()
    _write_all(fd, _LENGTH.pack(len(raw)) + raw)
    _write_all(fd, payload)


def _write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data).cast("B")
    while view:
        view = view[os.write(fd, view):]


def _read_into(fd: int, buf: bytearray | memoryview, deadline: float | None = None) -> None:
    view = memoryview(buf)
    while view:
        if deadline is not None and not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
            raise TimeoutError("sandbox answer not complete in time")
        n = os.readv(fd, [view])
        if n == 0:
            raise EOFError("sandbox pipe closed")
        view = view[n:]


def recv_header(fd: int, deadline: float | None = None) -> dict[str, Any]:
    """The next message's JSON header; its payload (``header['nbytes']`` bytes) is still to be read.

    ``deadline`` (``time.monotonic()``): TimeoutError if the header has not arrived by then."""
    length = bytearray(_LENGTH.size)
    _read_into(fd, length, deadline)
    (size,) = _LENGTH.unpack(length)
    if size > MAX_HEADER_BYTES:
        raise WireError(f"message header of {size} bytes (the limit is {MAX_HEADER_BYTES})")
    raw = bytearray(size)
    _read_into(fd, raw, deadline)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise WireError("message header is not JSON") from None
    if not isinstance(header, dict) or not _is_int(header.get("nbytes")) or header["nbytes"] < 0:
        raise WireError("message header without a byte count")
    return header


def recv_payload(fd: int, header: dict[str, Any], max_bytes: int, deadline: float | None = None) -> bytearray:
    """The payload announced by ``header``, refused (WireError) past ``max_bytes`` before any is read."""
    if header["nbytes"] > max_bytes:
        raise WireError(f"payload of {header['nbytes']} bytes (at most {max_bytes} expected)")
    buf = bytearray(header["nbytes"])
    _read_into(fd, buf, deadline)
    return buf


def recv(fd: int, max_bytes: int) -> tuple[dict[str, Any], bytearray]:
    header = recv_header(fd)
    return header, recv_payload(fd, header, max_bytes)


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def check_frames_header(header: dict[str, Any], *, height: int, width: int, frames: set[int],
                        max_clips: int) -> tuple[int, ...]:
    """The shape of the uint8 clips (n, t, height, width, 3) a header announces, checked; WireError else.

    ``frames``: the clip lengths allowed (a clip's frames, 1 for an image); ``max_clips``: most clips.
    """
    shape = header.get("shape")
    if header.get("dtype") != "uint8" or not isinstance(shape, list) or len(shape) != 5:
        raise WireError(f"expected uint8 clips (n, t, h, w, c), got {header.get('dtype')!r} {shape!r}"[:300])
    if not all(_is_int(s) for s in shape):
        raise WireError("clip shape of non-integers")
    n, t, h, w, c = shape
    if not (1 <= n <= max_clips and t in frames and (h, w, c) == (height, width, 3)):
        raise WireError(f"clips of shape {tuple(shape)}; expected (1..{max_clips}, {sorted(frames)}, {height}, {width}, 3)")
    if header["nbytes"] != math.prod(shape):
        raise WireError(f"{header['nbytes']} bytes of frames for shape {tuple(shape)}")
    return tuple(shape)


def frames_from(payload: bytearray, shape: tuple[int, ...]) -> np.ndarray:
    """uint8 frames of a checked ``shape`` over the received bytes (no copy)."""
    return np.frombuffer(payload, dtype=np.uint8).reshape(shape)


def ints(value: Any, n: int, name: str) -> list[int]:
    """``value`` as a list of ``n`` integers (clip starts, windows); WireError else."""
    if not isinstance(value, list) or len(value) != n or not all(_is_int(v) for v in value):
        raise WireError(f"{name}: expected {n} integers")
    return value


def number(value: Any, name: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise WireError(f"{name}: expected a finite number")
    return float(value)


def text(value: Any, limit: int = 300) -> str:
    """A reason sent by the sandbox, as one bounded line."""
    return (value if isinstance(value, str) else repr(value)).replace("\n", " ")[:limit]


def limit_memory(nbytes: int | None) -> None:
    """Cap this process's data segment (heap and private mappings: what decoders allocate) at ``nbytes``.

    An allocation past the cap fails (MemoryError / the decoder's out-of-memory error) instead of growing
    the machine's memory use. Linux and macOS; no-op for None.
    """
    if nbytes is None:
        return
    import resource

    resource.setrlimit(resource.RLIMIT_DATA, (nbytes, nbytes))
