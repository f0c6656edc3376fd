"""A thin, generic Kubernetes client: paths from kinds, JSON in and out, errors as values.

It rides on the official `kubernetes` client for configuration (kubeconfig, in-cluster, tokens,
TLS) and runs its blocking calls in threads, so kopf's event loop keeps serving watches.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import kubernetes

from httpd_operator import GROUP, PLURAL, VERSION


@dataclass(frozen=True)
class Kind:
    prefix: str      # "/api/v1" or "/apis/apps/v1"
    plural: str
    namespaced: bool = True


KINDS: dict[str, Kind] = {
    "PersistentVolumeClaim": Kind("/api/v1", "persistentvolumeclaims"),
    "PersistentVolume": Kind("/api/v1", "persistentvolumes", namespaced=False),
    "Service": Kind("/api/v1", "services"),
    "Deployment": Kind("/apis/apps/v1", "deployments"),
    "HttpdSite": Kind(f"/apis/{GROUP}/{VERSION}", PLURAL),
    "PodDisruptionBudget": Kind("/apis/policy/v1", "poddisruptionbudgets"),
    "ConfigMap": Kind("/api/v1", "configmaps"),
    "Ingress": Kind("/apis/networking.k8s.io/v1", "ingresses"),
    "HorizontalPodAutoscaler": Kind("/apis/autoscaling/v2", "horizontalpodautoscalers"),
    "CronJob": Kind("/apis/batch/v1", "cronjobs"),
    "Job": Kind("/apis/batch/v1", "jobs"),
    "Pod": Kind("/api/v1", "pods"),
    "ServiceMonitor": Kind("/apis/monitoring.coreos.com/v1", "servicemonitors"),
}
# Kinds whose API version differs across Kubernetes releases: the newest first.
VERSIONED = {"PodDisruptionBudget": ("policy", ("v1", "v1beta1")),
             "HorizontalPodAutoscaler": ("autoscaling", ("v2", "v2beta2")),
             "CronJob": ("batch", ("v1", "v1beta1")),
             "ServiceMonitor": ("monitoring.coreos.com", ("v1",))}
# Kinds of add-ons (CRDs) that a cluster may not have: used only when served.
ADD_ONS = frozenset({"ServiceMonitor"})


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
    prefix = k.prefix if api_version is None else ("/api/v1" if api_version == "v1" else f"/apis/{api_version}")
    parts = [prefix]
    if k.namespaced and namespace:
        parts.append(f"namespaces/{namespace}")
    parts.append(k.plural)
    if name:
        parts.append(name)
    if sub:
        parts.append(sub)
    return "/".join(parts)


class Kube:
    """Blocking calls through `kubernetes.client.ApiClient`, offered as coroutines."""

    def __init__(self, configuration: kubernetes.client.Configuration, timeout: float = 30.0) -> None:
        self.configuration = configuration
        self.timeout = timeout  # seconds for one request; a hung server is then retried like a 503
        self.api = kubernetes.client.ApiClient(configuration)

    def close(self) -> None:
        self.api.close()

    def _call(self, method: str, url: str, body: Any = None, content_type: str | None = None,
              query: Mapping[str, str] | None = None) -> Any:
        headers = {"Accept": "application/json"}
        if content_type:
            headers["Content-Type"] = content_type
        try:
            method, full_url, headers, body, _ = self.api.param_serialize(
                method, url, query_params=list((query or {}).items()), header_params=headers,
                body=body, auth_settings=["BearerToken"])
            response = self.api.call_api(method, full_url, header_params=headers, body=body,
                                         _request_timeout=self.timeout)
            response.read()
        except kubernetes.client.ApiException as exc:
            raise ApiError(exc.status or 0, exc.reason or str(exc)) from None
        except Exception as exc:  # connection refused, reset, timeout: retried like a 503
            raise ApiError(0, f"{type(exc).__name__}: {exc}") from None
        try:
            data = json.loads(response.data) if response.data else None
        except ValueError:  # e.g. "404 page not found" as text, for a group the server lacks
            data = None
        if response.status >= 400:
            message = data.get("message") if isinstance(data, dict) else None
            retry = response.getheader("Retry-After")
            raise ApiError(response.status, message or str(response.reason), float(retry) if retry else None)
        return data

    async def call(self, method: str, url: str, body: Any = None, content_type: str | None = None,
                   query: Mapping[str, str] | None = None) -> Any:
        return await asyncio.to_thread(self._call, method, url, body, content_type, query)

    async def get(self, kind: str, namespace: str | None, name: str,
                  api_version: str | None = None) -> dict[str, Any] | None:
        try:
            return await self.call("GET", path(kind, namespace, name, api_version=api_version))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def list(self, kind: str, namespace: str | None, label_selector: str | None = None) -> list[dict[str, Any]]:
        query = {"labelSelector": label_selector} if label_selector else None
        return (await self.call("GET", path(kind, namespace), query=query) or {}).get("items") or []

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


def discover_versions(kube: Kube) -> tuple[tuple[str, str], ...]:
    """The newest version serving each kind in VERSIONED (e.g. policy/v1beta1 on 1.20); add-ons
    (ServiceMonitor) only when the cluster has them.

    Asks each group-version for its resources: batch/v1 exists on 1.20, but CronJob is only
    in batch/v1beta1 there."""
    found = []
    for kind, (group, versions) in VERSIONED.items():
        chosen = None if kind in ADD_ONS else versions[0]
        for version in versions:
            try:
                resources = kube._call("GET", f"/apis/{group}/{version}").get("resources", [])
            except ApiError:
                continue
            if any(r.get("name") == KINDS[kind].plural for r in resources):
                chosen = version
                break
        if chosen:
            found.append((kind, f"{group}/{chosen}"))
    return tuple(found)


def load_configuration(kubeconfig: str | None = None, context: str | None = None
                       ) -> kubernetes.client.Configuration:
    """The cluster to talk to: a kubeconfig if given or found, else the in-cluster service account."""
    configuration = kubernetes.client.Configuration()
    try:
        kubernetes.config.load_kube_config(config_file=kubeconfig, context=context,
                                           client_configuration=configuration)
    except kubernetes.config.ConfigException:
        if kubeconfig:
            raise
        kubernetes.config.load_incluster_config(client_configuration=configuration)
    configuration.connection_pool_maxsize = 32
    return configuration
