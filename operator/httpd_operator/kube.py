"""A thin, generic Kubernetes client: paths from kinds, JSON in and out, errors as values.

The operator, start-up discovery and the CLI's one-shot commands (`oneshot`) all use it, on the
one transport of `transport.py` (aiohttp, pooled connections, on an event loop: no thread per
request).
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, TypeVar

import aiohttp

from httpd_operator.connection import Cluster, ConfigError, load_cluster
from httpd_operator.kinds import KINDS, prefix
from httpd_operator.retry import retry_after as after
from httpd_operator.transport import USER_AGENT, Transport, unanswered

T = TypeVar("T")


# Derived from the one table of kinds (kinds.py, re-exported here as KINDS).
# Kinds whose API version differs across Kubernetes releases (the newest first), and add-ons:
# the version used is discovered at start.
VERSIONED = {k.name: (k.group, k.versions) for k in KINDS.values() if k.versioned}
# Kinds of add-ons (CRDs) that a cluster may not have: used only when served.
ADD_ONS = frozenset(k.name for k in KINDS.values() if k.add_on)


class ApiError(Exception):
    """A failed API call, with the HTTP status and the server's Status message."""

    def __init__(self, status: int, message: str, retry_after: float | None = None, obj: str | None = None) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message
        self.retry_after = retry_after
        self.object = obj  # "Kind name" of the object written, when known


def path(kind: str, namespace: str | None = None, name: str | None = None, sub: str | None = None,
         api_version: str | None = None) -> str:
    k = KINDS[kind]
    parts = [k.prefix if api_version is None else prefix(api_version)]
    if k.namespaced and namespace:
        parts.append(f"namespaces/{namespace}")
    parts.append(k.plural)
    if name:
        parts.append(name)
    if sub:
        parts.append(sub)
    return "/".join(parts)


