"""Dataset readers: turn a dataset on disk or on ``s3://`` into a sorted list of ``Item`` (uri, label).

Layouts understood (``SourceConfig.kind``):

- ``ucf101``: ``<root>/<Class>/v_<Class>_gXX_cYY.avi`` plus the official split lists ``classInd.txt``
  (``1 ApplyEyeMakeup``), ``trainlist0N.txt`` (``Class/v_....avi 1``), ``testlist0N.txt`` (``Class/v_....avi``),
  found under ``splits_dir`` (default: ``ucfTrainTestlist`` in or beside ``<root>``, else ``<root>``).
  Labels are 0-based.
- ``kinetics``: an annotation CSV with columns ``label,youtube_id,time_start,time_end,split`` and clip files
  named ``<youtube_id>_<start:06d>_<end:06d>.mp4`` anywhere under ``root`` (flat or in class folders).
  Labels index the sorted class names of the CSV; rows whose file is missing are kept (they become errors).
- ``imagenet``: ``<root>/<synset>/<name>.JPEG``; labels index the sorted synset ids; names from an optional
  ``LOC_synset_mapping.txt`` (``n01440764 tench, Tinca tinca``; the first name is used).
- ``folders``: any ``<root>/<class>/<file>`` tree of videos or images; labels index the sorted folder names.
- ``manifest``: a CSV or JSONL file with ``uri`` and optional ``label`` / ``label_name``; relative uris are
  resolved against the manifest's directory.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from typing import Literal

from sweettok import storage
from sweettok_platform.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES

SourceKind = Literal["ucf101", "kinetics", "imagenet", "folders", "manifest"]


@dataclass(kw_only=True)
class SourceConfig:
    """Where a dataset lives and which part of it to take."""

    kind: SourceKind = "folders"
    root: str = ""  # dataset directory (local or s3://); for "manifest" the manifest file
    split: str = "train"  # ucf101: train/test; kinetics: the CSV's split column ("" = all rows)
    fold: int = 1  # ucf101 official split 1..3
    splits_dir: str | None = None  # ucf101: where classInd.txt / trainlist0N.txt live
    annotations: str | None = None  # kinetics: annotation CSV (default <root>/<split>.csv)
    synset_mapping: str | None = None  # imagenet: LOC_synset_mapping.txt (default: in <root> or its parent)
    limit: int | None = None  # take only the first N items (after sorting), for trial runs


@dataclass(frozen=True)
class Item:
    """One input file: ``uri`` to read, ``key`` (its stable name relative to the dataset root), label."""

    uri: str
    key: str
    label: int = -1
    label_name: str = ""

    def to_dict(self) -> dict:
        return {"uri": self.uri, "key": self.key, "label": self.label, "label_name": self.label_name}


def list_items(config: SourceConfig) -> list[Item]:
    """The dataset's items in a stable order (sorted by key)."""
    if not config.root:
        raise ValueError("source.root is empty: give the dataset directory (or manifest file) to read")
    readers = {"ucf101": _ucf101, "kinetics": _kinetics, "imagenet": _imagenet, "folders": _folders,
               "manifest": _manifest}
    if config.kind not in readers:
        raise ValueError(f"unknown source kind {config.kind!r}; expected one of {sorted(readers)}")
    items = sorted(readers[config.kind](config), key=lambda it: it.key)
    keys = [it.key for it in items]
    if len(set(keys)) != len(keys):
        raise ValueError(f"{config.root}: the {config.kind} listing names some files twice")
    return items[: config.limit] if config.limit is not None else items


def _parent(uri: str) -> str | None:
    """The directory above ``uri``, or None at the top (a bucket, or the filesystem root)."""
    head, sep, _ = uri.rstrip("/").rpartition("/")
    if not sep or head.endswith(":/") or head in ("", "s3:"):
        return None
    return head


def _read_text(uri: str) -> str:
    return storage.read_bytes(uri).decode("utf-8")


def _class_folders(root: str, suffixes: tuple[str, ...]) -> dict[str, list[str]]:
    """``{class folder: [file uris]}`` for files exactly one folder below ``root``."""
    classes: dict[str, list[str]] = {}
    for uri in storage.list_files(root, suffixes):
        parts = storage.relative(uri, root).split("/")
        if len(parts) == 2:
            classes.setdefault(parts[0], []).append(uri)
    if not classes:
        raise FileNotFoundError(f"{root}: no <class>/<file> entries with suffix {'/'.join(suffixes)}")
    return classes


def _folders(config: SourceConfig) -> list[Item]:
    classes = _class_folders(config.root, VIDEO_SUFFIXES + IMAGE_SUFFIXES)
    names = sorted(classes)
    return [Item(uri=u, key=storage.relative(u, config.root), label=i, label_name=name)
            for i, name in enumerate(names) for u in classes[name]]


