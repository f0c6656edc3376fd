"""The kopf side: watches feed the engine's stores, and every event about a site or its children
kicks it.

Only event handlers are used: kopf then writes no finalizers and no annotations of its own, so the
operator's writes are exactly the children, the status and events.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import kopf

from httpd_operator import GROUP, PLURAL, VERSION
from httpd_operator.connection import Cluster
from httpd_operator.kube import ApiError, Kube
from httpd_operator.metrics import Metrics
from httpd_operator.reconcile import Engine
from httpd_operator.render.meta import LABEL_INSTANCE, LABEL_MANAGED_BY, MANAGED_BY
from httpd_operator.settings import Settings

MANAGED = {LABEL_MANAGED_BY: MANAGED_BY}


def _volume(body: Mapping[str, Any]) -> dict[str, Any]:
    spec = body.get("spec")
    volume = spec.get("volume") if isinstance(spec, dict) else None
    return volume if isinstance(volume, dict) else {}


class _NoDiffBase(kopf.DiffBaseStorage):
    """kopf's change detection, for on.create/update handlers, deep-copies every object on every
    event; with only event handlers there is nothing for it to detect."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> Any:
        return None

    def fetch(self, *, body: kopf.Body) -> Any:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: Any) -> None:
        return None


def build(settings: Settings, cluster: Cluster, debounce: float = 0.1, metrics: Metrics | None = None,
          namespaces: Sequence[str] = ()) -> tuple[kopf.OperatorRegistry, Engine]:
    """A fresh registry with the operator's handlers, and the engine they drive."""
    registry = kopf.OperatorRegistry()
    engine = Engine(settings=settings, kube=Kube(cluster, settings.request_timeout), debounce=debounce,
                    metrics=metrics)

    def group_version(kind: str) -> tuple[str, str]:
        group, _, version = settings.api_version(kind).partition("/")
        return group, version

    # What is watched: every site, every claim (sites may mount claims they do not own), and the
    # operator's own children (by label), each in the API version the operator writes.
    watched: dict[str, tuple[tuple[str, ...], dict[str, str] | None]] = {
        "HttpdSite": ((GROUP, VERSION, PLURAL), None),
        "PersistentVolumeClaim": (("v1", "persistentvolumeclaims"), None),
        "Deployment": (("apps", "v1", "deployments"), MANAGED),
        "Service": (("v1", "services"), MANAGED),
        "PodDisruptionBudget": ((*group_version("PodDisruptionBudget"), "poddisruptionbudgets"), MANAGED),
        "ConfigMap": (("v1", "configmaps"), MANAGED),
        "Ingress": (("networking.k8s.io", "v1", "ingresses"), MANAGED),
        "HorizontalPodAutoscaler": ((*group_version("HorizontalPodAutoscaler"), "horizontalpodautoscalers"),
                                    MANAGED),
        "CronJob": ((*group_version("CronJob"), "cronjobs"), MANAGED),
        "Job": (("batch", "v1", "jobs"), MANAGED),
    }
    if settings.serves("ServiceMonitor"):
        watched["ServiceMonitor"] = ((*group_version("ServiceMonitor"), "servicemonitors"), MANAGED)

    @kopf.on.startup(registry=registry)
    async def configure(settings: kopf.OperatorSettings, logger: Any, **_: Any) -> None:
        settings.posting.level = logging.INFO
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        settings.networking.request_timeout = 60
        settings.execution.max_workers = 16
        # A watched object's worker (a task and a queue) lingers this long after its last event
        # (kopf's default 5 s): at thousands of objects created at once, that is the RSS peak.
        settings.queueing.idle_timeout = 1.0
        settings.persistence.diffbase_storage = _NoDiffBase()
        # Before any event is handled, what exists already: a restarted operator must see a
        # site's children before it reconciles the site, or it would try to create them again.
        for kind, (resource, labels) in watched.items():
            selector = ",".join(f"{k}={v}" for k, v in (labels or {}).items()) or None
            for obj in await _listed(engine, kind, resource, namespaces, selector, logger):
                engine.observe_job(None, obj) if kind == "Job" else engine.observe(kind, None, obj)

    @kopf.on.cleanup(registry=registry)
    async def close(**_: Any) -> None:
        await engine.kube.aclose()

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        # kopf asks again after a 401: a rotated token file or an expired plugin token is read
        # afresh (kopf refuses the credentials it has just seen rejected).
        cluster.expire()
        return cluster.connection_info()  # type: ignore[no-any-return]

    # One event handler per kind keeps the store and kicks the sites concerned (kopf indexes would
    # run a second handler per event, and kopf's per-handler machinery is most of its CPU).
    # The handlers read the event's raw object (plain dicts), not kopf's Body views over it.
    @kopf.on.event(*watched["HttpdSite"][0], id="site", registry=registry)
    async def site_event(type: str | None, event: Any, namespace: str, name: str, **_: Any) -> None:
        raw = event["object"]
        engine.observe("HttpdSite", type, raw)
        volume = _volume(raw) if type != "DELETED" else {}
        engine.links.update((namespace, name), volume.get("fromSite"), volume.get("claimName"))
        if type != "DELETED":
            engine.kick((namespace, name))
        for dependent in engine.links.sharers_of(namespace, name):
            engine.kick((namespace, dependent))

    def child_event(kind: str) -> Any:
        async def handler(type: str | None, event: Any, namespace: str, name: str, **_: Any) -> None:
            raw = event["object"]
            if kind == "Job":
                engine.observe_job(type, raw)
            else:
                engine.observe(kind, type, raw)
            labels = (raw.get("metadata") or {}).get("labels") or {}
            if labels.get(LABEL_MANAGED_BY) == MANAGED_BY and labels.get(LABEL_INSTANCE):
                engine.kick((namespace, labels[LABEL_INSTANCE]))
            if kind == "PersistentVolumeClaim":
                for user in engine.links.claim_users_of(namespace, name):
                    engine.kick((namespace, user))
        return handler

    for kind, (resource, labels) in watched.items():
        if kind != "HttpdSite":
            kopf.on.event(*resource, labels=labels, id=kind.lower(), registry=registry)(child_event(kind))
    return registry, engine


async def _listed(engine: Engine, kind: str, resource: tuple[str, ...], namespaces: Sequence[str],
                  selector: str | None, logger: Any) -> list[dict[str, Any]]:
    """The objects of one watched kind in the operator's namespaces (retried while the API errs)."""
    api_version = "/".join(resource[:-1]) if len(resource) == 3 else resource[0]
    exact = [ns for ns in namespaces if not any(c in ns for c in "*?[!")]
    scopes: list[str | None] = exact if exact and len(exact) == len(namespaces) else [None]
    found: list[dict[str, Any]] = []
    for scope in scopes:
        attempt = 0
        while True:
            try:
                found += await engine.kube.list(kind, scope, label_selector=selector, api_version=api_version)
                break
            except ApiError as exc:
                attempt += 1
                delay = exc.retry_after or min(30.0, 0.5 * 2 ** attempt)
                logger.warning(f"listing {kind}: {exc}; retrying in {delay:.1f}s")
                await asyncio.sleep(delay)  # backoff before the retry, not a synchronisation
    if scopes == [None] and namespaces:  # patterns: the namespaces kopf would serve
        return [o for o in found if any(fnmatch.fnmatch(o["metadata"].get("namespace", ""), ns)
                                        for ns in namespaces if not ns.startswith("!"))]
    return found
