"""Desired vs actual: what to patch, and nothing else.

The API server adds defaults (imagePullPolicy, terminationMessagePath, ...) and other tools add
their own fields (annotations, labels). A child is in shape when every field the operator wants
is present with its value; the patch then carries only the fields that differ, so other writers'
fields survive and a converged child costs no write at all.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _same_scalar(want: Any, have: Any) -> bool:
    if isinstance(want, bool) or isinstance(have, bool):
        return want is have
    if isinstance(want, int | float) and isinstance(have, int | float):
        return want == have
    if isinstance(want, int) and isinstance(have, str) or isinstance(want, str) and isinstance(have, int):
        return str(want) == str(have)  # int-or-string fields (ports, quantities)
    return bool(want == have)


def is_subset(want: Any, have: Any) -> bool:
    """Whether `have` holds everything `want` says (lists compare element-wise, same length).
    A None in `want` means the key must be absent (a merge patch's deletion)."""
    kind = type(want)
    if kind is dict or kind is not list and isinstance(want, Mapping):  # plain dicts first: hot
        if type(have) is not dict and not isinstance(have, Mapping):
            return False
        for key, value in want.items():
            if value is None:
                if have.get(key) is not None:
                    return False
            elif key not in have or not is_subset(value, have[key]):
                return False
        return True
    if kind is list:
        if type(have) is not list or len(want) != len(have):
            return False
        return all(is_subset(w, h) for w, h in zip(want, have, strict=True))
    if kind is str and type(have) is str:
        return bool(want == have)
    return _same_scalar(want, have)


def merge_patch(want: Mapping[str, Any], have: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON merge patch that brings `have` to hold `want`: only the differing keys; lists whole."""
    patch: dict[str, Any] = {}
    for key, value in want.items():
        current = have.get(key) if isinstance(have, Mapping) else None
        if key not in have or not is_subset(value, current):
            if isinstance(value, Mapping) and isinstance(current, Mapping):
                patch[key] = merge_patch(value, current)
            else:
                patch[key] = value
    return patch
