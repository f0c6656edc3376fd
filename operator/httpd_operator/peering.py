"""Whether kopf's peering has paused this operator, read from the same peering objects.

With `--peering`, kopf stops its watches while another live operator of a higher (or the same)
priority is announced in the peering object. The children's watches are the operator's own
(`informer.py`) and keep the stores fresh while paused; the engine asks this view before each
reconcile, so a paused replica never writes. The rule is kopf's (`kopf/_core/engines/peering.py`):
a peer is alive until `lastseen + lifetime`; peering that is required but whose CRD is missing
pauses too.
"""

from __future__ import annotations

import datetime
import os
import secrets
import socket
from dataclasses import dataclass, field
from typing import Any

from httpd_operator.informer import LISTED, MISSING
from httpd_operator.kube import ApiError, Kube

PEERING_KINDS = {"clusterkopfpeerings": "ClusterKopfPeering", "kopfpeerings": "KopfPeering"}


def own_identity() -> str:
    """The name this replica announces itself with (the pod's name when POD_ID is set, as kopf)."""
    return os.environ.get("POD_ID") or f"httpd-operator@{socket.gethostname()}/{os.getpid()}/{secrets.token_hex(3)}"


@dataclass
class Peering:
    name: str
    priority: int
    identity: str
    missing: bool = False
    _peers: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # object -> its status

    def observe(self, type_: str | None, raw: dict[str, Any]) -> None:
        """An informer callback for the peering objects."""
        if type_ in (MISSING, LISTED):  # whether the peering resource is served at all
            self.missing = type_ == MISSING
            return
        meta = raw.get("metadata") or {}
        if meta.get("name") != self.name:
            return
        key = (meta.get("namespace") or "", meta.get("name") or "")
        if type_ == "DELETED":
            self._peers.pop(key, None)
        else:
            self._peers[key] = raw.get("status") or {}

    def paused(self, now: datetime.datetime | None = None) -> bool:
        if self.missing:
            return True
        now = now or datetime.datetime.now(datetime.UTC)
        for peers in self._peers.values():
            for identity, peer in peers.items():
                if identity == self.identity or not isinstance(peer, dict):
                    continue
                if _deadline(peer, now) > now and _number(peer.get("priority"), 0) >= self.priority:
                    return True
        return False


def _number(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _deadline(peer: dict[str, Any], now: datetime.datetime) -> datetime.datetime:
    """lastseen + lifetime; a peer that never said when it was seen counts as seen now (as kopf)."""
    try:
        seen = datetime.datetime.fromisoformat(str(peer["lastseen"]).replace("Z", "+00:00"))
    except (KeyError, ValueError):
        seen = now
    if seen.tzinfo is None:
        seen = seen.replace(tzinfo=datetime.UTC)
    return seen + datetime.timedelta(seconds=_number(peer.get("lifetime", 60), 60))


async def ensure_peering_object(kube: Kube, url: str, name: str) -> bool:
    """Create the peering object the replicas meet at, unless it exists (True: it does now).

    The manifests cannot carry it: `kubectl apply -k` (and a GitOps tool applying a folder at once)
    refuses a custom resource whose CRD is in the same apply and not yet established. A 404 (the
    CRD is not served yet) is raised, to be retried; a 403 (an RBAC that grants no `create`, with
    the object made by the installer) is not an error.
    """
    plural = url.rstrip("/").rsplit("/", 1)[-1]
    body = {"apiVersion": "kopf.dev/v1", "kind": PEERING_KINDS[plural],
            "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "httpd-operator"}}}
    try:
        await kube.call("POST", url, body)
    except ApiError as exc:
        if exc.status == 409:
            return True
        if exc.status == 403:
            return False
        raise
    return True
