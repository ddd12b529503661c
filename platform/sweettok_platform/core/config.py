"""Config plumbing for every command: YAML files, ``--set key.sub=value`` overrides, and named flags.

One precedence rule for every command: **YAML < ``--set`` < flags** (a named flag is the most deliberate
choice on the line, so it wins). ``resolve_settings`` applies it; settings that exclude each other (a bundle
or a preset) are given as ``one_of`` groups: a layer that sets one of them drops the others from the layers
below it. Every run writes the resolved job config beside its outputs (``write_resolved``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from typing import Any

import yaml

from sweettok.config import merge_dicts as merge

__all__ = ["add_config_args", "parse_set", "load_yaml", "flag_settings", "resolve_settings", "merge",
           "write_resolved", "RESOLVED_CONFIG"]

RESOLVED_CONFIG = "job.json"  # the resolved job config a run writes beside its outputs


def add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="YAML", help="YAML file of settings (--set and flags win over it)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override one setting, e.g. --set model.encoder.width=256 (repeatable; YAML value syntax; "
             "a named flag for the same setting wins)",
    )


def parse_set(items: list[str]) -> dict[str, Any]:
    """['a.b=1', 'c=x'] -> {'a': {'b': 1}, 'c': 'x'}; values are parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        key, raw = item.split("=", 1)
        _put(out, key.strip(), yaml.safe_load(raw))
    return out


def load_yaml(path: str | None) -> dict[str, Any]:
    """A YAML file of settings (empty without one)."""
    if not path:
        return {}
    with open(path) as f:
        loaded = yaml.safe_load(f) or {}
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: expected a mapping of settings at the top level")
    return loaded


def flag_settings(args: argparse.Namespace, flag_map: dict[str, str]) -> dict[str, Any]:
    """The flags that were given, as nested settings: ``flag_map`` is argparse dest -> dotted setting."""
    flags: dict[str, Any] = {}
    for dest, key in flag_map.items():
        value = getattr(args, dest, None)
        if value is not None:
            _put(flags, key, value)
    return flags


def resolve_settings(args: argparse.Namespace, flag_map: dict[str, str] | None = None, *,
                     base: dict[str, Any] | None = None, one_of: tuple[tuple[str, ...], ...] = ()) -> dict[str, Any]:
    """The command's settings: ``base`` (default: the ``--config`` YAML) < ``--set`` < flags.

    ``one_of``: groups of dotted keys that exclude each other; the highest layer that sets one wins the group."""
    layers = [base if base is not None else load_yaml(getattr(args, "config", None)),
              parse_set(getattr(args, "overrides", None) or []), flag_settings(args, flag_map or {})]
    settings: dict[str, Any] = {}
    for layer in layers:
        for group in one_of:
            if any(_get(layer, key) is not None for key in group):
                for key in group:
                    if _get(layer, key) is None:
                        _pop(settings, key)
        settings = merge(settings, layer)
    return settings


def write_resolved(uri: str, config: Any) -> None:
    """The resolved job config (a dataclass, or a dict of them) as JSON at ``uri`` (local or s3://): what the run really used."""
    from sweettok import storage

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return dataclasses.asdict(value)
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        return value

    storage.write_bytes(uri, json.dumps(plain(config), indent=2, sort_keys=True, default=str).encode())


def _put(node: dict[str, Any], key: str, value: Any) -> None:
    *parents, leaf = key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def _get(node: Any, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _pop(node: Any, key: str) -> None:
    *parents, leaf = key.split(".")
    for part in parents:
        if not isinstance(node, dict) or part not in node:
            return
        node = node[part]
    if isinstance(node, dict):
        node.pop(leaf, None)
