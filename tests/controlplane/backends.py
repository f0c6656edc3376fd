"""Two backends for the same scenarios: the emulated API server and the real control plane.

Both run the real operator (kopf, in a thread of the test process) over HTTP. On the real
control plane it authenticates as the `httpd-operator` ServiceAccount bound to the shipped
ClusterRole (manifests/base/rbac.yaml), not as an admin, so a missing permission fails the test.
Where the two disagree the real one is right, and the emulator is what gets fixed.
"""

from __future__ import annotations

import asyncio
import pathlib
import subprocess
from typing import Any

import yaml

from httpd_operator.connection import Cluster
from httpd_operator.kube import ApiError, Kube, load_configuration
from httpd_operator.runner import OperatorThread
from httpd_operator.settings import Settings

ROOT = pathlib.Path(__file__).resolve().parents[2]
OPERATOR_USER = "system:serviceaccount:httpd-operator:httpd-operator"
# The host-path provisioner's class, as hack/control-plane makes it; the emulator gets the same.
STORAGE_CLASS = {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                 "metadata": {"name": "standard",
                              "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
                 "provisioner": "kubernetes.io/host-path", "reclaimPolicy": "Delete"}
PATHS = {
    "HttpdSite": "/apis/httpd.dev/v1alpha1/namespaces/{ns}/httpdsites",
    "PersistentVolumeClaim": "/api/v1/namespaces/{ns}/persistentvolumeclaims",
    "Deployment": "/apis/apps/v1/namespaces/{ns}/deployments",
    "Service": "/api/v1/namespaces/{ns}/services",
    "PodDisruptionBudget": "/apis/{policy}/namespaces/{ns}/poddisruptionbudgets",
    "ConfigMap": "/api/v1/namespaces/{ns}/configmaps",
    "Ingress": "/apis/networking.k8s.io/v1/namespaces/{ns}/ingresses",
    "HorizontalPodAutoscaler": "/apis/{autoscaling}/namespaces/{ns}/horizontalpodautoscalers",
    "CronJob": "/apis/{batch}/namespaces/{ns}/cronjobs",
}


class Backend:
    """What a scenario needs: a namespace, an admin client, the operator, and its writes."""

    name: str
    pods_run = False   # neither backend runs pods: on the real one they stay Pending (no kubelet)
    timeout = 20.0

    def __init__(self, namespace: str, admin: Kube, operator_config: Cluster) -> None:
        self.namespace, self.admin, self.operator_config = namespace, admin, operator_config
        self.operator: OperatorThread | None = None

    # -- objects --------------------------------------------------------------------------------

    policy = "policy/v1"  # the newest served version of PodDisruptionBudget
    autoscaling = "autoscaling/v2"
    batch = "batch/v1"  # of CronJob

    def _url(self, kind: str, name: str | None = None, sub: str | None = None) -> str:
        url = PATHS[kind].format(ns=self.namespace, policy=self.policy, autoscaling=self.autoscaling,
                                 batch=self.batch)
        return "/".join(p for p in (url, name, sub) if p)

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self.admin.call("POST", self._url(body["kind"]), body)

    async def try_create(self, body: dict[str, Any]) -> ApiError | None:
        try:
            await self.create(body)
        except ApiError as exc:
            return exc
        return None

    async def patch(self, kind: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        return await self.admin.call("PATCH", self._url(kind, name), patch, "application/merge-patch+json")

    async def delete(self, kind: str, name: str) -> None:
        await self.admin.call("DELETE", self._url(kind, name), {"propagationPolicy": "Background"})

    async def get(self, kind: str, name: str) -> dict[str, Any] | None:
        try:
            return await self.admin.call("GET", self._url(kind, name))
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    async def get_volume(self, name: str) -> dict[str, Any]:
        return await self.admin.call("GET", f"/api/v1/persistentvolumes/{name}")

    async def status(self, name: str) -> dict[str, Any]:
        return ((await self.get("HttpdSite", name)) or {}).get("status") or {}

    async def events(self, name: str) -> list[dict[str, Any]]:
        items = (await self.admin.call("GET", f"/api/v1/namespaces/{self.namespace}/events"))["items"]
        return [e for e in items if e["involvedObject"].get("name") == name]

    # -- the operator ---------------------------------------------------------------------------

    async def start_operator(self, settings: Settings | None = None) -> OperatorThread:
        """Cluster-wide, as the shipped manifests run it (serving given namespaces, kopf also lists
        namespaces, which the cluster-wide ClusterRole does not grant)."""
        self.operator = OperatorThread(settings or Settings(), self.operator_config)
        await asyncio.to_thread(self.operator.start)
        return self.operator

    async def stop_operator(self) -> None:
        if self.operator is not None:
            operator, self.operator = self.operator, None
            await asyncio.to_thread(operator.stop)

    def mark(self) -> int:
        raise NotImplementedError

    def operator_writes(self, since: int) -> list[str]:
        """The operator's writes since `mark()`, as "VERB path" strings."""
        raise NotImplementedError


class EmulatedBackend(Backend):
    name = "emulator"

    def __init__(self, server: Any, namespace: str, admin: Kube, config: Cluster) -> None:
        super().__init__(namespace, admin, config)
        self.server = server

    def mark(self) -> int:
        return len(self.server._requests)

    def operator_writes(self, since: int) -> list[str]:
        return [f"{r.method.value} {r.url.path}" for r in self.server._requests[since:]
                if r.method.value in ("POST", "PUT", "PATCH", "DELETE")
                and r.headers.get("User-Agent", "").startswith("httpd-operator/")]


class RealBackend(Backend):
    name = "real"
    timeout = 60.0
    policy = "policy/v1beta1"  # Kubernetes 1.20 serves no policy/v1,
    autoscaling = "autoscaling/v2beta2"  # no autoscaling/v2,
    batch = "batch/v1beta1"  # and CronJob only in batch/v1beta1

    def __init__(self, control_plane: Any, namespace: str, admin: Kube,
                 config: Cluster) -> None:
        super().__init__(namespace, admin, config)
        self.audit = control_plane.audit_log

    def mark(self) -> int:
        return self.audit.mark()

    def operator_writes(self, since: int) -> list[str]:
        return [f"{e['verb']} {e['requestURI']}" for e in self.audit.writes(OPERATOR_USER, since=since)
                if (e.get("objectRef") or {}).get("resource") != "events"
                and (e.get("objectRef") or {}).get("namespace") in (self.namespace, None)]


def operator_identity(control_plane: Any, api_client: Any, folder: pathlib.Path) -> Cluster:
    """Install the shipped RBAC and return a configuration authenticating as the operator's
    ServiceAccount (its token from the Secret Kubernetes 1.20 makes for it)."""
    files = [ROOT / "manifests" / "base" / "namespace.yaml", ROOT / "manifests" / "base" / "rbac.yaml",
             ROOT / "crds" / "httpdsites.yaml", ROOT / "crds" / "peering.yaml"]
    subprocess.run([str(control_plane.kubectl), "apply", *(a for f in files for a in ("-f", str(f)))],
                   env=control_plane.env(), check=True, capture_output=True)
    token = control_plane.service_account_token(api_client, "httpd-operator", "httpd-operator")
    return load_configuration(str(control_plane.kubeconfig_for_token(token, folder / "operator.kubeconfig")))


def storage_class() -> dict[str, Any]:
    return yaml.safe_load(yaml.safe_dump(STORAGE_CLASS))
