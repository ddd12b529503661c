"""Frame sizes read from a video's container header, before any decoder runs.

A hostile file can make a decoder allocate gigabytes (a 198 KB mp4 of 8192x8192 frames), so the frame size
is checked against the limits first. This module parses only headers, in pure Python: MP4/MOV (``tkhd``
and the visual sample entry of ``stsd``), Matroska/WebM (``PixelWidth``/``PixelHeight``) and AVI
(``avih`` and the video stream's ``BITMAPINFOHEADER``). Where a file states several sizes (display and
coded, several tracks), the largest is reported. A header can lie about the stream inside it, so the
decoders also run under a memory cap (``limit_memory``) and decoded frames are checked again.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from typing import BinaryIO

MAX_BOXES = 10_000  # boxes/elements visited per file: a hostile header cannot make the parse loop for long


def frame_size(source: bytes | str) -> tuple[int, int] | None:
    """(width, height) of the largest video frame the header declares, or None if no known header says."""
    with (io.BytesIO(source) if isinstance(source, (bytes, bytearray, memoryview)) else open(source, "rb")) as f:
        head = f.read(12)
        f.seek(0)
        try:
            if head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip"):
                sizes = _mp4(f)
            elif head[:4] == b"\x1a\x45\xdf\xa3":
                sizes = _mkv(f)
            elif head[:4] == b"RIFF" and head[8:12] == b"AVI ":
                sizes = _avi(f)
            else:
                return None
        except (struct.error, ValueError, EOFError):
            return None
    sizes = [(w, h) for w, h in sizes if w > 0 and h > 0]
    return max(sizes, key=lambda s: s[0] * s[1]) if sizes else None


def _size_of(f: BinaryIO) -> int:
    here = f.tell()
    end = f.seek(0, io.SEEK_END)
    f.seek(here)
    return end


# ---- MP4 / MOV (ISO base media file format) ------------------------------------------------------------
_MP4_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}


def _mp4(f: BinaryIO) -> list[tuple[int, int]]:
    sizes: list[tuple[int, int]] = []
    stack, budget = [(0, _size_of(f))], [MAX_BOXES]
    while stack:
        start, end = stack.pop()
        for kind, body, box_end in _boxes(f, start, end, budget):
            if kind in _MP4_CONTAINERS:
                stack.append((body, box_end))
            elif kind == b"tkhd":
                f.seek(body)
                data = f.read(min(box_end - body, 96))
                if len(data) >= 8:  # width and height are the last two 16.16 fixed-point fields
                    w, h = struct.unpack(">II", data[-8:])
                    sizes.append((w >> 16, h >> 16))
            elif kind == b"stsd":
                sizes += _mp4_sample_entries(f, body, box_end)
    return sizes


def _mp4_sample_entries(f: BinaryIO, start: int, end: int) -> list[tuple[int, int]]:
    """Coded width/height of each visual sample entry (avc1, hvc1, mp4v, ...) in an ``stsd`` box."""
    f.seek(start + 4)  # version and flags
    (count,) = struct.unpack(">I", f.read(4))
    pos, sizes = start + 8, []
    for _ in range(min(count, 64)):
        if pos + 36 > end:
            break
        f.seek(pos)
        size, _kind = struct.unpack(">I4s", f.read(8))
        entry = f.read(28)  # reserved(6) data_reference_index(2) pre_defined/reserved(16) width(2) height(2)
        w, h = struct.unpack(">HH", entry[24:28])
        sizes.append((w, h))
        if size < 8:
            break
        pos += size
    return sizes


def video_frames(source: str) -> int | None:
    """Frames of the first video track, from an MP4/MOV sample table (``hdlr`` 'vide' + ``stsz``/``stz2``), or
    None for other containers or a header that does not say. Reads only the boxes on the way (``moov`` is
    usually a few KB; the media data is skipped), where ``len(decord.VideoReader(...))`` reads the whole file."""
    timing = video_timing(source)
    return timing[0] if timing else None


def video_timing(source: str) -> tuple[int, float] | None:
    """(frames, fps) of the first video track from an MP4/MOV header (sample table and ``mdhd`` duration), or
    None where the container is another or the header does not say. fps is 0.0 when the duration is 0."""
    with open(source, "rb") as f:
        if f.read(8)[4:8] not in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip"):
            return None
        try:
            budget = [MAX_BOXES]
            for kind, body, end in _boxes(f, 0, _size_of(f), budget):
                if kind == b"moov":
                    for trak, tbody, tend in _boxes(f, body, end, budget):
                        if trak == b"trak":
                            track = _trak_samples(f, tbody, tend, budget)
                            if track.handler == b"vide" and track.samples:
                                seconds = track.duration / track.timescale if track.timescale else 0.0
                                return track.samples, (track.samples / seconds if seconds > 0 else 0.0)
        except (struct.error, ValueError, EOFError):
            return None
    return None


def _boxes(f: BinaryIO, start: int, end: int, budget: list[int] | None = None):
    """(kind, body start, box end) of each box in [start, end); at most MAX_BOXES, or what is left of
    ``budget`` (one count shared by every level of a walk, so nesting cannot multiply it)."""
    budget = budget if budget is not None else [MAX_BOXES]
    pos = start
    while budget[0] > 0:
        budget[0] -= 1
        if pos + 8 > end:
            return
        f.seek(pos)
        size, kind = struct.unpack(">I4s", f.read(8))
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", f.read(8))[0], 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            return
        yield kind, pos + header, pos + size
        pos += size


@dataclass
class _Track:
    handler: bytes | None = None
    samples: int | None = None
    timescale: int = 0
    duration: int = 0


def _trak_samples(f: BinaryIO, start: int, end: int, budget: list[int], track: _Track | None = None,
                  parent: bytes = b"trak") -> _Track:
    """A track's handler type, sample count and media duration (``mdia/hdlr``, ``mdia/mdhd``,
    ``mdia/minf/stbl/stsz`` or ``stz2``)."""
    track = track or _Track()
    for kind, body, box_end in _boxes(f, start, end, budget):
        if kind in (b"mdia", b"minf", b"stbl"):
            _trak_samples(f, body, box_end, budget, track, kind)
        elif kind == b"hdlr" and parent == b"mdia":
            # the media handler (mdia/hdlr), not QuickTime's data handler in minf ('alis', 'url ')
            f.seek(body + 8)  # version/flags, pre_defined
            track.handler = f.read(4)
        elif kind == b"mdhd":
            f.seek(body)
            version = f.read(1)[0]
            if version == 1:  # 64-bit times
                f.seek(body + 20)
                track.timescale, track.duration = struct.unpack(">IQ", f.read(12))
            else:
                f.seek(body + 12)
                track.timescale, track.duration = struct.unpack(">II", f.read(8))
        elif kind in (b"stsz", b"stz2"):
            f.seek(body + 8)  # version/flags, sample_size (stz2: reserved + field_size)
            (track.samples,) = struct.unpack(">I", f.read(4))
    return track


# ---- Matroska / WebM (EBML) -----------------------------------------------------------------------------
_SEGMENT, _TRACKS, _TRACK_ENTRY, _VIDEO = 0x18538067, 0x1654AE6B, 0xAE, 0xE0
_PIXEL_WIDTH, _PIXEL_HEIGHT, _CLUSTER = 0xB0, 0xBA, 0x1F43B675


def _vint(f: BinaryIO, keep_marker: bool) -> tuple[int, int, bool]:
    """An EBML variable-length integer -> (value, bytes read, all value bits set (unknown size))."""
    first = f.read(1)
    if not first:
        raise EOFError
    b = first[0]
    length = 1
    while length <= 8 and not b & (0x80 >> (length - 1)):
        length += 1
    if length > 8:
        raise ValueError("bad EBML length")
    value = b if keep_marker else b & (0xFF >> length)
    rest = f.read(length - 1)
    if len(rest) < length - 1:
        raise EOFError
    for c in rest:
        value = (value << 8) | c
    unknown = not keep_marker and value == (1 << (7 * length)) - 1
    return value, length, unknown


def _mkv(f: BinaryIO) -> list[tuple[int, int]]:
    end = _size_of(f)
    sizes: list[tuple[int, int]] = []
    stack = [(0, end)]
    visited = 0
    while stack and visited < MAX_BOXES:
        pos, stop = stack.pop()
        width = height = 0
        while pos < stop and visited < MAX_BOXES:
            visited += 1
            f.seek(pos)
            ident, n_id, _ = _vint(f, keep_marker=True)
            size, n_size, unknown = _vint(f, keep_marker=False)
            body = pos + n_id + n_size
            if unknown:
                if ident in (_SEGMENT, _TRACKS):  # a live stream: the element runs to the end of its parent
                    size = stop - body
                else:
                    break  # an unknown-sized cluster: the tracks come before it
            if ident == _CLUSTER:
                break
            if ident in (_SEGMENT, _TRACKS, _TRACK_ENTRY, _VIDEO):
                stack.append((body, min(stop, body + size)))
            elif ident in (_PIXEL_WIDTH, _PIXEL_HEIGHT) and size <= 8:
                value = int.from_bytes(f.read(size), "big")
                width, height = (value, height) if ident == _PIXEL_WIDTH else (width, value)
            pos = body + size
        if width or height:
            sizes.append((width, height))
    return sizes


# ---- AVI (RIFF) ------------------------------------------------------------------------------------------
def _avi(f: BinaryIO) -> list[tuple[int, int]]:
    end = _size_of(f)
    sizes: list[tuple[int, int]] = []
    stack = [(12, end)]
    visited = 0
    while stack and visited < MAX_BOXES:
        pos, stop = stack.pop()
        video = False
        while pos + 8 <= stop and visited < MAX_BOXES:
            visited += 1
            f.seek(pos)
            kind, size = struct.unpack("<4sI", f.read(8))
            body = pos + 8
            if kind == b"LIST":
                list_type = f.read(4)
                if list_type == b"movi":
                    break  # frames follow; every header came before
                stack.append((body + 4, min(stop, body + size)))
            elif kind == b"avih":
                data = f.read(40)
                sizes.append(struct.unpack("<II", data[32:40]))
            elif kind == b"strh":
                video = f.read(4) == b"vids"
            elif kind == b"strf" and video:
                w, h = struct.unpack("<ii", f.read(12)[4:12])  # BITMAPINFOHEADER biWidth, biHeight (may be < 0)
                sizes.append((abs(w), abs(h)))
            pos = body + size + (size & 1)
    return sizes
