"""``ucf101``: ``<root>/<Class>/v_<Class>_gXX_cYY.avi`` plus the official split lists ``classInd.txt``
(``1 ApplyEyeMakeup``), ``trainlist0N.txt`` (``Class/v_....avi 1``), ``testlist0N.txt`` (``Class/v_....avi``), found
under ``splits_dir`` (default: ``ucfTrainTestlist`` in or beside ``<root>``, else ``<root>``). Labels are 0-based.
"""

from __future__ import annotations

from sweettok import storage
from sweettok_platform.core.sources.base import Item, SourceConfig, parent, read_text


def list_ucf101(config: SourceConfig) -> list[Item]:
    splits = config.splits_dir
    if splits is None:  # <root>/ucfTrainTestlist, <root>/../ucfTrainTestlist (as unpacked), or <root>
        candidates = [storage.join(d, "ucfTrainTestlist") for d in (config.root, parent(config.root)) if d]
        splits = next((c for c in candidates if storage.exists(storage.join(c, "classInd.txt"))), config.root)
    class_ind = storage.join(splits, "classInd.txt")
    if not storage.exists(class_ind):
        raise FileNotFoundError(f"UCF-101 split lists not found: no {class_ind} (set source.splits_dir)")
    names = {}
    for line in read_text(class_ind).splitlines():
        if line.strip():
            index, name = line.split()
            names[name] = int(index) - 1
    if config.split not in ("train", "test"):
        raise ValueError(f"UCF-101 split must be train or test, got {config.split!r}")
    listing = storage.join(splits, f"{config.split}list{config.fold:02d}.txt")
    if not storage.exists(listing):
        raise FileNotFoundError(f"UCF-101 split list not found: {listing}")
    items = []
    for line in read_text(listing).splitlines():
        if not line.strip():
            continue
        key = line.split()[0].replace("\\", "/")
        name = key.split("/")[0]
        if name not in names:
            raise ValueError(f"{listing}: class {name!r} is not in classInd.txt")
        items.append(Item(uri=storage.join(config.root, *key.split("/")), key=key, label=names[name],
                          label_name=name))
    return items
