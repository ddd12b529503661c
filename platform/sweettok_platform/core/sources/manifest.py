"""``manifest``: a CSV or JSONL file with ``uri`` and optional ``label`` / ``label_name``; relative uris are
resolved against the manifest's directory.
"""

from __future__ import annotations

import csv
import io
import json

from sweettok import storage
from sweettok_platform.core.sources.base import Item, SourceConfig, read_text


def list_manifest(config: SourceConfig) -> list[Item]:
    text = read_text(config.root)
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
