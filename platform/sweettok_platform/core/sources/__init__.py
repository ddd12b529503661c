"""Dataset sources: turn a dataset (local or ``s3://``) into a sorted list of ``Item`` (uri, key, label).

One abstraction for every job that reads media: tokenize, eval and training list their inputs through
``list_items(SourceConfig)``, and read an item through ``read_item(uri)``. Each kind is one module of this
package plus one line of ``KINDS``; the CLI's ``--kind`` choices come from ``KINDS``.

- ``folders``: ``<root>/<class>/<file>``; ``ucf101``: the official split lists; ``kinetics``: an annotation CSV;
- ``imagenet``: synset folders; ``manifest``: a CSV/JSONL of uris; ``paths``: local files, folders and globs;
- ``webdataset``: ``.tar`` shards of ``<key>.mp4|jpg|...`` (+ ``<key>.cls``) samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from sweettok import storage
from sweettok_platform.core.sources import folders, imagenet, kinetics, manifest, paths, ucf101, webdataset
from sweettok_platform.core.sources.base import KINDS, Item, SourceConfig

__all__ = ["Item", "SourceConfig", "KINDS", "SOURCE_FLAGS", "add_source_args", "list_items", "open_item", "read_item",
           "backing_file"]


@dataclass(frozen=True)
class SourceKind:
    """A registered kind: how it lists items; and, for kinds whose item uris are their own (``prefix``), how
    such a uri is read."""

    list: Callable[[SourceConfig], list[Item]]
    prefix: str | None = None
    read: Callable[[str], bytes] | None = None
    backing: Callable[[str], str] | None = None  # such a uri -> the file its bytes live in


KINDS.update({  # the registry: one line per kind
    "folders": SourceKind(folders.list_folders),
    "ucf101": SourceKind(ucf101.list_ucf101),
    "kinetics": SourceKind(kinetics.list_kinetics),
    "imagenet": SourceKind(imagenet.list_imagenet),
    "manifest": SourceKind(manifest.list_manifest),
    "paths": SourceKind(paths.list_paths),
    "webdataset": SourceKind(webdataset.list_webdataset, webdataset.PREFIX, webdataset.read_member, webdataset.shard_of),
})


def list_items(config: SourceConfig) -> list[Item]:
    """The dataset's items in a stable order (sorted by key)."""
    if config.kind != "paths" and not config.root:
        raise ValueError("source.root is empty: give the dataset directory (or manifest file) to read")
    items = sorted(KINDS[config.kind].list(config), key=lambda it: it.key)
    keys = [it.key for it in items]
    if len(set(keys)) != len(keys):
        raise ValueError(f"{config.root or config.paths}: the {config.kind} listing names some files twice")
    return items[: config.limit] if config.limit is not None else items


def _own_kind(uri: str) -> SourceKind | None:
    return next((k for k in KINDS.values() if k.prefix and uri.startswith(k.prefix)), None)


def read_item(uri: str) -> str | bytes:
    """What a decoder opens for an item: a local path as is; a remote file or a kind's own uri (a tar member)
    as bytes. A missing remote file raises FileNotFoundError."""
    kind = _own_kind(uri)
    if kind is not None and kind.read is not None:
        return kind.read(uri)
    return storage.read_bytes(uri) if storage.is_remote(uri) else uri


def backing_file(uri: str) -> str:
    """The file an item's bytes live in (a tar member's shard; the uri itself otherwise): what a cache key
    or a dataset fingerprint stats."""
    kind = _own_kind(uri)
    return kind.backing(uri) if kind is not None and kind.backing is not None else uri


def open_item(uri: str, spec, name: str = "", max_pixels: int | None = None):
    """An item opened for its clips (``media.open_clips`` over ``read_item``); a missing file is a MediaError."""
    from sweettok_platform.core.media import MediaError, open_clips

    try:
        source = read_item(uri)
    except FileNotFoundError as e:
        raise MediaError(str(e)) from e
    return open_clips(source, spec, name=name or uri, max_pixels=max_pixels)


# the flags ``add_source_args`` adds: argparse dest -> dotted setting (for ``core.config.resolve_settings``)
SOURCE_FLAGS = {"kind": "source.kind", "root": "source.root", "paths": "source.paths", "split": "source.split",
                "limit": "source.limit", "policy": "clips.policy", "stride": "clips.stride", "resize": "clips.resize"}


def add_source_args(parser, limit_help: str = "only the first N files (source.limit)") -> None:
    """The source and clip flags of a command that reads a dataset (tokenize, eval): ``SOURCE_FLAGS``."""
    parser.add_argument("--source", dest="kind", choices=sorted(KINDS), help="dataset layout (source.kind)")
    parser.add_argument("--root", help="dataset directory, .tar shard, or the manifest file (source.root)")
    parser.add_argument("--paths", nargs="+", help="--source paths: local files, folders, globs (source.paths)")
    parser.add_argument("--split", help="ucf101: train/test; kinetics: the CSV's split (source.split)")
    parser.add_argument("--limit", type=int, help=limit_help)
    parser.add_argument("--policy", choices=["center", "random", "windows"], help="clips per video (clips.policy)")
    parser.add_argument("--stride", type=int, help="frames between window starts (clips.stride)")
    parser.add_argument("--resize", choices=["squash", "crop"], help="squash (default) or short side + centre crop")
