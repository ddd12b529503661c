"""``paths``: local files, directories (searched recursively) and glob patterns; every video and image found,
unlabelled. What a training job lists by default (``dataset.source.paths``)."""

from __future__ import annotations

import glob
import os

from sweettok_platform.core.media import is_image, is_video
from sweettok_platform.core.sources.base import Item, SourceConfig


def resolve_paths(paths: list[str]) -> list[str]:
    """Files, directories (searched recursively) and glob patterns -> sorted absolute media files.

    Raises FileNotFoundError naming the entry that matched nothing."""
    if not paths:
        raise FileNotFoundError("source.paths is empty: list video/image files, directories or globs")
    out: set[str] = set()
    for entry in paths:
        if "://" in entry:
            raise ValueError(f"source path {entry!r}: the paths kind reads local (or mounted) files; "
                             "use another kind (folders, manifest, webdataset) for s3://")
        if os.path.isdir(entry):
            found = [os.path.join(r, f) for r, _, fs in os.walk(entry) for f in fs]
        elif any(ch in entry for ch in "*?["):
            found = glob.glob(entry, recursive=True)
        elif os.path.isfile(entry):
            found = [entry]
        else:
            raise FileNotFoundError(f"source path does not exist: {entry}")
        media = [os.path.abspath(f) for f in found if is_video(f) or is_image(f)]
        if not media:
            raise FileNotFoundError(f"source path {entry} holds no video or image files")
        out.update(media)
    return sorted(out)


def list_paths(config: SourceConfig) -> list[Item]:
    return [Item(uri=path, key=path) for path in resolve_paths(config.paths)]
