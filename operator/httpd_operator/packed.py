"""Objects kept in memory as compact JSON: a watched object's parsed dicts cost several times its
JSON text in RSS, and the operator keeps every site and child it watches. The fields read on
every event (uid, resourceVersion) stay unpacked; the rest is parsed when a reconcile needs it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


class Packed:
    __slots__ = ("data", "rv", "uid")

    def __init__(self, body: Mapping[str, Any]) -> None:
        meta = body.get("metadata") or {}
        self.uid: str | None = meta.get("uid")
        try:
            self.rv = int(meta.get("resourceVersion") or -1)
        except ValueError:
            self.rv = -1
        if "managedFields" in meta:  # never read; on a real server often the largest part
            body = {**body, "metadata": {k: v for k, v in meta.items() if k != "managedFields"}}
        # default=dict: should a caller hand over read-only mapping views (kopf's Body), not dicts
        self.data = json.dumps(body, separators=(",", ":"), ensure_ascii=False, default=dict).encode()

    def unpack(self) -> dict[str, Any]:
        """A fresh dict of the object (callers may keep or change it)."""
        return json.loads(self.data)
