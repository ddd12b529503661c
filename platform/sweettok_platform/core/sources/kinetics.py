"""``kinetics``: an annotation CSV with columns ``label,youtube_id,time_start,time_end,split`` and clip files
named ``<youtube_id>_<start:06d>_<end:06d>.mp4`` anywhere under ``root`` (flat or in class folders). Labels index
the sorted class names of the CSV; rows whose file is missing are kept (they become errors).
"""

from __future__ import annotations

import csv
import io

from sweettok import storage
from sweettok_platform.core.sources.base import Item, SourceConfig, read_text


def kinetics_name(youtube_id: str, start: int, end: int) -> str:
    """The clip file name of one Kinetics annotation row (without directory)."""
    return f"{youtube_id}_{int(start):06d}_{int(end):06d}.mp4"


def list_kinetics(config: SourceConfig) -> list[Item]:
    annotations = config.annotations or storage.join(config.root, f"{config.split or 'train'}.csv")
    if not storage.exists(annotations):
        raise FileNotFoundError(f"Kinetics annotation CSV not found: {annotations} (set source.annotations)")
    rows = list(csv.DictReader(io.StringIO(read_text(annotations))))
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
