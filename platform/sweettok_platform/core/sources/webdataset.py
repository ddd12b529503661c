"""``webdataset``: WebDataset-style ``.tar`` shards (uncompressed), local or on ``s3://``.

``root`` is one ``.tar`` file or a directory/prefix of them. Each sample is the members sharing a key
(``<key>.<ext>``): its video or image member is the item; an optional ``<key>.cls`` holding an integer is the
label. Listing reads only the tar headers (seeks, no member data); an item's uri names its member by byte
range, ``tar:<offset>:<size>:<shard uri>#<member>``, so reading it is one ranged read of the shard, wherever
it lives. Item keys are ``<shard file name>/<member>``.
"""

from __future__ import annotations

import tarfile

from sweettok import storage
from sweettok_platform.core.media import is_image, is_video
from sweettok_platform.core.sources.base import Item, SourceConfig

PREFIX = "tar:"


def member_uri(shard: str, offset: int, size: int, member: str) -> str:
    return f"{PREFIX}{offset}:{size}:{shard}#{member}"


def split_member_uri(uri: str) -> tuple[str, int, int, str]:
    """``tar:<offset>:<size>:<shard>#<member>`` -> (shard, offset, size, member)."""
    offset, size, rest = uri[len(PREFIX):].split(":", 2)
    shard, sep, member = rest.partition("#")
    if not sep or not member:
        raise ValueError(f"{uri}: not a tar member uri (tar:<offset>:<size>:<shard>#<member>)")
    return shard, int(offset), int(size), member


def shard_of(uri: str) -> str:
    return split_member_uri(uri)[0]


def read_member(uri: str) -> bytes:
    """One member's bytes: a ranged read of its shard (local or s3://)."""
    shard, offset, size, _ = split_member_uri(uri)
    fs, path = storage.resolve(shard)
    with fs.open_input_file(path) as f:
        data = f.read_at(size, offset)
    if len(data) != size:
        raise FileNotFoundError(f"{uri}: the shard ends before the member ({len(data)} of {size} bytes)")
    return bytes(data)


def _shard_items(shard: str) -> list[Item]:
    fs, path = storage.resolve(shard)
    media: dict[str, tarfile.TarInfo] = {}
    labels: dict[str, int] = {}
    name = shard.rstrip("/").rsplit("/", 1)[-1]
    with fs.open_input_file(path) as f, tarfile.open(fileobj=f, mode="r:") as tar:
        members = [m for m in tar if m.isfile()]
        for m in members:
            sample, _, ext = m.name.rpartition(".")
            if is_video(m.name) or is_image(m.name):
                if sample in media:
                    raise ValueError(f"{shard}: sample {sample!r} has two media members")
                media[sample] = m
            elif ext == "cls":
                tar.fileobj.seek(m.offset_data)  # type: ignore[union-attr]
                labels[sample] = int(tar.fileobj.read(m.size).decode().strip())  # type: ignore[union-attr]
    return [Item(uri=member_uri(shard, m.offset_data, m.size, m.name), key=f"{name}/{m.name}",
                 label=labels.get(sample, -1), label_name=str(labels[sample]) if sample in labels else "")
            for sample, m in media.items()]


def list_webdataset(config: SourceConfig) -> list[Item]:
    shards = [config.root] if config.root.endswith(".tar") else storage.list_files(config.root, (".tar",))
    if not shards:
        raise FileNotFoundError(f"{config.root}: no .tar shards")
    return [item for shard in sorted(shards) for item in _shard_items(shard)]
