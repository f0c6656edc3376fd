"""The kopf side: watches feed indexes, and every event about a site or its children kicks it.

Only event handlers and indexes are used: kopf then writes no finalizers and no annotations of
its own, so the operator's writes are exactly the children, the status and events.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from httpd_operator import GROUP, PLURAL, VERSION
from httpd_operator.connection import Cluster
from httpd_operator.kube import Kube
from httpd_operator.metrics import Metrics
from httpd_operator.packed import Packed
from httpd_operator.reconcile import INDEXES, Engine
from httpd_operator.render.meta import LABEL_INSTANCE, LABEL_MANAGED_BY, MANAGED_BY
from httpd_operator.settings import Settings

MANAGED = {LABEL_MANAGED_BY: MANAGED_BY}


def _volume(body: kopf.Body) -> dict[str, Any]:
    spec = body.get("spec")
    volume = spec.get("volume") if isinstance(spec, dict) else None
    return volume if isinstance(volume, dict) else {}


class _NoDiffBase(kopf.DiffBaseStorage):
    """kopf's change detection, for on.create/update handlers, deep-copies every object on every
    event; with only event handlers and indexes there is nothing for it to detect."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> Any:
        return None

    def fetch(self, *, body: kopf.Body) -> Any:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: Any) -> None:
        return None


def build(settings: Settings, cluster: Cluster,
          debounce: float = 0.1, metrics: Metrics | None = None) -> tuple[kopf.OperatorRegistry, Engine]:
    """A fresh registry with the operator's handlers, and the engine they drive."""
    registry = kopf.OperatorRegistry()
    engine = Engine(settings=settings, kube=Kube(cluster, settings.request_timeout), debounce=debounce,
                    metrics=metrics)
    site_resource = (GROUP, VERSION, PLURAL)

    async def by_name(namespace: str, name: str, body: kopf.Body, **_: Any) -> Any:
        """Every watched site and child, by namespace and name, packed (see `packed.py`)."""
        return {(namespace, name): Packed(body)}

    def remember_indexes(kwargs: dict[str, Any]) -> None:
        for name in INDEXES:
            if name in kwargs:  # "monitors" exists only where the cluster serves ServiceMonitor
                engine.indexes.setdefault(name, kwargs[name])

    @kopf.on.startup(registry=registry)
    def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.posting.level = logging.INFO
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        settings.networking.request_timeout = 60
        settings.execution.max_workers = 16
        # A watched object's worker (a task and a queue) lingers this long after its last event
        # (kopf's default 5 s): at thousands of objects created at once, that is the RSS peak.
        settings.queueing.idle_timeout = 1.0
        settings.persistence.diffbase_storage = _NoDiffBase()

    @kopf.on.cleanup(registry=registry)
    async def close(**_: Any) -> None:
        await engine.kube.aclose()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return cluster.connection_info()  # type: ignore[no-any-return]

    kopf.index(*site_resource, id="sites", registry=registry)(by_name)
    kopf.index("persistentvolumeclaims", id="claims", registry=registry)(by_name)
    kopf.index("apps", "v1", "deployments", labels=MANAGED, id="deployments", registry=registry)(by_name)
    kopf.index("v1", "services", labels=MANAGED, id="services", registry=registry)(by_name)

    @kopf.on.event(*site_resource, id="site", registry=registry)
    async def site_event(type: str | None, body: kopf.Body, namespace: str, name: str, **kwargs: Any) -> None:
        remember_indexes(kwargs)
        volume = _volume(body) if type != "DELETED" else {}
        engine.links.update((namespace, name), volume.get("fromSite"), volume.get("claimName"))
        if type == "DELETED":
            engine.forget("HttpdSite", namespace, name, body.get("metadata", {}).get("uid"))
        else:
            engine.kick((namespace, name))
        for dependent in engine.links.sharers_of(namespace, name):
            engine.kick((namespace, dependent))

    def child_event(kind: str) -> Any:
        async def handler(type: str | None, body: kopf.Body, namespace: str, name: str,
                          labels: Any, **kwargs: Any) -> None:
            remember_indexes(kwargs)
            if type == "DELETED":
                engine.forget(kind, namespace, name, body.get("metadata", {}).get("uid"))
            if labels.get(LABEL_MANAGED_BY) == MANAGED_BY and labels.get(LABEL_INSTANCE):
                engine.kick((namespace, labels[LABEL_INSTANCE]))
            if kind == "PersistentVolumeClaim":
                for user in engine.links.claim_users_of(namespace, name):
                    engine.kick((namespace, user))
        return handler

    kopf.on.event("persistentvolumeclaims", id="claim", registry=registry)(child_event("PersistentVolumeClaim"))
    kopf.on.event("apps", "v1", "deployments", labels=MANAGED, id="deployment",
                  registry=registry)(child_event("Deployment"))
    kopf.on.event("v1", "services", labels=MANAGED, id="service", registry=registry)(child_event("Service"))

    def group_version(kind: str) -> tuple[str, str]:
        group, _, version = settings.api_version(kind).partition("/")
        return group, version

    # Optional children (in the API version the server serves, the one the operator writes).
    children = {"budgets": ("PodDisruptionBudget", (*group_version("PodDisruptionBudget"), "poddisruptionbudgets")),
                "configmaps": ("ConfigMap", ("v1", "configmaps")),
                "ingresses": ("Ingress", ("networking.k8s.io", "v1", "ingresses")),
                "autoscalers": ("HorizontalPodAutoscaler",
                                (*group_version("HorizontalPodAutoscaler"), "horizontalpodautoscalers")),
                "cronjobs": ("CronJob", (*group_version("CronJob"), "cronjobs"))}
    if settings.serves("ServiceMonitor"):
        children["monitors"] = ("ServiceMonitor", (*group_version("ServiceMonitor"), "servicemonitors"))
    for index_name, (kind, resource) in children.items():
        kopf.index(*resource, labels=MANAGED, id=index_name, registry=registry)(by_name)
        kopf.on.event(*resource, labels=MANAGED, id=kind.lower(), registry=registry)(child_event(kind))

    @kopf.index("batch", "v1", "jobs", labels=MANAGED, id="jobs", registry=registry)
    async def jobs(namespace: str, name: str, body: kopf.Body, labels: Any, **_: Any) -> Any:
        """Backup Jobs by site: only what status.backup needs."""
        status = body.get("status") or {}
        state = next((c.get("type") for c in status.get("conditions") or []
                      if c.get("type") in ("Complete", "Failed") and c.get("status") == "True"), None)
        return {(namespace, labels.get(LABEL_INSTANCE)): {
            "name": name, "state": state, "completionTime": status.get("completionTime"),
            "startTime": status.get("startTime")}}

    kopf.on.event("batch", "v1", "jobs", labels=MANAGED, id="job", registry=registry)(child_event("Job"))
    return registry, engine
