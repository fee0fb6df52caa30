"""Configuration machinery shared by every script: frozen dataclasses, files, `key=value` overrides.

A config is a frozen dataclass whose fields may be other frozen dataclasses (sections). Values come
from a TOML or JSON file and from dotted `key=value` overrides, are converted to each field's
declared type, and any unknown key or unconvertible value raises `ConfigError` naming it. This file
imports nothing of the project's, so a learner file can be copied together with it alone.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import tomllib
import types
import typing
from typing import Any


class ConfigError(ValueError):
    """A configuration key, value, model file or name that cannot be used; the message names it."""


def override(config: Any, overrides: dict[str, Any], prefix: str = "") -> Any:
    """`config` with dotted-key overrides applied, e.g. {"noise.gyro": 0.1}; names bad keys."""
    fields = {f.name: f for f in dataclasses.fields(config)}
    hints = typing.get_type_hints(type(config))
    changes: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for key, value in overrides.items():
        head, _, rest = key.partition(".")
        if head not in fields:
            close = difflib.get_close_matches(head, fields, n=1)
            hint = f" (did you mean '{prefix}{close[0]}'?)" if close else ""
            raise ConfigError(f"unknown config key '{prefix}{key}'{hint}")
        # A section is a field holding a dataclass (by value, so `env: Any` sections work too).
        if dataclasses.is_dataclass(getattr(config, head)):
            if rest:
                nested.setdefault(head, {})[rest] = value
            elif isinstance(value, dict):
                nested.setdefault(head, {}).update(value)
            else:
                raise ConfigError(f"config key '{prefix}{key}' is a section; give its fields")
        elif rest or isinstance(value, dict):
            field = rest or next(iter(value), "")
            raise ConfigError(f"config key '{prefix}{head}' has no field '{field}'")
        else:
            changes[head] = coerce(value, hints[head], f"{prefix}{key}")
    for head, sub in nested.items():
        changes[head] = override(getattr(config, head), sub, f"{prefix}{head}.")
    return dataclasses.replace(config, **changes)


def coerce(value: Any, hint: Any, name: str) -> Any:
    """Convert a value (from a file or the command line) to the field's declared type, or fail."""
    origin = typing.get_origin(hint)
    if origin is tuple:
        items = value.split(",") if isinstance(value, str) else value
        args = typing.get_args(hint)
        if not isinstance(items, list | tuple):
            raise ConfigError(f"config key '{name}' wants a list, got {value!r}")
        if Ellipsis not in args and len(items) != len(args):
            raise ConfigError(f"config key '{name}' wants {len(args)} values, got {len(items)}")
        item_types = [args[0]] * len(items) if Ellipsis in args else list(args)
        return tuple(coerce(v, t, name) for v, t in zip(items, item_types, strict=True))
    if origin in (types.UnionType, typing.Union) or hint is Any:
        return value
    try:
        if hint is bool and isinstance(value, str):
            if value.lower() not in ("true", "false", "1", "0"):
                raise ValueError(value)
            return value.lower() in ("true", "1")
        if hint is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        if hint is int and isinstance(value, str):
            number = float(value)
            if not number.is_integer():
                raise ValueError(value)
            return int(number)
        if hint is float and isinstance(value, str):
            return float(value)
        return hint(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(f"config key '{name}' wants {hint.__name__}, got {value!r}") from None


def parse_overrides(items: Any) -> dict[str, Any]:
    """`["a.b=1", "c=x,y"]` -> {"a.b": "1", "c": "x,y"}; a dict passes through unchanged."""
    if isinstance(items, dict):
        return items
    pairs = [item.partition("=") for item in items]
    for key, sep, _ in pairs:
        if not sep:
            raise ConfigError(f"override '{key}' is not of the form key=value")
    return {key.strip(): value.strip() for key, _, value in pairs}


def read_file(path: str) -> dict[str, Any]:
    """The key/value tree of a TOML (or, by extension, JSON) file; errors name the file and line."""
    try:
        with open(path, "rb") as f:
            if path.endswith(".json"):
                return json.load(f)
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: '{path}'") from None
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"malformed config file '{path}': {e}") from None
