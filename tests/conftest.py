"""Shared fixtures: the emulated API server, a kubeconfig for it, and the real operator."""

from __future__ import annotations

import asyncio
import copy
import pathlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
import yaml
from polling import eventually  # noqa: F401 (the tests import it from here)

from httpd_operator.connection import Cluster
from httpd_operator.emulator import ApiServer
from httpd_operator.emulator import kubeconfig as emulated_kubeconfig
from httpd_operator.kube import load_configuration
from httpd_operator.runner import OperatorThread
from httpd_operator.settings import Settings

ROOT = pathlib.Path(__file__).resolve().parent.parent
CRD = yaml.safe_load((ROOT / "crds" / "httpdsites.yaml").read_text())
SITES = "httpd.dev/v1alpha1/httpdsites"


def site(name: str, namespace: str = "ns", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "httpd.dev/v1alpha1", "kind": "HttpdSite",
            "metadata": {"name": name, "namespace": namespace}, "spec": copy.deepcopy(spec)}


class Api:
    """The emulated API server and an HTTP client of it (what kubectl would do)."""

    def __init__(self, server: ApiServer, url: str, kubeconfig: pathlib.Path) -> None:
        self.server, self.url, self.kubeconfig = server, url, kubeconfig

    def configuration(self) -> Cluster:
        return load_configuration(str(self.kubeconfig))

    async def request(self, method: str, path: str, body: Any = None,
                      content_type: str = "application/merge-patch+json") -> Any:
        client = self.server.servers[0].client
        headers = {"Content-Type": content_type if method == "PATCH" else "application/json"}
        async with client.request(method, path, json=body, headers=headers) as response:
            data = await response.json()
            if response.status >= 400:
                raise AssertionError(f"{method} {path}: {response.status} {data}")
            return data

    async def create_site(self, body: dict[str, Any]) -> dict[str, Any]:
        ns = body["metadata"]["namespace"]
        return await self.request("POST", f"/apis/httpd.dev/v1alpha1/namespaces/{ns}/httpdsites", body)

    async def patch_site(self, ns: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return await self.request("PATCH", f"/apis/httpd.dev/v1alpha1/namespaces/{ns}/httpdsites/{name}", patch)

    async def delete(self, path: str) -> Any:
        return await self.request("DELETE", path)

    def get(self, resource: str, ns: str | None, name: str) -> dict[str, Any] | None:
        return self.server.get(resource, ns, name)

    def site_status(self, ns: str, name: str) -> dict[str, Any]:
        return (self.get(SITES, ns, name) or {}).get("status") or {}

    def writes(self) -> list[tuple[str, str]]:
        """Every write the server has received, as (METHOD, path)."""
        return [(r.method.value, r.url.path) for r in self.server._requests
                if r.method.value in ("POST", "PUT", "PATCH", "DELETE")]


@pytest.fixture
async def api(tmp_path: pathlib.Path) -> AsyncIterator[Api]:
    server = ApiServer(controllers=True)
    server.load_builtin()
    server.register_crd(CRD)
    async with server.running() as url:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump(emulated_kubeconfig(url)))
        yield Api(server, url, kubeconfig)


@pytest.fixture
async def operator(api: Api) -> AsyncIterator[Callable[..., Awaitable[OperatorThread]]]:
    """Start the real operator (kopf, HTTP) against the emulated API; stopped at the end."""
    running: list[OperatorThread] = []

    async def start(settings: Settings | None = None, namespaces: tuple[str, ...] = ()) -> OperatorThread:
        thread = OperatorThread(settings or Settings(), api.configuration(), namespaces)
        await asyncio.to_thread(thread.start)
        running.append(thread)
        return thread

    async def stop(thread: OperatorThread) -> None:
        running.remove(thread)
        await asyncio.to_thread(thread.stop)

    start.stop = stop  # type: ignore[attr-defined]
    yield start
    for thread in running:
        await asyncio.to_thread(thread.stop)


# The Prometheus operator's ServiceMonitor CRD, as far as the emulator needs it (an add-on:
# the operator writes ServiceMonitors only where the cluster serves them).
SERVICE_MONITOR_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
    "spec": {"group": "monitoring.coreos.com", "scope": "Namespaced",
             "names": {"kind": "ServiceMonitor", "plural": "servicemonitors", "singular": "servicemonitor",
                       "listKind": "ServiceMonitorList"},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "schema": {"openAPIV3Schema": {"type": "object",
                                                          "x-kubernetes-preserve-unknown-fields": True}}}]},
}
