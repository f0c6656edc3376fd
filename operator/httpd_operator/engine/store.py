"""What the operator has seen: the watches' objects (packed), plus a read-your-writes overlay.

A write's answer is newer than the store until the watch delivers it: reads take the newer of
the two, so a reconcile right after a write never acts on what it has just replaced. An object
deleted by the operator reads as absent until the watch says it is gone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from httpd_operator.engine.memory import SiteKey
from httpd_operator.packed import Packed
from httpd_operator.render.meta import LABEL_INSTANCE

ChildKey = tuple[str, str, str]  # (kind, namespace, name)


def resource_version(obj: Mapping[str, Any] | None) -> int:
    try:
        return int(((obj or {}).get("metadata") or {}).get("resourceVersion") or -1)
    except ValueError:
        return -1


@dataclass
class Links:
    """Which sites mount another site's volume or a claim they do not own, kept from site events."""

    _from_site: dict[SiteKey, str] = field(default_factory=dict)
    _claim: dict[SiteKey, str] = field(default_factory=dict)

    def update(self, key: SiteKey, from_site: str | None, claim: str | None) -> None:
        for table, value in ((self._from_site, from_site), (self._claim, claim)):
            if value:
                table[key] = value
            else:
                table.pop(key, None)

    def sharers_of(self, namespace: str, name: str) -> list[str]:
        return [k[1] for k, v in self._from_site.items() if k[0] == namespace and v == name]

    def claim_users_of(self, namespace: str, claim: str) -> list[str]:
        return [k[1] for k, v in self._claim.items() if k[0] == namespace and v == claim]


class Store:
    """kind -> (namespace, name) -> newest object seen; backup Jobs as summaries by site."""

    def __init__(self, kinds: tuple[str, ...]) -> None:
        self.kinds: dict[str, dict[SiteKey, Packed]] = {kind: {} for kind in kinds}
        self.jobs: dict[SiteKey, dict[str, dict[str, Any]]] = {}
        self.links = Links()
        self.written: dict[ChildKey, dict[str, Any]] = {}  # our own writes' answers, until the watch catches up
        self._gone: set[tuple[str, str, str, str | None]] = set()  # deleted by us, not yet seen gone

    def seen(self, kind: str, namespace: str, name: str) -> Packed | None:
        """What the watch delivered, the overlay aside."""
        return self.kinds[kind].get((namespace, name))

    def _newest(self, kind: str, namespace: str, name: str) -> Packed | dict[str, Any] | None:
        seen = self.kinds[kind].get((namespace, name))
        if seen is not None and (kind, namespace, name, seen.uid) in self._gone:
            seen = None  # deleted by us; the watch has not said so yet
        mine = self.written.get((kind, namespace, name))
        if mine is not None and (seen is None or resource_version(mine) > seen.rv):
            return mine
        if mine is not None:
            del self.written[(kind, namespace, name)]  # the watch caught up
        return seen

    def actual(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The newest of what the watch delivered and what our own last write returned."""
        newest = self._newest(kind, namespace, name)
        return newest.unpack() if isinstance(newest, Packed) else newest

    def version(self, kind: str, namespace: str, name: str) -> int:
        """The resourceVersion `actual` would return (-1: absent), without unpacking it."""
        newest = self._newest(kind, namespace, name)
        return newest.rv if isinstance(newest, Packed) else resource_version(newest)

    def observe(self, kind: str, type_: str | None, body: Mapping[str, Any]) -> None:
        """A watch event (or a listed object, type None): keep the newest copy, drop deleted ones."""
        meta = body.get("metadata") or {}
        key = (meta.get("namespace") or "", meta.get("name") or "")
        store = self.kinds[kind]
        if type_ == "DELETED":
            old = store.get(key)
            if old is not None and old.uid == meta.get("uid"):
                del store[key]
            self.forget(kind, *key, meta.get("uid"))
            return
        new = Packed(body)
        old = store.get(key)
        if old is None or old.uid != new.uid or old.rv <= new.rv:  # events of one object may race
            store[key] = new
        mine = self.written.get((kind, *key))
        if mine is not None and resource_version(mine) <= new.rv:
            # the watch caught up with our write: its answer goes now, not at the next read (a
            # site's last status answer was otherwise kept, unpacked, for as long as it was quiet)
            del self.written[(kind, *key)]

    def observe_job(self, type_: str | None, body: Mapping[str, Any]) -> None:
        """Backup Jobs, by site: only what status.backup needs."""
        meta = body.get("metadata") or {}
        key = (meta.get("namespace") or "", (meta.get("labels") or {}).get(LABEL_INSTANCE) or "")
        if type_ == "DELETED":
            jobs = self.jobs.get(key) or {}
            jobs.pop(meta.get("name") or "", None)
            if not jobs:
                self.jobs.pop(key, None)  # the last of the site's Jobs: nothing left to keep
            return
        status = body.get("status") or {}
        state = next((c.get("type") for c in status.get("conditions") or []
                      if c.get("type") in ("Complete", "Failed") and c.get("status") == "True"), None)
        self.jobs.setdefault(key, {})[meta.get("name") or ""] = {
            "name": meta.get("name"), "state": state, "completionTime": status.get("completionTime"),
            "startTime": status.get("startTime")}

    def jobs_of(self, namespace: str, name: str) -> tuple[dict[str, Any], ...]:
        return tuple(self.jobs.get((namespace, name), {}).values())

    def forget(self, kind: str, namespace: str, name: str, uid: str | None) -> None:
        """An object was deleted: drop our copy of it, unless we have already re-created it."""
        mine = self.written.get((kind, namespace, name))
        if mine is not None and (mine.get("metadata") or {}).get("uid") == uid:
            del self.written[(kind, namespace, name)]
        self._gone.discard((kind, namespace, name, uid))

    def remember(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Our own write's answer: read in place of the store's copy until the watch catches up."""
        meta = obj.get("metadata") or {}
        self.written[(obj.get("kind", ""), meta.get("namespace", ""), meta.get("name", ""))] = obj
        return obj

    def deleted(self, kind: str, namespace: str, name: str, uid: str | None) -> None:
        """We deleted it: absent from now on, whatever the watch still holds."""
        self.written.pop((kind, namespace, name), None)
        self._gone.add((kind, namespace, name, uid))
