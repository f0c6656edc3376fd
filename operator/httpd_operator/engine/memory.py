"""What the operator remembers about one site, kept per **uid** and forgotten as a unit.

A site deleted and created again under the same name is another object (a new uid, generation 1
again): nothing the first one earned (a refusal, a skipped patch, a protected volume) may carry
over to it. And a churn of sites must not grow the process: the memory goes with its site.
(kopf does the same with one `ResourceMemory` per uid.)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from httpd_operator.errors import SpecError

SiteKey = tuple[str, str]  # (namespace, name)


@dataclass(slots=True)  # one per site: thousands of them
class SiteMemory:
    """One site's memos, all of them."""

    uid: str
    # Refused by the API server (a 400/422 on a child), at this generation: not again until it changes.
    rejected: tuple[int, SpecError] | None = None
    # Patches of a claim the server refused, by (kind, name, repr(patch)): the condition to report.
    refused: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    # Backup Job name -> its archive (name, size), read once from its pod.
    archives: dict[str, tuple[str, int] | None] = field(default_factory=dict)
    # The PersistentVolume known to be Retain; the claim this run created (its volume is new:
    # Retain is set without reading it first). One each: a site has one content volume.
    protected: str | None = None
    created_claim: str | None = None
    # When this site's children were last created (the loop's clock): a transient status waits.
    created_at: float | None = None
    # What the site was last found in shape with (see Engine._fingerprint): the same again is skipped.
    quiet: tuple[Any, ...] | None = None
    # Children found in shape, by (kind, name): (their resourceVersion, what was wanted, the note).
    in_shape: dict[tuple[str, str], tuple[int, Any, dict[str, Any] | None]] = field(default_factory=dict)
    doomed: bool = False  # its namespace is being deleted: left alone


class Memories:
    """Every site's memory, by uid; a name maps to the uid last seen under it, so a site seen
    under a new uid drops the old one's memory even if its deletion was never seen."""

    def __init__(self) -> None:
        self._by_uid: dict[str, SiteMemory] = {}
        self._uid_of: dict[SiteKey, str] = {}

    def of(self, key: SiteKey, uid: str) -> SiteMemory:
        """The memory of the site `key` whose uid is `uid` (a fresh one for a new uid)."""
        old = self._uid_of.get(key)
        if old is not None and old != uid:
            self._by_uid.pop(old, None)
        self._uid_of[key] = uid
        memory = self._by_uid.get(uid)
        if memory is None:
            memory = self._by_uid[uid] = SiteMemory(uid)
        return memory

    def get(self, uid: str | None) -> SiteMemory | None:
        return self._by_uid.get(uid) if uid else None

    def drop(self, key: SiteKey, uid: str | None = None) -> None:
        """The site is gone: forget it (only that uid, when given: a newer site of the same name
        stays; without, whichever uid the name had)."""
        known = self._uid_of.get(key)
        uid = uid or known
        if uid is not None:
            self._by_uid.pop(uid, None)
        if known == uid:
            self._uid_of.pop(key, None)

    def __len__(self) -> int:
        return len(self._by_uid)

    def __iter__(self) -> Iterator[SiteMemory]:
        return iter(list(self._by_uid.values()))
