"""The token corpus on disk: row schema, file layout, shard plan and corpus card.

Layout under the output URI (local or ``s3://``)::

    corpus.json                 the card (counts, schema version, tokenizer hash, words file)
    plan.json                   the shard plan a rerun must match (items fingerprint, shard size, clip spec)
    data/part-00000.parquet     corpus rows of input shard 0 (written last: its presence marks the shard done)
    errors/part-00000.parquet   (uri, source, reason) of the files (or groups of windows) of shard 0 that
                                gave no clips, if any
    staging/part-00000-00001.parquet
                                part 1 of a shard too large for one part (long videos), until the shard's
                                parts are joined into data/part-00000.parquet

Read the rows from ``data/`` (``pyarrow.dataset.dataset(f"{output}/data")``): the root also holds the JSON
files and the errors table, which have other schemas.

A row is one clip; ``id`` is stable (from the source key and the clip start), so reruns and other runs
over the same data agree on it.

Card schema versions: 1 had token counts but no codebook sizes or label names; 2 adds
``spatial_codebook_size``, ``temporal_codebook_size`` and ``label_names`` (what a generator sizes its
vocabulary and class table from). A version-1 card still loads: the sizes are read from its tokenizer
(bundle or preset) when that tokenizer still has the recorded hash, the label names from the rows.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from sweettok import storage
from sweettok_platform.core.sources import Item

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
CARD = "corpus.json"
PLAN = "plan.json"
DATA_DIR = "data"
ERRORS_DIR = "errors"
STAGING_DIR = "staging"
SHARD_META_KEY = b"sweettok.shard"

ROW_SCHEMA = pa.schema([
    ("id", pa.string()),
    ("source", pa.string()),
    ("label", pa.int32()),
    ("label_name", pa.string()),
    ("clip_start", pa.int32()),
    ("window", pa.int32()),
    ("num_frames", pa.int32()),
    ("fps", pa.float32()),
    ("spatial", pa.list_(pa.int32())),
    ("temporal", pa.list_(pa.int32())),
    ("tokenizer", pa.string()),
])
ERROR_SCHEMA = pa.schema([("uri", pa.string()), ("source", pa.string()), ("reason", pa.string())])


def clip_id(source: str, clip_start: int) -> str:
    """Stable row id: 16 hex digits of sha1(source key @ clip start)."""
    return hashlib.sha1(f"{source}@{clip_start}".encode()).hexdigest()[:16]


def shard_name(shard: int) -> str:
    return f"part-{shard:05d}.parquet"


def shard_of(name: str) -> int | None:
    m = re.fullmatch(r"part-(\d{5,})\.parquet", name.rsplit("/", 1)[-1])
    return int(m.group(1)) if m else None


@dataclass(kw_only=True)
class ShardStats:
    """What one shard gave: files read, clips (rows) written, files that failed."""

    shard: int
    files: int = 0
    clips: int = 0
    errors: int = 0


WRITE_ATTEMPTS = 3  # writes of one Parquet file whose read-back is wrong, before the job stops
WRITE_BACKOFF_S = 0.5  # doubling between them


def read_back_problem(fs: pafs.FileSystem, path: str, rows: int) -> str | None:
    """What is wrong with a Parquet file just written (its footer unreadable, or another row count), or None."""
    try:
        found = pq.read_metadata(path, filesystem=fs).num_rows
    except Exception as e:  # noqa: BLE001 - any failure to read the footer back is the fault
        return f"an unreadable footer ({type(e).__name__}: {str(e).strip().splitlines()[0][:200] if str(e) else ''})"
    return None if found == rows else f"{found} rows instead of {rows}"


def write_table(table: pa.Table, uri: str) -> None:
    """Write a Parquet file so that it appears whole or not at all (local: temp file + rename; S3: one PUT),
    and read it back (footer and row count) before it counts: a file that reads back wrong is removed and
    written again (``WRITE_ATTEMPTS``), then the job stops with a ``StorageUnavailableError`` naming it."""
    import time

    fs, path = storage.resolve(uri)
    parent = path.rsplit("/", 1)[0]
    problem = None
    for attempt in range(WRITE_ATTEMPTS):
        if attempt:
            time.sleep(WRITE_BACKOFF_S * 2 ** (attempt - 1))
        fs.create_dir(parent, recursive=True)
        if isinstance(fs, pafs.LocalFileSystem):
            tmp = os.path.join(parent, f".{os.path.basename(path)}.{uuid.uuid4().hex}.tmp")  # hidden: readers skip it
            pq.write_table(table, tmp, filesystem=fs)
            problem = read_back_problem(fs, tmp, table.num_rows)
            if problem is None:
                os.replace(tmp, path)
                return
            os.remove(tmp)
        else:
            pq.write_table(table, path, filesystem=fs)
            problem = read_back_problem(fs, path, table.num_rows)
            if problem is None:
                return
            fs.delete_file(path)  # never left where a rerun would count it as written
    raise storage.StorageUnavailableError(
        f"output storage fault: {uri} read back with {problem} after {WRITE_ATTEMPTS} writes")


def write_shard(output: str, stats: ShardStats, rows: pa.Table, errors: list[dict[str, str]]) -> None:
    """Write one shard's error table (if any) and then its rows, the rows file marking it done."""
    errors_uri = storage.join(output, ERRORS_DIR, shard_name(stats.shard))
    if errors:
        write_table(pa.Table.from_pylist(errors, schema=ERROR_SCHEMA), errors_uri)
    else:
        storage.delete(errors_uri)  # an earlier attempt's errors, now read fine
    meta = {SHARD_META_KEY: json.dumps(asdict(stats)).encode()}
    write_table(rows.cast(ROW_SCHEMA).replace_schema_metadata(meta),
                storage.join(output, DATA_DIR, shard_name(stats.shard)))


