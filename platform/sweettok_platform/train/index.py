"""The training dataset's index: one row per media file (path, frames, fps, height, width).

Built once per set of files and stored beside the checkpoints as
``<storage_path>/<name>-index/<fingerprint>.parquet``; the fingerprint covers every file's path, size and
modification time, so a rerun or a resumed run over the same files reads the index instead of opening every
file again, and a changed dataset gets a new index. The driver builds it (with Ray Data above
``PARALLEL_FROM`` files, in a thread pool below), counts each stage's clips from it, and every worker reads
it to cut its own clips: no worker opens a file only to count its frames.

Frame counts and sizes come from the container header where it says (MP4/MOV sample table and ``mdhd``;
see ``sweettok_platform.core.probe``); other containers are opened with decord. Files that cannot be read are
left out and counted.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sweettok import storage
from sweettok_platform.core.log import get_logger
from sweettok_platform.core.media import is_image
from sweettok_platform.core.sources import backing_file, read_item

SCHEMA = pa.schema([
    ("path", pa.string()),
    ("frames", pa.int64()),  # 0: unreadable (left out of the clips)
    ("fps", pa.float32()),  # 0.0 where the file does not say (images)
    ("height", pa.int32()),
    ("width", pa.int32()),
])
PARALLEL_FROM = 2_000  # files from which the driver indexes with Ray Data

log = get_logger("train")


@dataclass(frozen=True)
class DatasetIndex:
    """The indexed files, in the order of the dataset's source listing, and where the index is stored."""

    table: pa.Table
    uri: str | None = None

    @property
    def paths(self) -> list[str]:
        return self.table.column("path").to_pylist()

    @property
    def frames(self) -> list[int]:
        return self.table.column("frames").to_pylist()

    def videos(self) -> "DatasetIndex":
        """The video files only (what the video stages cut clips from)."""
        keep = pa.array([not is_image(p) for p in self.paths], type=pa.bool_())
        return DatasetIndex(self.table.filter(keep), self.uri)

    @property
    def unreadable(self) -> int:
        return sum(1 for n in self.frames if n <= 0)


def capped(files: list[str], max_clips: int | None) -> list[str]:
    """The files worth indexing under a clip cap: at most ``max_clips`` of them, spread evenly over the sorted
    list, so ``dataset.max_clips`` limits the work before any file is opened (each file gives a clip or more)."""
    if max_clips is None or len(files) <= max_clips:
        return files
    picks = np.linspace(0, len(files) - 1, num=max_clips).round().astype(int)
    return [files[i] for i in sorted(set(int(i) for i in picks))]


def fingerprint(files: list[str]) -> str:
    """16 hex digits over every file's path, size and modification time."""
    digest = hashlib.sha1()
    for path in files:
        st = os.stat(backing_file(path))
        digest.update(json.dumps([path, st.st_size, st.st_mtime_ns]).encode())
    return digest.hexdigest()[:16]


def probe_file(path: str) -> dict:
    """One index row: frames, fps and size from the header where it says, else from decord; frames 0 if the
    file cannot be read."""
    row = {"path": path, "frames": 0, "fps": 0.0, "height": 0, "width": 0}
    try:
        source = read_item(path)  # a path, or a tar member's bytes
        if is_image(path):
            from PIL import Image

            with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as image:  # reads the header only
                row.update(frames=1, width=image.width, height=image.height)
            return row
        from sweettok_platform.core.probe import frame_size, video_timing

        timing = video_timing(source) if isinstance(source, str) else None
        size = frame_size(source)
        if timing is not None and size is not None:
            row.update(frames=timing[0], fps=timing[1], width=size[0], height=size[1])
            return row
        import decord

        # counts by reading the whole file
        reader = decord.VideoReader(io.BytesIO(source) if isinstance(source, bytes) else source, num_threads=1)
        height, width = reader[0].shape[:2] if len(reader) else (0, 0)
        row.update(frames=len(reader), fps=float(reader.get_avg_fps()), height=height, width=width)
    except Exception:  # noqa: BLE001 - any failure to read a file leaves it out of the index (frames 0)
        pass
    return row


def _probe_batch(batch: dict) -> dict:
    rows = [probe_file(str(p)) for p in batch["path"]]
    return {name: [r[name] for r in rows] for name in SCHEMA.names}


def build(files: list[str], parallel: bool | None = None) -> pa.Table:
    """Probe every file; ``parallel`` (default: from ``PARALLEL_FROM`` files) runs the probes as Ray Data
    tasks on the cluster (Ray is started if needed), else in a local thread pool. Rows keep ``files``' order."""
    started = time.perf_counter()
    if parallel if parallel is not None else len(files) >= PARALLEL_FROM:
        import ray

        if not ray.is_initialized():
            ray.init()
        ds = ray.data.from_items([{"path": p, "order": i} for i, p in enumerate(files)])
        out = ds.map_batches(lambda b: {**_probe_batch(b), "order": b["order"]}, batch_size=256)
        table = pa.concat_tables(ray.get(out.to_arrow_refs()))
        table = table.sort_by("order").select(SCHEMA.names).cast(SCHEMA)
    else:
        with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
            rows = list(pool.map(probe_file, files))
        table = pa.Table.from_pylist(rows, schema=SCHEMA)
    seconds = time.perf_counter() - started
    log.info(f"indexed {len(files)} files in {seconds:.1f} s ({len(files) / max(seconds, 1e-9):.0f} files/s)")
    return table


def lookup(files: list[str], directory: str) -> DatasetIndex | None:
    """The stored index of exactly ``files`` under ``directory`` (local or ``s3://``), or None."""
    uri = storage.join(directory, f"{fingerprint(files)}.parquet")
    if not storage.exists(uri):
        return None
    try:
        table = pq.read_table(io.BytesIO(storage.read_bytes(uri)))
    except (OSError, pa.ArrowInvalid) as e:
        log.warning(f"dataset index {uri} cannot be read ({e}); building it again")
        return None
    if not table.schema.equals(SCHEMA) or table.column("path").to_pylist() != files:
        log.warning(f"dataset index {uri} does not match the files; building it again")
        return None
    log.info(f"dataset index {uri}: {len(files)} files (reused)")
    return DatasetIndex(table, uri)


def store(index: DatasetIndex, directory: str) -> DatasetIndex:
    """Write ``index`` under ``directory`` by its files' fingerprint (atomically); returns it with its URI."""
    uri = storage.join(directory, f"{fingerprint(index.paths)}.parquet")
    sink = io.BytesIO()
    pq.write_table(index.table, sink)
    if storage.is_remote(uri):
        storage.write_bytes(uri, sink.getvalue())  # one PUT: whole or absent
    else:
        os.makedirs(os.path.dirname(uri), exist_ok=True)
        tmp = f"{uri}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(sink.getvalue())
        os.replace(tmp, uri)
    return DatasetIndex(index.table, uri)


def load_or_build(files: list[str], directory: str | None, parallel: bool | None = None) -> DatasetIndex:
    """The stored index of ``files`` under ``directory``, else one built now (not stored: see ``store``)."""
    found = lookup(files, directory) if directory is not None else None
    if found is not None:
        return found
    index = DatasetIndex(build(files, parallel))
    if index.unreadable:
        log.warning(f"dataset index: {index.unreadable} of {len(files)} files could not be read and are left out")
    return index


def read(uri: str) -> DatasetIndex:
    """A stored index (what workers do with the URI the driver passes them)."""
    return DatasetIndex(pq.read_table(io.BytesIO(storage.read_bytes(uri))), uri)
