"""The emulated API server as the suites drive it: a client of it, as kubectl would be."""

from __future__ import annotations

import pathlib
from typing import Any

from httpd_operator import kube
from httpd_operator.connection import Cluster
from httpd_operator.emulator import ApiServer
from httpd_operator.kube import load_configuration
from support.objects import SITES


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
        return await self.request("POST", kube.path("HttpdSite", body["metadata"]["namespace"]), body)

    async def patch_site(self, ns: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return await self.request("PATCH", kube.path("HttpdSite", ns, name), patch)

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
