"""The Deployment that runs httpd: a hardened base, then one small `setup_*` step per feature.

Each step reads the (immutable) site spec and fills in its part of the Deployment being built;
a step whose field is absent leaves the Deployment as it is.
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any

from httpd_operator.render.meta import LABEL_CLAIM, labels, metadata, selector_labels
from httpd_operator.render.volumes import (
    VOLUME_NAME,
    ResolvedVolume,
    content_mount,
    seed_container,
)
from httpd_operator.settings import HTTPD_UID, SCRATCH_PATHS
from httpd_operator.spec import SiteSpec

# Every path httpd writes is a small emptyDir: the image's own layers are never written to.
SCRATCH_DIRS = dict(zip(("run", "logs", "tmp"), SCRATCH_PATHS, strict=True))

CONTAINER_SECURITY: dict[str, Any] = {
    "runAsNonRoot": True,
    "runAsUser": HTTPD_UID,
    "runAsGroup": HTTPD_UID,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def base_deployment(site: SiteSpec) -> dict[str, Any]:
    def probe(failures: int) -> dict[str, Any]:
        return {"httpGet": {"path": "/healthz", "port": "http"}, "periodSeconds": 10,
                "failureThreshold": failures}

    container: dict[str, Any] = {
        "name": "httpd",
        "image": site.image,
        "ports": [{"name": "http", "containerPort": site.port, "protocol": "TCP"}],
        "env": [{"name": "HTTPD_PORT", "value": str(site.port)}],
        "securityContext": copy.deepcopy(CONTAINER_SECURITY),
        "readinessProbe": probe(3),
        "livenessProbe": probe(6),
        "volumeMounts": [{"name": name, "mountPath": path} for name, path in SCRATCH_DIRS.items()],
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(site, site.name),
        "spec": {
            "replicas": site.replicas,
            "selector": {"matchLabels": selector_labels(site.name)},
            # Old pods keep serving until new ones are ready (a bad config never takes a site down).
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": labels(site.name)},
                "spec": {
                    "automountServiceAccountToken": False,
                    "enableServiceLinks": False,
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": HTTPD_UID,
                        "runAsGroup": HTTPD_UID,
                        # Makes a fresh volume writable by the httpd group; cheap on large volumes.
                        "fsGroup": HTTPD_UID,
                        "fsGroupChangePolicy": "OnRootMismatch",
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [container],
                    "volumes": [{"name": name, "emptyDir": {"sizeLimit": "64Mi"}}
                                for name in SCRATCH_DIRS],
                },
            },
        },
    }


def _pod(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]


def setup_volume(site: SiteSpec, resolved: ResolvedVolume, deployment: dict[str, Any]) -> None:
    pod = _pod(deployment)
    pod["volumes"].insert(0, {"name": VOLUME_NAME, **copy.deepcopy(dict(resolved.source))})
    pod["containers"][0]["volumeMounts"].insert(0, content_mount(site, resolved))
    seed = seed_container(site, resolved, site.image, CONTAINER_SECURITY)
    if seed is not None:
        pod["initContainers"] = [seed]
    if resolved.single_pod:
        # ReadWriteOncePod: a surge pod could never mount the claim, so replace instead.
        deployment["spec"]["strategy"] = {"type": "Recreate"}


def setup_colocation(resolved: ResolvedVolume, deployment: dict[str, Any]) -> None:
    """Pods sharing a node-bound volume (ReadWriteOnce, host path) must run on one node."""
    if not resolved.colocate:
        return
    key = resolved.claim or ""
    if not key or len(key) > 63:  # label values are at most 63 characters; keep them stable
        key = "vol-" + hashlib.sha256(resolved.description.encode()).hexdigest()[:16]
    deployment["spec"]["template"]["metadata"]["labels"][LABEL_CLAIM] = key
    term = {"labelSelector": {"matchLabels": {LABEL_CLAIM: key}},
            "topologyKey": "kubernetes.io/hostname"}
    affinity = _pod(deployment).setdefault("affinity", {})
    pod_affinity = affinity.setdefault("podAffinity", {})
    pod_affinity.setdefault("requiredDuringSchedulingIgnoredDuringExecution", []).append(term)


def setup_scheduling(site: SiteSpec, deployment: dict[str, Any]) -> None:
    pod = _pod(deployment)
    if site.node_selector:
        pod["nodeSelector"] = dict(site.node_selector)
    if site.tolerations:
        pod["tolerations"] = copy.deepcopy(list(site.tolerations))
    if site.affinity:
        user = copy.deepcopy(dict(site.affinity))
        ours = pod.get("affinity", {})
        for term in ours.get("podAffinity", {}).get("requiredDuringSchedulingIgnoredDuringExecution", []):
            user.setdefault("podAffinity", {}).setdefault(
                "requiredDuringSchedulingIgnoredDuringExecution", []).append(term)
        pod["affinity"] = user


def setup_resources(site: SiteSpec, deployment: dict[str, Any]) -> None:
    if site.resources:
        _pod(deployment)["containers"][0]["resources"] = copy.deepcopy(dict(site.resources))


def setup_pod_annotations(site: SiteSpec, deployment: dict[str, Any]) -> None:
    if site.pod_annotations:
        deployment["spec"]["template"]["metadata"]["annotations"] = dict(site.pod_annotations)


def render_deployment(site: SiteSpec, resolved: ResolvedVolume) -> dict[str, Any]:
    deployment = base_deployment(site)
    setup_volume(site, resolved, deployment)
    setup_colocation(resolved, deployment)
    setup_scheduling(site, deployment)
    setup_resources(site, deployment)
    setup_pod_annotations(site, deployment)
    return deployment