class Kube:
    """Requests to one cluster, answered as parsed JSON or raised as `ApiError`."""

    def __init__(self, cluster: Cluster, timeout: float = 30.0, pool: int = 32) -> None:
        self.cluster = cluster
        self.timeout = timeout  # seconds for one request; a hung server is then retried like a 503
        self.transport = Transport(cluster, timeout, pool)

    async def __aenter__(self) -> Kube:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _prepared(self, url: str, body: Any, content_type: str | None, query: Mapping[str, str] | None
                        ) -> tuple[str, bytes | None, dict[str, str]]:
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if body is not None:
            headers["Content-Type"] = content_type or "application/json"
        try:
            await self.cluster.refresh()
            auth = self.cluster.authorization()
        except (OSError, ConfigError) as exc:  # a token file mid-rotation, a failing exec plugin
            raise ApiError(0, f"credentials: {exc}") from None
        if auth:
            headers["Authorization"] = auth
        full = self.cluster.server + url + (f"?{urllib.parse.urlencode(dict(query))}" if query else "")
        return full, (json.dumps(body).encode() if body is not None else None), headers

    def _answer(self, status: int, reason: str, raw: bytes, retry_after: str | None) -> Any:
        try:
            data = json.loads(raw) if raw else None
        except ValueError:  # e.g. "404 page not found" as text, for a group the server lacks
            data = None
        if status >= 400:
            if status == 401:
                self.cluster.expire()  # a rotated token: the retry reads the new one
            message = data.get("message") if isinstance(data, dict) else None
            raise ApiError(status, message or reason, after(retry_after))
        return data

    def _session(self, watch: bool = False) -> aiohttp.ClientSession:
        try:
            return self.transport.watches() if watch else self.transport.session()
        except OSError as exc:  # closed at shutdown; a CA that does not load (ssl.SSLError)
            raise ApiError(0, str(exc)) from None

    async def call(self, method: str, url: str, body: Any = None, content_type: str | None = None,
                   query: Mapping[str, str] | None = None, text: bool = False) -> Any:
        """The answer's JSON (with `text`, its text: a pod's log)."""
        full, data, headers = await self._prepared(url, body, content_type, query)
        try:
            async with self._session().request(method, full, data=data, headers=headers) as response:
                raw = await response.read()
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:  # retried like a 503
            raise ApiError(0, unanswered(exc)) from None
        if text and response.status < 400:
            return raw.decode("utf-8", "replace")
        return self._answer(response.status, response.reason or "", raw, response.headers.get("Retry-After"))

    async def stream(self, url: str, query: Mapping[str, str], read_timeout: float) -> AsyncIterator[bytes]:
        """A watch: the response's lines as they come (each one event)."""
        full, _, headers = await self._prepared(url, None, None, query)
        timeout = aiohttp.ClientTimeout(total=None, connect=self.timeout, sock_read=read_timeout)
        try:
            async with self._session(watch=True).get(full, headers=headers, timeout=timeout) as response:
                if response.status >= 400:
                    self._answer(response.status, response.reason or "", await response.read(),
                                 response.headers.get("Retry-After"))
                async for line in response.content:
                    if line.strip():
                        yield line
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise ApiError(0, unanswered(exc)) from None

    async def aclose(self) -> None:
        await self.transport.aclose()

    async def get(self, kind: str, namespace: str | None, name: str,
                  api_version: str | None = None) -> dict[str, Any] | None:
        try:
            return await self.call("GET", path(kind, namespace, name, api_version=api_version))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def listing(self, url: str, query: Mapping[str, str] | None = None) -> tuple[list[dict[str, Any]], str]:
        """A list's items, each with the kind and apiVersion a list leaves out (watch events and
        GETs carry them), and the list's resourceVersion (where a watch starts)."""
        answer = await self.call("GET", url, query=query) or {}
        kind = str(answer.get("kind") or "").removesuffix("List")
        items = answer.get("items") or []
        for item in items:
            item.setdefault("kind", kind)
            item.setdefault("apiVersion", answer.get("apiVersion"))
        return items, str((answer.get("metadata") or {}).get("resourceVersion") or "")

    async def list(self, kind: str, namespace: str | None, label_selector: str | None = None) -> list[dict[str, Any]]:
        query = {"labelSelector": label_selector} if label_selector else None
        return (await self.listing(path(kind, namespace), query))[0]

    async def log(self, namespace: str, pod: str, container: str, tail: int) -> str | None:
        """The last `tail` lines of a container's log (None: the pod is gone)."""
        try:
            return str(await self.call("GET", path("Pod", namespace, pod, "log"), text=True,
                                       query={"container": container, "tailLines": str(tail)}))
        except ApiError as exc:
            if exc.status in (400, 404):  # gone, or its container not started yet
                return None
            raise

    async def create(self, obj: Mapping[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        try:
            return await self.call("POST", path(obj["kind"], meta.get("namespace"), api_version=obj.get("apiVersion")),
                                   body=obj)
        except ApiError as exc:
            exc.object = f"{obj['kind']} {meta.get('name')}"
            raise

    async def patch(self, kind: str, namespace: str | None, name: str, patch: Mapping[str, Any],
                    sub: str | None = None, api_version: str | None = None) -> dict[str, Any]:
        try:
            return await self.call("PATCH", path(kind, namespace, name, sub, api_version), body=patch,
                                   content_type="application/merge-patch+json")
        except ApiError as exc:
            exc.object = f"{kind} {name}"
            raise

    async def delete(self, kind: str, namespace: str | None, name: str, api_version: str | None = None) -> None:
        try:
            # Background: dependents (a CronJob's Jobs) go too, whatever the kind's default.
            await self.call("DELETE", path(kind, namespace, name, api_version=api_version),
                            query={"propagationPolicy": "Background"})
        except ApiError as exc:
            if exc.status != 404:
                raise


async def discover_versions(kube: Kube) -> tuple[tuple[str, str], ...]:
    """The newest version serving each kind in VERSIONED (e.g. policy/v1beta1 on 1.20); add-ons
    (ServiceMonitor) only when the cluster has them.

    Asks each group-version for its resources: batch/v1 exists on 1.20, but CronJob is only
    in batch/v1beta1 there."""
    found = []
    for kind, (group, versions) in VERSIONED.items():
        chosen = None if kind in ADD_ONS else versions[0]
        for version in versions:
            try:
                resources = (await kube.call("GET", prefix(f"{group}/{version}")) or {}).get("resources", [])
            except ApiError:
                continue
            if any(r.get("name") == KINDS[kind].plural for r in resources):
                chosen = version
                break
        if chosen:
            found.append((kind, f"{group}/{chosen}"))
    return tuple(found)


def oneshot(cluster: Cluster, work: Callable[[Kube], Awaitable[T]], timeout: float = 30.0) -> T:
    """`work` on a client opened and closed around it, on an event loop of its own: for the CLI's
    commands and start-up, which run before (or without) the operator's loop."""
    async def run() -> T:
        async with Kube(cluster, timeout) as kube:
            return await work(kube)

    return asyncio.run(run())


def call_once(cluster: Cluster, method: str, url: str, body: Any = None, query: Mapping[str, str] | None = None) -> Any:
    """One request on a client of its own (scripts and tests; the operator keeps its client)."""
    return oneshot(cluster, lambda kube: kube.call(method, url, body, query=query))


def load_configuration(kubeconfig: str | None = None, context: str | None = None) -> Cluster:
    """The cluster to talk to: a kubeconfig if given or found, else the in-cluster service account."""
    return load_cluster(kubeconfig, context)
