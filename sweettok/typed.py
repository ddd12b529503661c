"""Strict construction of config dataclasses from plain data (YAML, JSON, ``--set key=value``).

``build(JobConfig, data)`` resolves nested sections from the dataclass's type hints, coerces what YAML and
the command line leave loosely typed (``"1e-4"`` for a float, ``"8"`` for an int, ``"true"`` for a bool),
and refuses anything else: an unknown key, a value of the wrong type, a choice outside a ``Literal``. Every
error names the dotted key (``stage_overrides.stage1.lr``), so a bad job spec fails on the submitting
machine, before any worker starts. Validation beyond types stays in each dataclass's ``__post_init__``.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar, Union

T = TypeVar("T")

_TRUE, _FALSE = {"true", "yes", "on", "1"}, {"false", "no", "off", "0"}


class ConfigError(ValueError):
    """A config value that does not fit its declared type; the message starts with the dotted key."""


def build(cls: type[T], data: Mapping[str, Any] | T | None, where: str = "") -> T:
    """A ``cls`` dataclass from ``data`` (a mapping; ``None`` is empty; an instance is returned as is)."""
    if isinstance(data, cls):
        return data
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or cls.__name__}: expected a section of settings, got {_shown(data)}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]  # type: ignore[arg-type]
    unknown = [k for k in data if k not in names]
    if unknown:
        raise ConfigError(f"{_join(where, str(unknown[0]))}: unknown setting; {cls.__name__} takes "
                          f"{', '.join(names)}")
    values = {k: coerce(hints[k], v, _join(where, k)) for k, v in data.items()}
    try:
        return cls(**values)
    except ConfigError:
        raise
    except (TypeError, ValueError) as e:  # a __post_init__ check: name the section it came from
        raise ConfigError(f"{where}: {e}" if where else str(e)) from e


def coerce(tp: Any, value: Any, key: str) -> Any:
    """``value`` as type ``tp`` (see the module docstring), or a ``ConfigError`` naming ``key``."""
    if tp is Any:
        return value
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (Union, types.UnionType):
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"{key}: a value is required")
        problems = []
        for option in (a for a in args if a is not type(None)):
            try:
                return coerce(option, value, key)
            except ConfigError as e:
                problems.append(str(e).split(": ", 1)[1])
        raise ConfigError(f"{key}: {' or '.join(problems)}")
    if value is None:
        raise ConfigError(f"{key}: a value is required (expected {_name(tp)})")
    if origin is typing.Literal:
        text = value if isinstance(value, str) else str(value)
        for choice in args:
            if value == choice or text == str(choice):
                return choice
        raise ConfigError(f"{key}: expected one of {', '.join(repr(a) for a in args)}, got {_shown(value)}")
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return build(tp, value, key)
    if origin in (list, tuple) or tp in (list, tuple):
        return _sequence(tp, origin or tp, args, value, key)
    if origin is dict or tp is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a mapping, got {_shown(value)}")
        if not args:
            return dict(value)
        return {k: coerce(args[1], v, _join(key, str(k))) for k, v in value.items()}
    if tp is bool:
        return _bool(value, key)
    if tp is int:
        return _int(value, key)
    if tp is float:
        return _float(value, key)
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # e.g. a run name YAML read as a number
        raise ConfigError(f"{key}: expected a string, got {_shown(value)}")
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{key}: expected {_name(tp)}, got {_shown(value)}")
    return value


def _sequence(tp: Any, kind: type, args: tuple, value: Any, key: str) -> Any:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (list, tuple)):
        raise ConfigError(f"{key}: expected a list, got {_shown(value)}")
    if kind is tuple and args and args[-1] is not Ellipsis:
        if len(value) != len(args):
            raise ConfigError(f"{key}: expected {len(args)} values, got {len(value)}")
        return tuple(coerce(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value)))
    item = args[0] if args else Any
    items = [coerce(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
    return tuple(items) if kind is tuple else items


def _bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ConfigError(f"{key}: expected true or false, got {_shown(value)}")


def _int(value: Any, key: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected an integer, got {_shown(value)}")
    if isinstance(value, int):
        return value
    number = value
    if isinstance(value, str):
        try:
            number = float(value.strip().replace("_", ""))
        except ValueError:
            raise ConfigError(f"{key}: expected an integer, got {_shown(value)}") from None
    if isinstance(number, float) and math.isfinite(number) and number.is_integer():
        return int(number)  # "1e4", 2.0
    raise ConfigError(f"{key}: expected an integer, got {_shown(value)}")


def _float(value: Any, key: str) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{key}: expected a number, got {_shown(value)}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip().replace("_", ""))  # YAML 1.1 reads 1e-4 as a string
        except ValueError:
            pass
    raise ConfigError(f"{key}: expected a number, got {_shown(value)}")


def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _shown(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"
