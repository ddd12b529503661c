"""``folders``: any ``<root>/<class>/<file>`` tree of videos or images; labels index the sorted folder names."""

from __future__ import annotations

from sweettok import storage
from sweettok_platform.core.media import IMAGE_SUFFIXES, VIDEO_SUFFIXES
from sweettok_platform.core.sources.base import Item, SourceConfig, class_folders


def list_folders(config: SourceConfig) -> list[Item]:
    classes = class_folders(config.root, VIDEO_SUFFIXES + IMAGE_SUFFIXES)
    names = sorted(classes)
    return [Item(uri=u, key=storage.relative(u, config.root), label=i, label_name=name)
            for i, name in enumerate(names) for u in classes[name]]
