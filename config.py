"""Configuration machinery shared by every script: frozen dataclasses, files, `key=value` overrides.

A config is a frozen dataclass whose fields may be other frozen dataclasses (sections). Values come
from a TOML or JSON file and from dotted `key=value` overrides, are converted to each field's
declared type, and any unknown key or unconvertible value raises `ConfigError` naming it. A field
declares its allowed values once, where it is defined (`bounded`, `span`, `one_of`), and `check`
tests them all before anything is built. This file imports nothing of the project's, so a learner
file can be copied together with it alone.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import math
import operator
import os
import tomllib
import types
import typing
from typing import Any


class ConfigError(ValueError):
    """A configuration key, value, model file or name that cannot be used; the message names it."""


# ---------------------------------------------------------------------------------------------
# Fields with their allowed values
# ---------------------------------------------------------------------------------------------

LIMITS = {"ge": (operator.ge, ">="), "gt": (operator.gt, ">"), "le": (operator.le, "<="),
          "lt": (operator.lt, "<")}  # fmt: skip
INT32 = 2**31  # ints end up in JAX and MuJoCo as int32: larger ones need a declared upper bound
FLOAT32_MAX = 3.4028234663852886e38  # floats end up as float32: larger ones would become inf


def bounded(default: Any, **limits: float) -> Any:
    """A field whose number (each number, for a tuple) satisfies `limits`: ge, gt, le, lt."""
    unknown = set(limits) - set(LIMITS)
    assert not unknown, f"unknown limits {unknown}"
    return dataclasses.field(default=default, metadata={"limits": limits})


def span(default: tuple[float, float], **limits: float) -> Any:
    """A (lo, hi) range field: lo <= hi, each end within `limits` as in `bounded`."""
    return dataclasses.field(default=default, metadata={"limits": limits, "span": True})


def one_of(default: str, choices: Any) -> Any:
    """A string field that must be one of `choices` (any iterable of strings, e.g. a dict)."""
    return dataclasses.field(default=default, metadata={"choices": tuple(choices)})


def file_path(default: str) -> Any:
    """A file path field: a relative path set in a config file is relative to that file's folder."""
    return dataclasses.field(default=default, metadata={"path": True})


def check(config: Any, prefix: str = "") -> None:
    """Raise ConfigError naming the first value outside its field's limits, sections included.

    Then a section's `relations()` (if it has one): (key, holds, message) conditions between its
    fields, tested only once every field is within its own limits.
    """
    for f in dataclasses.fields(config):
        value, key = getattr(config, f.name), f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            check(value, f"{key}.")
        else:
            _check_value(key, value, f.metadata)
    for key, holds, message in config.relations() if hasattr(config, "relations") else ():
        if not holds:
            raise ConfigError(f"{prefix}{key} {message}")


def _check_value(key: str, value: Any, meta: Any) -> None:
    limits = meta.get("limits", {})
    int32 = "le" not in limits and "lt" not in limits  # no upper bound of its own
    for x in value if isinstance(value, tuple) else (value,):
        if isinstance(x, bool) or not isinstance(x, int | float):
            continue
        if isinstance(x, float) and not (math.isfinite(x) and abs(x) <= FLOAT32_MAX):
            raise ConfigError(f"config key '{key}' must be a finite number, got {value!r}")
        if isinstance(x, int) and int32 and not -INT32 <= x < INT32:
            raise ConfigError(f"config key '{key}' must fit in 32 bits, got {value!r}")
        for name, bound in limits.items():
            test, symbol = LIMITS[name]
            if not test(x, bound):
                raise ConfigError(f"config key '{key}' must be {symbol} {bound}, got {value!r}")
    if meta.get("span") and value[0] > value[1]:
        raise ConfigError(f"{key} has lo {value[0]} > hi {value[1]}")
    if "choices" in meta and value not in meta["choices"]:
        raise ConfigError(f"{key} '{value}' is not one of {sorted(meta['choices'])}")


# ---------------------------------------------------------------------------------------------
# Overrides and files
# ---------------------------------------------------------------------------------------------


def override(config: Any, overrides: dict[str, Any], prefix: str = "", base_dir: str = "") -> Any:
    """`config` with dotted-key overrides applied, e.g. {"noise.gyro": 0.1}; names bad keys.

    With `base_dir`, a relative path given to a `file_path` field that exists there is made
    absolute, so that the config means the same file from any working directory.
    """
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
            if base_dir and fields[head].metadata.get("path"):
                changes[head] = _absolute_if_found(changes[head], base_dir)
    for head, sub in nested.items():
        changes[head] = override(getattr(config, head), sub, f"{prefix}{head}.", base_dir)
    return dataclasses.replace(config, **changes)


def _absolute_if_found(path: str, base_dir: str) -> str:
    if not path:  # an empty path means "none" (e.g. init_policy), not the folder
        return path
    full = os.path.join(base_dir, path)
    return os.path.abspath(full) if not os.path.isabs(path) and os.path.exists(full) else path


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
        if hint is bool:
            if isinstance(value, bool):
                return value
            if not isinstance(value, str) or value.lower() not in ("true", "false", "1", "0"):
                raise ValueError(value)
            return value.lower() in ("true", "1")
        if hint in (int, float) and isinstance(value, bool):
            raise ValueError(value)  # `true` is no number, though Python would take it as 1
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
    except IsADirectoryError:
        raise ConfigError(f"config file '{path}' is a directory") from None
    except (tomllib.TOMLDecodeError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ConfigError(f"malformed config file '{path}': {e}") from None


def load_file(config: Any, path: str, section: str = "", _chain: tuple[str, ...] = ()) -> Any:
    """`config` overridden by a TOML/JSON file, after the file it extends (if any).

    A top-level `extends = "base.toml"` (relative to the file) names the file this one builds on:
    its values apply first, then this file's. Chains may be any length; a cycle is an error.
    Relative `file_path` values resolve against the folder of the file that sets them. `section`
    takes one table of every file (e.g. "env": the environment's part of a training config).
    """
    real = os.path.realpath(path)
    if real in _chain:
        cycle = " -> ".join(os.path.basename(p) for p in (*_chain, real))
        raise ConfigError(f"config file '{path}' extends itself: {cycle}")
    tree = read_file(path)
    base = tree.pop("extends", None)
    if base is not None:
        if not isinstance(base, str):
            raise ConfigError(f"'extends' in config file '{path}' wants a file name, got {base!r}")
        base_path = os.path.join(os.path.dirname(path), base)
        config = load_file(config, base_path, section, (*_chain, real))
    if section:
        tree = tree.get(section, {})
        if not isinstance(tree, dict):
            raise ConfigError(f"'{section}' in config file '{path}' is not a section")
    try:
        return override(config, tree, base_dir=os.path.dirname(os.path.abspath(path)))
    except ConfigError as e:
        raise ConfigError(f"{e} (in '{path}')") from None
