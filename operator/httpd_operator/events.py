"""Kubernetes Events about a site (core/v1, what `kubectl describe httpdsite` lists), posted in the
background by the operator's own client: a reconcile never waits for an event, nor fails on one.

kopf's poster did this before; through kopf's own client and queue an event cost the operator
about twice a request of its own (`bench/`), and needed kopf's handler context to be posted.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Mapping
from typing import Any

from httpd_operator.kube import ApiError, Kube, path
from httpd_operator.retry import EVENT

logger = logging.getLogger("httpd_operator.events")
COMPONENT = "httpd-operator"
MAX_MESSAGE = 1024  # longer messages are cut in the middle (kube-apiserver refuses some)
ATTEMPTS = 4


def event(obj: Mapping[str, Any], type_: str, reason: str, message: str,
          now: datetime.datetime | None = None) -> dict[str, Any]:
    """The Event object for `obj` (a site), as kopf and kubectl's recorders shape it."""
    meta = obj.get("metadata") or {}
    if len(message) > MAX_MESSAGE:
        half = (MAX_MESSAGE - 3) // 2
        message = f"{message[:half]}...{message[-half:]}"
    stamp = (now or datetime.datetime.now(datetime.UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"namespace": meta.get("namespace"), "generateName": f"{str(meta.get('name'))[:57]}."},
        "involvedObject": {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"),
                           "name": meta.get("name"), "namespace": meta.get("namespace"), "uid": meta.get("uid")},
        "type": type_, "reason": reason, "message": message, "action": reason,
        "source": {"component": COMPONENT}, "reportingComponent": COMPONENT, "reportingInstance": COMPONENT,
        "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
    }


class Events:
    """Posts events in tasks of their own, retried a few times with backoff, then given up
    (logged): an event is a courtesy to the user, the status is the record."""

    def __init__(self, kube: Kube) -> None:
        self.kube = kube
        self._tasks: set[asyncio.Task[None]] = set()

    def post(self, obj: Mapping[str, Any], type_: str, reason: str, message: str) -> None:
        task = asyncio.get_running_loop().create_task(self._send(event(obj, type_, reason, message)))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def info(self, obj: Mapping[str, Any], reason: str, message: str) -> None:
        self.post(obj, "Normal", reason, message)

    def warn(self, obj: Mapping[str, Any], reason: str, message: str) -> None:
        self.post(obj, "Warning", reason, message)

    async def _send(self, body: dict[str, Any]) -> None:
        for attempt in range(ATTEMPTS):
            try:
                await self.kube.call("POST", path("Event", body["metadata"]["namespace"]), body)
                return
            except ApiError as exc:
                if exc.status in (400, 403, 404, 422) or attempt == ATTEMPTS - 1:
                    logger.warning("event %s for %s/%s not posted: %s", body["reason"],
                                   body["metadata"]["namespace"], body["involvedObject"]["name"], exc)
                    return
                await asyncio.sleep(EVENT.delay(attempt + 1, exc))  # not a synchronisation

    async def close(self) -> None:
        """Let the events under way finish (briefly), at shutdown."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=5)
