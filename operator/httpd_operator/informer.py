"""Lean watches for the operator's children: list, then watch from the list's resourceVersion,
each event handed to a callback (the engine's store and its kicks).

kopf runs every watch event through its handler machinery (causes, progress, a logger and some
thirty keyword arguments per handler): for children, whose events only refresh a cache and kick
their site, that was a third of the operator's CPU at 1000 sites (`bench/`). kopf still watches the
sites, logs in and runs peering; the engine does not reconcile while kopf's peering
has paused the operator (`peering.py`).

The protocol is the API server's: a 410 Gone (the resourceVersion has been compacted away) or any
other failure relists; objects missing from a relist are reported deleted; a stream that ends
(the server's timeout, a load balancer) resumes from the last resourceVersion seen; bookmarks
keep that version fresh on quiet resources.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import Any

from httpd_operator.kube import ApiError, Kube
from httpd_operator.retry import QUICK_END, RELIST

logger = logging.getLogger("httpd_operator.informer")
Callback = Callable[[str | None, dict[str, Any]], None]
WATCH_SECONDS = 300  # the server ends a watch after this; it resumes at once
# With missing_ok, what the callback also hears about the resource itself (its object is empty).
MISSING, LISTED = "MISSING", "LISTED"


class Gone(Exception):
    """The watch's resourceVersion is too old: relist."""


class Informer:
    """One kind in one scope (a namespace, or the cluster)."""

    def __init__(self, kube: Kube, url: str, selector: str | None, callback: Callback, name: str,
                 missing_ok: bool = False) -> None:
        self.kube, self.url, self.selector, self.callback, self.name = kube, url, selector, callback, name
        self.missing_ok = missing_ok  # a resource that is not served is reported (type MISSING), not waited for
        self.known: dict[tuple[str, str], str | None] = {}  # (namespace, name) -> uid
        self.synced = asyncio.Event()

    def _query(self, **extra: str) -> dict[str, str]:
        return {**({"labelSelector": self.selector} if self.selector else {}), **extra}

    async def relist(self) -> str:
        items, version = await self.kube.listing(self.url, self._query())
        seen: dict[tuple[str, str], str | None] = {}
        for obj in items:
            meta = obj.get("metadata") or {}
            key = (meta.get("namespace") or "", meta.get("name") or "")
            seen[key] = meta.get("uid")
            if key in self.known and self.known[key] != seen[key]:  # deleted and made again meanwhile
                self._vanished(key, self.known[key])
            self.callback(None, obj)
        for key, uid in self.known.items():
            if key not in seen:  # deleted while we were not watching
                self._vanished(key, uid)
        self.known = seen
        if self.missing_ok:
            self.callback(LISTED, {})
        self.synced.set()
        return version

    def _vanished(self, key: tuple[str, str], uid: str | None) -> None:
        self.callback("DELETED", {"metadata": {"namespace": key[0], "name": key[1], "uid": uid}})

    async def watch(self, since: str) -> str:
        query = self._query(watch="1", resourceVersion=since, allowWatchBookmarks="true",
                            timeoutSeconds=str(WATCH_SECONDS))
        # aclosing: a watch left by an exception (410, a failing callback) closes its connection
        # now, not when the collector finds the generator (perhaps after the loop has closed).
        async with contextlib.aclosing(self.kube.stream(self.url, query, read_timeout=WATCH_SECONDS + 30)) as lines:
            async for line in lines:
                since = self._event(line, since)
        return since

    def _event(self, line: bytes, since: str) -> str:
        """One watch event: the stores told, the resourceVersion to resume from returned."""
        event = json.loads(line)
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise Gone()
            raise ApiError(int(obj.get("code") or 0), str(obj.get("message")))
        meta = obj.get("metadata") or {}
        since = str(meta.get("resourceVersion") or since)
        if kind == "BOOKMARK":
            return since
        key = (meta.get("namespace") or "", meta.get("name") or "")
        if kind == "DELETED":
            self.known.pop(key, None)
        else:
            self.known[key] = meta.get("uid")
        self.callback(kind, obj)
        return since

    async def run(self) -> None:
        since, failures = "", 0
        loop = asyncio.get_running_loop()
        while True:
            try:
                if not since:
                    since = await self.relist()
                started = loop.time()
                since = await self.watch(since)
                if loop.time() - started < 1.0:  # ended at once (a proxy?): do not spin
                    failures += 1
                    await asyncio.sleep(QUICK_END.delay(failures))  # not a synchronisation
                else:
                    failures = 0
            except Gone:
                since = ""
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 (the API erred, or a stream broke: relist after a pause)
                if isinstance(exc, ApiError) and exc.status == 410:
                    since = ""  # Gone, answered as a status rather than in the stream
                    continue
                failures += 1
                if self.missing_ok and isinstance(exc, ApiError) and exc.status == 404:
                    self.callback(MISSING, {})
                    self.synced.set()
                delay = RELIST.delay(failures, exc)
                logger.warning("watching %s: %s; again in %.1fs", self.name, exc, delay)
                since = ""
                await asyncio.sleep(delay)  # backoff before the relist, not a synchronisation
