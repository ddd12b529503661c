"""What every source kind shares: the ``source`` settings, the ``Item`` a kind lists, and listing helpers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sweettok import storage

KINDS: dict[str, Any] = {}  # kind name -> SourceKind; filled by this package's __init__ (the registry)


@dataclass(kw_only=True)
class SourceConfig:
    """Where a dataset lives and which part of it to take. ``kind`` names a registered source kind
    (``sweettok_platform.core.sources.KINDS``); the other fields are read by the kinds that need them."""

    kind: str = ""  # a registered kind; empty: "paths" when ``paths`` are given, else "folders"
    root: str = ""  # dataset directory (local or s3://); for "manifest" the manifest file
    paths: list[str] = field(default_factory=list)  # "paths": files, directories and glob patterns (local)
    split: str = "train"  # ucf101: train/test; kinetics: the CSV's split column ("" = all rows)
    fold: int = 1  # ucf101 official split 1..3
    splits_dir: str | None = None  # ucf101: where classInd.txt / trainlist0N.txt live
    annotations: str | None = None  # kinetics: annotation CSV (default <root>/<split>.csv)
    synset_mapping: str | None = None  # imagenet: LOC_synset_mapping.txt (default: in <root> or its parent)
    limit: int | None = None  # take only the first N items (after sorting), for trial runs

    def __post_init__(self) -> None:
        if not self.kind:
            self.kind = "paths" if self.paths else "folders"
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {sorted(KINDS)}, got {self.kind!r}")

    def inputs(self) -> list[str]:
        """The locations this source reads (what an output must not overwrite)."""
        return [*self.paths, *([self.root] if self.root else [])]


@dataclass(frozen=True)
class Item:
    """One input: ``uri`` to read, ``key`` (its stable name relative to the dataset), label."""

    uri: str
    key: str
    label: int = -1
    label_name: str = ""

    def to_dict(self) -> dict:
        return {"uri": self.uri, "key": self.key, "label": self.label, "label_name": self.label_name}


def parent(uri: str) -> str | None:
    """The directory above ``uri``, or None at the top (a bucket, or the filesystem root)."""
    head, sep, _ = uri.rstrip("/").rpartition("/")
    if not sep or head.endswith(":/") or head in ("", "s3:"):
        return None
    return head


def read_text(uri: str) -> str:
    return storage.read_bytes(uri).decode("utf-8")


def class_folders(root: str, suffixes: tuple[str, ...]) -> dict[str, list[str]]:
    """``{class folder: [file uris]}`` for files exactly one folder below ``root``."""
    classes: dict[str, list[str]] = {}
    for uri in storage.list_files(root, suffixes):
        parts = storage.relative(uri, root).split("/")
        if len(parts) == 2:
            classes.setdefault(parts[0], []).append(uri)
    if not classes:
        raise FileNotFoundError(f"{root}: no <class>/<file> entries with suffix {'/'.join(suffixes)}")
    return classes
