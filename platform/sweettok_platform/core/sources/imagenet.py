"""``imagenet``: ``<root>/<synset>/<name>.JPEG``; labels index the sorted synset ids; names from an optional
``LOC_synset_mapping.txt`` (``n01440764 tench, Tinca tinca``; the first name is used).
"""

from __future__ import annotations

from sweettok import storage
from sweettok_platform.core.media import IMAGE_SUFFIXES
from sweettok_platform.core.sources.base import Item, SourceConfig, class_folders, parent, read_text


def list_imagenet(config: SourceConfig) -> list[Item]:
    classes = class_folders(config.root, IMAGE_SUFFIXES)
    mapping_uri = config.synset_mapping
    if mapping_uri is None:
        above = parent(config.root)
        candidates = [storage.join(d, "LOC_synset_mapping.txt") for d in (config.root, above) if d]
        mapping_uri = next((c for c in candidates if storage.exists(c)), None)
    names: dict[str, str] = {}
    if mapping_uri is not None:
        for line in read_text(mapping_uri).splitlines():
            if line.strip():
                synset, _, words = line.partition(" ")
                names[synset] = words.split(",")[0].strip()
    synsets = sorted(classes)
    return [Item(uri=u, key=storage.relative(u, config.root), label=i, label_name=names.get(s, s))
            for i, s in enumerate(synsets) for u in classes[s]]
