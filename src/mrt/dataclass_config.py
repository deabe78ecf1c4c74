"""Typed configs: build a (nested) dataclass from a plain mapping, checking every key and value.

The one dict-to-dataclass builder of the package (model configs, training configs, task
arguments). :func:`build` refuses unknown keys (naming the closest known one) and mistyped
values with a one-line :class:`~mrt.errors.ConfigError` that names the dotted key path, e.g.
``config key 'task_args.w_lpips' must be a number, got 'abc'``.

Supported annotations: ``int``, ``float``, ``bool``, ``str``, ``Any``, ``Literal[...]``,
``X | None`` / ``Optional[X]`` (and other unions: the first member that accepts the value),
``list[X]``, ``tuple[X, ...]`` / ``tuple[X, Y]``, ``dict[str, X]`` and nested dataclasses.
Coercion is deliberately narrow and never changes a value's meaning:

- ``int``: an integral float (``3.0``) becomes ``3``; ``bool`` is refused;
- ``float``: an ``int`` is accepted *as is* (so that a model config's canonical JSON, and with
  it the model id, stays what the user wrote); a string that parses as a number becomes a
  float (YAML 1.1 reads ``1e-4`` as a string); ``bool`` is refused;
- ``list[str]``: a single string becomes a one-element list;
- a ``None`` section is an empty one (all defaults); an instance of the target dataclass is
  taken as it is.

Standard library only (layer 0, beside :mod:`mrt.errors`).
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

from mrt.errors import ConfigError

T = TypeVar("T")


def build(cls: type[T], data: Mapping[str, Any] | T | None, path: str = "") -> T:
    """An instance of dataclass ``cls`` from mapping ``data`` (missing keys take their defaults).

    ``path`` is the dotted position of ``data`` inside a larger config (``"model"``), used in
    error messages. Errors raised by the dataclass itself (``__post_init__`` checks) are
    re-raised as ``ConfigError`` prefixed with ``path``.
    """
    if isinstance(data, cls):
        return data
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"config section '{path or '<root>'}' must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        key_path = _join(path, str(key))
        if key not in fields:
            raise ConfigError(f"unknown config key '{key_path}'{_suggest(path, str(key), list(fields))}")
        kwargs[key] = coerce(value, hints[key], key_path)
    for name, f in fields.items():
        missing = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if f.init and missing and name not in kwargs:
            raise ConfigError(f"missing config key '{_join(path, name)}'")
    try:
        return cls(**kwargs)
    except ConfigError as err:
        if not path:
            raise
        raise ConfigError(f"{path}: {err}") from None


def coerce(value: Any, tp: Any, path: str) -> Any:
    """``value`` checked against (and, narrowly, converted to) annotation ``tp``; see the module doc."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return build(tp, value, path)
    if origin in (typing.Union, types.UnionType):
        return _coerce_union(value, typing.get_args(tp), path)
    if origin is Literal:
        return _coerce_literal(value, typing.get_args(tp), path)
    if origin in (list, tuple):
        return _coerce_sequence(value, tp, path)
    if origin is dict or tp is dict:
        return _coerce_mapping(value, typing.get_args(tp), path)
    if tp is Any:
        return copy.deepcopy(value)
    if tp in _SCALARS:
        return _SCALARS[tp](value, path)
    raise ConfigError(f"config key '{path}': unsupported type {tp}")  # pragma: no cover - a programming error


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _suggest(path: str, key: str, names: list[str]) -> str:
    near = difflib.get_close_matches(key, names, n=1)
    if near:
        return f" (did you mean '{_join(path, near[0])}'?)"
    return f" (known: {', '.join(names)})"


def _coerce_union(value: Any, args: tuple[Any, ...], path: str) -> Any:
    if value is None and type(None) in args:
        return None
    members = [a for a in args if a is not type(None)]
    first: ConfigError | None = None
    for member in members:
        try:
            return coerce(value, member, path)
        except ConfigError as err:
            first = first or err
    assert first is not None
    if len(members) == 1:
        raise first
    raise ConfigError(f"config key '{path}' must be one of the types {' | '.join(map(_name, args))}, got {value!r}")


def _name(tp: Any) -> str:
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _coerce_literal(value: Any, choices: tuple[Any, ...], path: str) -> Any:
    for choice in choices:
        if type(value) is type(choice) and value == choice:
            return value
    raise ConfigError(f"config key '{path}' must be one of {', '.join(map(repr, choices))}, got {value!r}")


def _coerce_sequence(value: Any, tp: Any, path: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if isinstance(value, str) and origin is list and args == (str,):
        value = [value]
    if not isinstance(value, (list, tuple)):
        kind = "list" if origin is list else "sequence"
        raise ConfigError(f"config key '{path}' must be a {kind}, got {value!r}")
    if origin is list:
        inner = args[0] if args else Any
        return [coerce(v, inner, f"{path}[{i}]") for i, v in enumerate(value)]
    if len(args) == 2 and args[1] is Ellipsis:
        return tuple(coerce(v, args[0], f"{path}[{i}]") for i, v in enumerate(value))
    if args and len(args) != len(value):
        raise ConfigError(f"config key '{path}' must have {len(args)} items, got {len(value)}")
    kinds = args or (Any,) * len(value)
    return tuple(coerce(v, k, f"{path}[{i}]") for i, (v, k) in enumerate(zip(value, kinds)))


def _coerce_mapping(value: Any, args: tuple[Any, ...], path: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"config key '{path}' must be a mapping, got {value!r}")
    inner = args[1] if len(args) == 2 else Any
    out: dict[str, Any] = {}
    for k, v in value.items():
        if not isinstance(k, str):
            raise ConfigError(f"config key '{path}' must have string keys, got {k!r}")
        out[k] = coerce(v, inner, _join(path, k))
    return out


def _to_bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"config key '{path}' must be true/false, got {value!r}")
    return value


def _to_int(value: Any, path: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ConfigError(f"config key '{path}' must be an integer, got {value!r}")


def _to_float(value: Any, path: str) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value  # an int stays an int (see the module doc)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    raise ConfigError(f"config key '{path}' must be a number, got {value!r}")


def _to_str(value: Any, path: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"config key '{path}' must be a string, got {value!r}")
    return value


_SCALARS: dict[Any, Any] = {bool: _to_bool, int: _to_int, float: _to_float, str: _to_str}
