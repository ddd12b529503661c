"""The tokenizer bundle that ships with the project: what the CLI, the demo, tokenize and serve use when
no ``--bundle`` or ``--preset`` is given on this machine.

It is the best ``small``-preset bundle of the quality study (full curriculum, seed 0 of 2, the higher mean of
the median PSNR over four held-out content types; ``benchmarks/quality_study.py``, ``docs/results.md``):
9x64x64 clips, 32 spatial + 64 temporal tokens, the language codebook, trained on 2 CPU cores on 670 clips
from 11 sources (camera motion over photographs and game art, procedural video, one real video;
``jobs/data/varied``). It reconstructs content it never saw above a constant colour; it is not the paper's
model.

Records (corpus cards, generator records) name a shipped bundle by its package-relative URI
``package://sweettok_platform/bundles/<name>``, never by the directory it was loaded from: a job submitted with
``sweettok submit`` imports this package from Ray's temporary ``runtime_resources``, which vanish with the
session. ``bundle_location`` turns such a URI back into this installation's directory.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

SHIPPED = Path(__file__).parent.parent / "bundles"  # the package's bundles/ folder
BUNDLE_DIR = SHIPPED / "small-study"
PACKAGE_URI = "package://sweettok_platform/bundles/"  # + the shipped bundle's directory name


def default_bundle() -> str:
    """The shipped bundle's directory; a clear error if the package was installed without it."""
    if not (BUNDLE_DIR / "bundle.json").is_file():
        raise FileNotFoundError(
            f"the shipped tokenizer bundle is missing ({BUNDLE_DIR}); give --bundle URI or --preset NAME"
        )
    return str(BUNDLE_DIR)


def durable_bundle_uri(bundle: str) -> str:
    """The URI a record keeps for ``bundle``: a shipped bundle (wherever this package was loaded from) as
    ``package://sweettok_platform/bundles/<name>``; any other bundle as named (an s3:// URI as given, a local
    path made absolute)."""
    if "://" in bundle:
        return bundle
    path = os.path.realpath(bundle)
    shipped = os.path.realpath(SHIPPED)
    if os.path.dirname(path) == shipped:
        return PACKAGE_URI + os.path.basename(path)
    return os.path.abspath(bundle)


def bundle_location(uri: str) -> str:
    """A bundle URI as something to load: ``package://...`` -> this installation's directory; others unchanged."""
    if not uri.startswith(PACKAGE_URI):
        return uri
    name = uri[len(PACKAGE_URI):].strip("/")
    if not name or "/" in name or name in (".", ".."):
        raise ValueError(f"{uri}: not a shipped bundle name")
    return str(SHIPPED / name)


def shipped_bundle_by_hash(content_hash: str) -> str | None:
    """The package URI of the shipped bundle whose manifest records ``content_hash`` (None if none does):
    how an old record whose bundle path vanished (a Ray session's temporary copy) is resolved."""
    for manifest in sorted(SHIPPED.glob("*/bundle.json")):
        try:
            if json.loads(manifest.read_text()).get("hash") == content_hash:
                return PACKAGE_URI + manifest.parent.name
        except (OSError, ValueError):
            continue
    return None


def with_default_bundle(node: dict, bundle_key: str = "bundle", preset_key: str = "preset") -> dict:
    """``node`` with the shipped bundle filled in when it names neither a bundle nor a preset (how every
    command and job falls back to the default tokenizer)."""
    if not node.get(bundle_key) and not node.get(preset_key):
        node[bundle_key] = default_bundle()
    return node
