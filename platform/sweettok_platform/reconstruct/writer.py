"""Writing a reconstruction as its frames arrive, so memory stays flat in video length: ``.mp4`` streamed into
an ffmpeg process (h264, as ``media.write_media`` writes it), ``.npy`` into a memory-mapped file of the known
length, ``.png`` (images) the one frame."""

from __future__ import annotations

import os

import numpy as np


class OutputWriter:
    """``append`` uint8 frames (k, h, w, 3) in order, then ``close``; ``abort`` removes what was written."""

    def __init__(self, path: str, total: int, fps: float) -> None:
        self.path, self.total, self.fps = path, total, fps
        self.kind = os.path.splitext(path)[1].lower()
        if self.kind not in (".mp4", ".npy", ".png"):
            raise ValueError(f"unknown output type {self.kind!r}: .mp4, .npy or .png")
        self._sink = None  # the ffmpeg generator (mp4) or the memory map (npy), opened by the first frames
        self._count = 0

    def append(self, frames: np.ndarray) -> None:
        if self.kind == ".png":
            from PIL import Image

            Image.fromarray(frames[0]).save(self.path)
        elif self.kind == ".npy":
            if self._sink is None:
                self._sink = np.lib.format.open_memmap(self.path, mode="w+", dtype=np.uint8,
                                                       shape=(self.total, *frames.shape[1:]))
            self._sink[self._count : self._count + len(frames)] = frames
        else:
            if self._sink is None:
                import imageio_ffmpeg

                height, width = frames.shape[1:3]
                self._sink = imageio_ffmpeg.write_frames(self.path, (width, height), fps=self.fps, codec="libx264",
                                                         macro_block_size=1, ffmpeg_log_level="error")
                self._sink.send(None)  # starts ffmpeg
            for frame in frames:
                self._sink.send(np.ascontiguousarray(frame))
        self._count += len(frames)

    def close(self) -> None:
        """Finish the file; a frame count other than announced is an error."""
        if self.kind != ".png" and self._count != self.total:
            raise RuntimeError(f"{self.path}: {self._count} frames written, {self.total} expected")
        self._finish()

    def abort(self) -> None:
        try:
            self._finish()
        finally:
            if os.path.exists(self.path):
                os.remove(self.path)

    def _finish(self) -> None:
        sink, self._sink = self._sink, None
        if sink is None:
            return
        if self.kind == ".npy":
            sink.flush()
            del sink
        else:
            sink.close()  # waits for ffmpeg to write the file
