"""The engine, one concern a module: the queue (scheduling), the store (what was seen), the
memory (per site uid), apply and claims (the writes), and the reconcile (a page). `Engine` only
wires them together for handlers.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from httpd_operator.engine.memory import Memories, SiteKey
from httpd_operator.engine.queue import Queue, Result
from httpd_operator.engine.reconcile import Reconciler
from httpd_operator.engine.store import Links, Store
from httpd_operator.events import Events
from httpd_operator.kinds import KIND, STORED
from httpd_operator.kube import Kube
from httpd_operator.metrics import Metrics
from httpd_operator.peering import Peering
from httpd_operator.settings import Settings

__all__ = ["Engine", "Result"]


class Engine:
    """Per-operator state: settings, the client, the store, the memories and the queue."""

    def __init__(self, settings: Settings, kube: Kube, debounce: float = 0.05, metrics: Metrics | None = None,
                 peering: Peering | None = None, concurrency: int = 64, status_hold: float = 5.0) -> None:
        self.settings, self.kube, self.metrics = settings, kube, metrics
        self.peering = peering  # with --peering: reconcile only while kopf has not paused us
        self.ready = False  # set once every store has been listed (start-up)
        self.store = Store(STORED)
        self.memories = Memories()
        self.events = Events(kube)  # Kubernetes Events, posted in the background
        self.reconciler = Reconciler(settings, kube, self.store, self.memories, self.events, metrics, status_hold)
        self.queue = Queue(self.reconciler.reconcile, debounce=debounce, concurrency=concurrency,
                           gate=self.may_act, metrics=metrics)

    def may_act(self) -> bool:
        """Not while the stores are being filled (the sites' listing kicks them all after), nor
        while another replica acts (handlers.py kicks every site when this one resumes)."""
        return self.ready and not (self.peering is not None and self.peering.paused())

    def kick_all(self) -> None:
        for key in list(self.store.kinds[KIND]):
            self.queue.kick(key)

    @property
    def links(self) -> Links:
        return self.store.links

    @property
    def idle(self) -> bool:
        return self.queue.idle

    @property
    def reconciled(self) -> int:
        return self.queue.reconciled

    def kick(self, key: SiteKey, delay: float | None = None) -> None:
        self.queue.kick(key, delay)

    async def drain(self) -> None:
        await self.queue.drain()

    async def reconcile(self, namespace: str, name: str) -> Result:
        return await self.reconciler.reconcile((namespace, name))

    def observe(self, kind: str, type_: str | None, body: Mapping[str, Any]) -> None:
        """A watch event: into the store; a site's deletion also forgets everything about it."""
        self.store.observe(kind, type_, body)
        if kind == KIND and type_ == "DELETED":
            meta = body.get("metadata") or {}
            key = (meta.get("namespace") or "", meta.get("name") or "")
            self.memories.drop(key, meta.get("uid"))
            if self.metrics:
                self.metrics.phases.pop(key, None)

    def observe_job(self, type_: str | None, body: Mapping[str, Any]) -> None:
        self.store.observe_job(type_, body)