def staged_part_uri(output: str, shard: int, part: int) -> str:
    return storage.join(output, STAGING_DIR, f"part-{shard:05d}-{part:05d}.parquet")


def stage_part(output: str, shard: int, part: int, rows: pa.Table) -> None:
    """Write one part of a shard's rows (the shard is not done until ``join_staged``)."""
    write_table(rows.cast(ROW_SCHEMA), staged_part_uri(output, shard, part))


def join_staged(output: str, shard: int, parts: int, files: int, errors: list[dict[str, str]]) -> ShardStats:
    """Join a shard's ``parts`` staged parts into its data file (written last, as for any shard) and delete
    them; returns the shard's stats."""
    uris = [staged_part_uri(output, shard, p) for p in range(parts)]
    tables = []
    for uri in uris:
        fs, path = storage.resolve(uri)
        tables.append(pq.read_table(path, filesystem=fs).cast(ROW_SCHEMA))
    rows = pa.concat_tables(tables)
    stats = ShardStats(shard=shard, files=files, clips=rows.num_rows, errors=len(errors))
    write_shard(output, stats, rows, errors)
    for uri in uris:
        storage.delete(uri)
    return stats


def clear_staged(output: str, shards: set[int]) -> None:
    """Delete the staged parts of ``shards`` (finished ones: a part left there would never be read)."""
    staging = storage.join(output, STAGING_DIR)
    if not shards or not storage.exists(staging):
        return
    for uri in storage.list_files(staging, (".parquet",)):
        m = re.fullmatch(r"part-(\d{5,})-\d{5,}\.parquet", uri.rsplit("/", 1)[-1])
        if m and int(m.group(1)) in shards:
            storage.delete(uri)


def done_shards(output: str) -> dict[int, str]:
    """``{shard: data file uri}`` of the shards already written under ``output``."""
    data = storage.join(output, DATA_DIR)
    if not storage.exists(data):
        return {}
    found = {}
    for uri in storage.list_files(data, (".parquet",)):
        shard = shard_of(uri)
        if shard is not None:
            found[shard] = uri
    return found


def shards_with_storage_errors(output: str, done: dict[int, str]) -> list[int]:
    """Finished shards whose errors table records a storage fault (not a file's own failure)."""
    from sweettok.storage import is_transient

    errors = storage.join(output, ERRORS_DIR)
    if not storage.exists(errors):
        return []
    found = []
    for uri in storage.list_files(errors, (".parquet",)):
        shard = shard_of(uri)
        if shard in done:
            fs, path = storage.resolve(uri)
            table = pq.read_table(path, filesystem=fs, schema=ERROR_SCHEMA)
            if any(storage.is_remote(u) and is_transient(r) for u, r in zip(table["uri"].to_pylist(),
                                                                            table["reason"].to_pylist())):
                found.append(shard)
    return sorted(found)


def read_shard_stats(uri: str) -> ShardStats:
    """The stats a data file carries in its Parquet metadata."""
    fs, path = storage.resolve(uri)
    meta = pq.read_schema(path, filesystem=fs).metadata or {}
    if SHARD_META_KEY not in meta:
        raise ValueError(f"{uri} is not a sweettok corpus shard (no {SHARD_META_KEY.decode()} metadata)")
    return ShardStats(**json.loads(meta[SHARD_META_KEY]))


def plan_shards(items: list[Item], files_per_shard: int) -> list[list[Item]]:
    """Split the (sorted) items into consecutive shards of ``files_per_shard`` files."""
    if files_per_shard < 1:
        raise ValueError(f"files_per_shard must be >= 1, got {files_per_shard}")
    return [items[i : i + files_per_shard] for i in range(0, len(items), files_per_shard)]


