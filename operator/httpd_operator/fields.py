"""Typed readers of spec fields: each refusal names the field, so status and events can say
what to fix. Shared by `spec.py` and `spec_features.py`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from httpd_operator.errors import SpecError


def get(obj: Mapping[str, Any], key: str, path: str, kind: type | tuple[type, ...], default: Any) -> Any:
    value = obj.get(key, default)
    if value is None:
        return default
    if kind is int and isinstance(value, bool) or not isinstance(value, kind):
        want = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise SpecError(f"{path}.{key}", f"must be {article(want)}, got {type(value).__name__}")
    return value


def article(word: str) -> str:
    return {"int": "an integer", "str": "a string", "dict": "an object", "list": "a list",
            "bool": "a boolean"}.get(word, f"a {word}")


def ranged(obj: Mapping[str, Any], key: str, path: str, default: int, lo: int, hi: int) -> int:
    value = get(obj, key, path, int, default)
    if not lo <= value <= hi:
        raise SpecError(f"{path}.{key}", f"must be between {lo} and {hi}, got {value}")
    return value
