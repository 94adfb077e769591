"""Plain-data (JSON-ready) encoding of the model's dataclasses: commands, decisions, configuration."""

from __future__ import annotations

import dataclasses
import types
import typing
from enum import Enum
from typing import Any

from callstream_routing.domain import model

_TYPES: dict[str, type] = {
    name: obj for name, obj in vars(model).items() if isinstance(obj, type) and dataclasses.is_dataclass(obj)
}
_HINTS: dict[type, dict[str, Any]] = {}


def to_plain(obj: Any) -> Any:
    """Dataclasses become dicts tagged with `_type`; enums their value; tuples lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out: dict[str, Any] = {"_type": type(obj).__name__}
        for f in dataclasses.fields(obj):
            out[f.name] = to_plain(getattr(obj, f.name))
        return out
    if isinstance(obj, Enum):
        return obj.value
    if isinstance(obj, list | tuple):
        return [to_plain(x) for x in obj]
    if isinstance(obj, dict):
        return {str(k): to_plain(v) for k, v in obj.items()}
    return obj


def from_plain(data: Any) -> Any:
    """Inverse of `to_plain` for a tagged dict."""
    if not (isinstance(data, dict) and "_type" in data):
        raise ValueError("not a tagged dataclass dict")
    cls = _TYPES[data["_type"]]
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls, vars(model))
    kwargs = {f.name: _coerce(hints[f.name], data[f.name]) for f in dataclasses.fields(cls) if f.name in data}
    return cls(**kwargs)


def _coerce(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, dict) and "_type" in value:
        return from_plain(value)
    origin = typing.get_origin(hint)
    if origin is tuple:
        (item, *_rest) = typing.get_args(hint)
        return tuple(_coerce(item, v) for v in value)
    if origin in (types.UnionType, typing.Union):
        for arg in typing.get_args(hint):
            if arg is type(None):
                continue
            return _coerce(arg, value) if not isinstance(arg, type) or not isinstance(value, arg) else value
        return value
    if isinstance(hint, type) and issubclass(hint, Enum):
        return hint(value)
    if hint is float and isinstance(value, int):
        return float(value)
    return value