def items_fingerprint(items: list[Item]) -> str:
    h = hashlib.sha256()
    for it in items:
        h.update(json.dumps(it.to_dict(), sort_keys=True).encode() + b"\n")
    return h.hexdigest()


def check_plan(output: str, plan: dict[str, Any]) -> bool:
    """Record ``plan`` under ``output``, or check it equals the recorded one. True if one was there."""
    uri = storage.join(output, PLAN)
    if storage.exists(uri):
        old = json.loads(storage.read_bytes(uri))
        if old != plan:
            diff = sorted(k for k in set(old) | set(plan) if old.get(k) != plan.get(k))
            raise ValueError(
                f"{output} holds a corpus made with a different plan (differs in: {', '.join(diff)}); "
                "use another output or set overwrite=true"
            )
        return True
    storage.write_bytes(uri, json.dumps(plan, indent=2, sort_keys=True).encode())
    return False


@dataclass(kw_only=True)
class CorpusCard:
    """The corpus card (``corpus.json``): what a generator trainer needs to know about a corpus."""

    schema_version: int = SCHEMA_VERSION
    output: str
    tokenizer: str  # bundle content hash (or "preset:<name>:seed<n>" for untrained presets)
    bundle: str | None = None
    preset: str | None = None
    seed: int = 0
    quantizer: str = "learned"
    words_file: str | None = None  # the bundle's codebook words (vocab.json), if it has one
    spatial_tokens: int = 0  # tokens per clip of each branch (temporal: 0 for an image corpus)
    temporal_tokens: int = 0
    spatial_codebook_size: int = 0  # ids of each branch lie in [0, size); 0: unknown (a v1 card, tokenizer gone)
    temporal_codebook_size: int = 0
    label_names: dict[int, str] = field(default_factory=dict)  # label index -> class name, labels seen
    source: dict[str, Any] = field(default_factory=dict)
    clips_spec: dict[str, Any] = field(default_factory=dict)
    shards: int = 0
    shards_done: int = 0
    shards_skipped: int = 0  # shards found finished by an earlier run and not redone
    files: int = 0
    files_ok: int = 0
    files_failed: int = 0
    clips: int = 0
    seconds: float = 0.0
    clips_per_s: float = 0.0
    data: str = DATA_DIR
    errors: str = ERRORS_DIR
    columns: list[str] = field(default_factory=lambda: ROW_SCHEMA.names)

    @property
    def complete(self) -> bool:
        return self.shards_done == self.shards

    @property
    def num_classes(self) -> int:
        """Size of a class table covering every label of the corpus (labels index from 0)."""
        return max(self.label_names, default=-1) + 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self) -> None:
        storage.write_bytes(storage.join(self.output, CARD), json.dumps(self.to_dict(), indent=2).encode())

    @classmethod
    def load(cls, output: str) -> "CorpusCard":
        uri = storage.join(output, CARD)
        if not storage.exists(uri):
            raise FileNotFoundError(f"{output} is not a token corpus (no {CARD})")
        data = json.loads(storage.read_bytes(uri))
        version = data.get("schema_version")
        if version not in READABLE_VERSIONS:
            raise ValueError(f"{uri}: schema version {version}, this reader knows {list(READABLE_VERSIONS)}")
        data["output"] = output
        data["label_names"] = {int(k): v for k, v in data.get("label_names", {}).items()}  # JSON keys are strings
        card = cls(**data)
        if version == 1:
            _fill_v1(card)
        return card


def _fill_v1(card: CorpusCard) -> None:
    """What a version-1 card lacks: codebook sizes from its tokenizer (only if it still has the recorded hash),
    label names from the rows' ``label`` / ``label_name`` columns. Kept at version 1 (nothing is rewritten)."""
    from sweettok_platform.core.tokenizer import EncodeConfig, describe_tokenizer

    try:
        info = describe_tokenizer(EncodeConfig(bundle=card.bundle, preset=None if card.bundle else card.preset,
                                               seed=card.seed))
    except (OSError, ValueError):  # bundle moved, deleted or changed: sizes stay unknown (0)
        info = None
    if info is not None and info.hash == card.tokenizer:
        card.spatial_codebook_size = info.config.quantizer.spatial_size
        card.temporal_codebook_size = info.config.quantizer.temporal_size if card.temporal_tokens else 0
    data = storage.join(card.output, DATA_DIR)
    if storage.exists(data):
        fs, path = storage.resolve(data)
        table = pq.read_table(path, filesystem=fs, columns=["label", "label_name"])
        pairs = set(zip(table["label"].to_pylist(), table["label_name"].to_pylist()))
        card.label_names = {label: name for label, name in sorted(pairs) if label >= 0}
