"""Config plumbing for the CLI: YAML files plus ``--set key.sub=value`` overrides onto presets."""

from __future__ import annotations

import argparse
from typing import Any

import yaml

from sweettok.config import merge_dicts as merge


def add_config_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="YAML", help="YAML file of settings (merged before --set)")
    parser.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override one setting, e.g. --set model.encoder.width=256 (repeatable; YAML value syntax)",
    )


def parse_set(items: list[str]) -> dict[str, Any]:
    """['a.b=1', 'c=x'] -> {'a': {'b': 1}, 'c': 'x'}; values are parsed as YAML scalars."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ValueError(f"--set expects KEY=VALUE, got {item!r}")
        key, raw = item.split("=", 1)
        node = out
        *parents, leaf = key.strip().split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(raw)
    return out


def load_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The YAML file (if any) with the ``--set`` overrides merged on top."""
    settings: dict[str, Any] = {}
    if getattr(args, "config", None):
        with open(args.config) as f:
            loaded = yaml.safe_load(f) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{args.config}: expected a mapping of settings at the top level")
        settings = loaded
    return merge(settings, parse_set(getattr(args, "overrides", []) or []))


def flag_settings(args: argparse.Namespace, flag_map: dict[str, str]) -> dict[str, Any]:
    """The flags that were given, as nested settings: ``flag_map`` is argparse dest -> dotted setting."""
    flags: dict[str, Any] = {}
    for dest, key in flag_map.items():
        value = getattr(args, dest, None)
        if value is not None:
            node = flags
            *parents, leaf = key.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
    return flags
