"""The Deployment that runs httpd: a hardened base, then one small `setup_*` step per feature.

Each step reads the (immutable) site spec and fills in its part of the Deployment being built;
a step whose field is absent leaves the Deployment as it is.
"""

from __future__ import annotations

import copy
import hashlib
from typing import Any

from httpd_operator.render.backup import restore_container
from httpd_operator.render.config import setup_config
from httpd_operator.render.exporter import setup_exporter
from httpd_operator.render.meta import LABEL_CLAIM, LABEL_INSTANCE, labels, metadata, selector_labels
from httpd_operator.render.mpm import mpm_env
from httpd_operator.render.volumes import (
    VOLUME_NAME,
    ResolvedVolume,
    content_mount,
    seed_container,
)
from httpd_operator.settings import HTTPD_UID, SCRATCH_PATHS, Settings
from httpd_operator.spec import SiteSpec
from httpd_operator.spec_features import Probe

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


POD_SECURITY: dict[str, Any] = {
    "runAsNonRoot": True,
    "runAsUser": HTTPD_UID,
    "runAsGroup": HTTPD_UID,
    # Makes a fresh volume writable by the httpd group; cheap on large volumes.
    "fsGroup": HTTPD_UID,
    "fsGroupChangePolicy": "OnRootMismatch",
    "seccompProfile": {"type": "RuntimeDefault"},
}


# A pod being deleted leaves its Service's endpoints a moment later (the endpoints controller,
# then every node's proxy); httpd's graceful stop closes its listener at once. Found on real pods
# during a rolling update: connections refused by the terminating pod. So it keeps serving this
# long before the stop signal, then finishes the requests in flight (SIGWINCH, the image's
# STOPSIGNAL) within the grace period. The image needs `sleep` (the project's image has it).
DRAIN_SECONDS = 5
GRACE_SECONDS = 30


def base_deployment(site: SiteSpec) -> dict[str, Any]:
    container: dict[str, Any] = {
        "name": "httpd",
        "image": site.image,
        "ports": [{"name": "http", "containerPort": site.port, "protocol": "TCP"}],
        "env": [{"name": "HTTPD_PORT", "value": str(site.port)}],
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(DRAIN_SECONDS)]}}},
        "securityContext": copy.deepcopy(CONTAINER_SECURITY),
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
                    "terminationGracePeriodSeconds": GRACE_SECONDS,
                    "enableServiceLinks": False,
                    "securityContext": copy.deepcopy(POD_SECURITY),
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
    restore = restore_container(site, resolved, CONTAINER_SECURITY)
    seed = seed_container(site, resolved, site.image, CONTAINER_SECURITY)
    init = [c for c in (restore[0] if restore else None, seed) if c is not None]
    if init:
        pod["initContainers"] = init  # restore first: the seed then finds the volume full
    if restore:
        pod["volumes"].append(restore[1])
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


def setup_spreading(site: SiteSpec, resolved: ResolvedVolume, deployment: dict[str, Any]) -> None:
    """Replicas whose volume any node can mount (ReadWriteMany, NFS, Ephemeral) prefer distinct
    nodes, so that one node's loss takes only its share; a preference, never a reason to stay
    Pending. The user's own affinity, if any, replaces it (setup_scheduling)."""
    if resolved.colocate or resolved.single_pod:
        return
    term = {"labelSelector": {"matchLabels": {LABEL_INSTANCE: site.name}}, "topologyKey": "kubernetes.io/hostname"}
    _pod(deployment).setdefault("affinity", {})["podAntiAffinity"] = {
        "preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": term}]}


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
    """The resources, and httpd's processes and threads sized to them (render/mpm.py)."""
    container = _pod(deployment)["containers"][0]
    if site.resources:
        container["resources"] = copy.deepcopy(dict(site.resources))
    container["env"] += mpm_env(site.resources)


def setup_pod_annotations(site: SiteSpec, deployment: dict[str, Any]) -> None:
    if site.pod_annotations:
        deployment["spec"]["template"]["metadata"]["annotations"] = dict(site.pod_annotations)


def _probe(probe: Probe) -> dict[str, Any]:
    out: dict[str, Any] = {"httpGet": {"path": probe.path, "port": "http"}, "periodSeconds": probe.period_seconds,
                           "timeoutSeconds": probe.timeout_seconds, "failureThreshold": probe.failure_threshold}
    if probe.initial_delay_seconds:
        out["initialDelaySeconds"] = probe.initial_delay_seconds
    return out


def setup_probes(site: SiteSpec, deployment: dict[str, Any]) -> None:
    """Readiness gates traffic (and rollouts: a config httpd rejects never becomes ready);
    liveness restarts a hung httpd. Both on the image's /healthz unless the spec says otherwise."""
    container = _pod(deployment)["containers"][0]
    container["readinessProbe"] = _probe(site.probes.readiness)
    container["livenessProbe"] = _probe(site.probes.liveness)


def render_deployment(site: SiteSpec, resolved: ResolvedVolume, config_map: dict[str, Any] | None = None,
                      settings: Settings = Settings()) -> dict[str, Any]:  # noqa: B008 (frozen)
    deployment = base_deployment(site)
    setup_probes(site, deployment)
    setup_volume(site, resolved, deployment)
    setup_colocation(resolved, deployment)
    setup_spreading(site, resolved, deployment)
    setup_scheduling(site, deployment)
    setup_resources(site, deployment)
    setup_pod_annotations(site, deployment)
    setup_config(site, config_map, deployment)
    setup_exporter(site, settings.exporter_image, CONTAINER_SECURITY, deployment)
    return deployment