def _ucf101(config: SourceConfig) -> list[Item]:
    splits = config.splits_dir
    if splits is None:  # <root>/ucfTrainTestlist, <root>/../ucfTrainTestlist (as unpacked), or <root>
        candidates = [storage.join(d, "ucfTrainTestlist") for d in (config.root, _parent(config.root)) if d]
        splits = next((c for c in candidates if storage.exists(storage.join(c, "classInd.txt"))), config.root)
    class_ind = storage.join(splits, "classInd.txt")
    if not storage.exists(class_ind):
        raise FileNotFoundError(f"UCF-101 split lists not found: no {class_ind} (set source.splits_dir)")
    names = {}
    for line in _read_text(class_ind).splitlines():
        if line.strip():
            index, name = line.split()
            names[name] = int(index) - 1
    if config.split not in ("train", "test"):
        raise ValueError(f"UCF-101 split must be train or test, got {config.split!r}")
    listing = storage.join(splits, f"{config.split}list{config.fold:02d}.txt")
    if not storage.exists(listing):
        raise FileNotFoundError(f"UCF-101 split list not found: {listing}")
    items = []
    for line in _read_text(listing).splitlines():
        if not line.strip():
            continue
        key = line.split()[0].replace("\\", "/")
        name = key.split("/")[0]
        if name not in names:
            raise ValueError(f"{listing}: class {name!r} is not in classInd.txt")
        items.append(Item(uri=storage.join(config.root, *key.split("/")), key=key, label=names[name],
                          label_name=name))
    return items


def kinetics_name(youtube_id: str, start: int, end: int) -> str:
    """The clip file name of one Kinetics annotation row (without directory)."""
    return f"{youtube_id}_{int(start):06d}_{int(end):06d}.mp4"


def _kinetics(config: SourceConfig) -> list[Item]:
    annotations = config.annotations or storage.join(config.root, f"{config.split or 'train'}.csv")
    if not storage.exists(annotations):
        raise FileNotFoundError(f"Kinetics annotation CSV not found: {annotations} (set source.annotations)")
    rows = list(csv.DictReader(io.StringIO(_read_text(annotations))))
    needed = {"youtube_id", "time_start", "time_end"}
    if not rows or not needed <= set(rows[0]):
        raise ValueError(f"{annotations}: expected columns label,youtube_id,time_start,time_end,split")
    if config.split and "split" in rows[0]:
        rows = [r for r in rows if r["split"] == config.split]
    labels = {name: i for i, name in enumerate(sorted({r.get("label", "") for r in rows} - {""}))}
    found = {u.rsplit("/", 1)[-1]: u for u in storage.list_files(config.root, (".mp4",))}
    items = []
    for r in rows:
        name = kinetics_name(r["youtube_id"], float(r["time_start"]), float(r["time_end"]))
        uri = found.get(name, storage.join(config.root, name))  # a missing file is reported as an error
        label_name = r.get("label", "")
        items.append(Item(uri=uri, key=name, label=labels.get(label_name, -1), label_name=label_name))
    return items


def _imagenet(config: SourceConfig) -> list[Item]:
    classes = _class_folders(config.root, IMAGE_SUFFIXES)
    mapping_uri = config.synset_mapping
    if mapping_uri is None:
        parent = _parent(config.root)
        candidates = [storage.join(d, "LOC_synset_mapping.txt") for d in (config.root, parent) if d]
        mapping_uri = next((c for c in candidates if storage.exists(c)), None)
    names: dict[str, str] = {}
    if mapping_uri is not None:
        for line in _read_text(mapping_uri).splitlines():
            if line.strip():
                synset, _, words = line.partition(" ")
                names[synset] = words.split(",")[0].strip()
    synsets = sorted(classes)
    return [Item(uri=u, key=storage.relative(u, config.root), label=i, label_name=names.get(s, s))
            for i, s in enumerate(synsets) for u in classes[s]]


def _manifest(config: SourceConfig) -> list[Item]:
    text = _read_text(config.root)
    base = config.root.rstrip("/").rsplit("/", 1)[0] if "/" in config.root else "."
    if config.root.endswith((".jsonl", ".ndjson")):
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    elif config.root.endswith(".csv"):
        rows = list(csv.DictReader(io.StringIO(text)))
    else:
        raise ValueError(f"manifest must be .csv or .jsonl, got {config.root}")
    items = []
    for n, r in enumerate(rows):
        if not r.get("uri"):
            raise ValueError(f"{config.root}: entry {n} has no 'uri'")
        uri = str(r["uri"])
        full = uri if storage.is_remote(uri) or uri.startswith("/") else storage.join(base, *uri.split("/"))
        label = r.get("label")
        items.append(Item(uri=full, key=uri, label=int(label) if label not in (None, "") else -1,
                          label_name=str(r.get("label_name") or "")))
    return items
