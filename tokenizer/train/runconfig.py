"""Run configs: a frozen dataclass of defaults, overridden by a YAML file, then by
``--set key=value`` pairs. Unknown keys and values of the wrong type fail with a message that
names the field, so a typo in a run config never trains the wrong model silently."""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from tokenizer.errors import InvalidInputError

C = TypeVar("C")


class RunConfigError(InvalidInputError):
    """A run config names an unknown field or gives a value of the wrong type."""


def override(config: C, values: dict[str, Any], where: str) -> C:
    """``config`` with ``values`` replacing its fields (checked against the field types)."""
    assert dataclasses.is_dataclass(config) and not isinstance(config, type)
    hints = typing.get_type_hints(type(config))
    known = {f.name for f in dataclasses.fields(config)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise RunConfigError(f"{where}: expected keys among {sorted(known)}, found {unknown}")
    changes = {
        name: _coerce(value, hints[name], f"{where}: {name}") for name, value in values.items()
    }
    return dataclasses.replace(config, **changes)


def load_run_config(config: C, yaml_path: Path | None, sets: list[str]) -> C:
    """Apply a YAML mapping (if given) and then ``key=value`` strings (values parsed as YAML)."""
    if yaml_path is not None:
        try:
            values = yaml.safe_load(yaml_path.read_text()) or {}
        except (OSError, yaml.YAMLError) as e:
            raise RunConfigError(f"expected a readable YAML run config at {yaml_path}: {e}") from e
        if not isinstance(values, dict):
            raise RunConfigError(
                f"expected a YAML mapping in {yaml_path}, found {type(values).__name__}"
            )
        config = override(config, values, str(yaml_path))
    for item in sets:
        key, sep, raw = item.partition("=")
        if not sep:
            raise RunConfigError(f"expected --set KEY=VALUE, found {item!r}")
        config = override(config, {key.strip(): yaml.safe_load(raw)}, "--set")
    return config


def _coerce(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        for option in typing.get_args(hint):
            try:
                return _coerce(value, option, where)
            except RunConfigError:
                continue
        raise RunConfigError(f"{where}: expected {hint}, found {value!r}")
    if origin is typing.Literal:
        if value not in typing.get_args(hint):
            raise RunConfigError(
                f"{where}: expected one of {typing.get_args(hint)}, found {value!r}"
            )
        return value
    if hint is type(None):
        if value is not None:
            raise RunConfigError(f"{where}: expected null, found {value!r}")
        return None
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):  # YAML 1.1 reads 2e-4 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    if hint in (int, str, bool, dict) and type(value) is hint:
        return value
    if origin is list and isinstance(value, list):
        (item,) = typing.get_args(hint)
        return [_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is tuple and isinstance(value, list | tuple):
        items = typing.get_args(hint)
        if len(items) == 2 and items[1] is Ellipsis:
            items = (items[0],) * len(value)
        if len(items) != len(value):
            raise RunConfigError(f"{where}: expected {len(items)} items, found {value!r}")
        return tuple(
            _coerce(v, t, f"{where}[{i}]")
            for i, (v, t) in enumerate(zip(value, items, strict=True))
        )
    if origin is dict and isinstance(value, dict):
        key, item = typing.get_args(hint)
        return {_coerce(k, key, where): _coerce(v, item, f"{where}.{k}") for k, v in value.items()}
    raise RunConfigError(f"{where}: expected {getattr(hint, '__name__', hint)}, found {value!r}")
