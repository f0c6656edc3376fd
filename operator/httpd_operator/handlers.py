"""The wiring: kopf runs the process (start-up, clean-up, log-in, peering, liveness); the
operator's own informers (`informer.py`) watch the sites and their children. They feed the
engine's stores, and every event about a site or one of its children kicks that site.

kopf has no resource handler: it writes no finalizers and no annotations, so the operator's writes
are exactly the children, the status and events. Nor does it watch the sites: its watcher takes a
404 as fatal, and a restarting kube-apiserver answers 404 for a custom resource's group until it
has loaded the CRD, which stopped every reconcile until the process restarted. The informers
back off and relist through it, as through any other error.
"""

from __future__ import annotations

import asyncio
import fnmatch
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import kopf

from httpd_operator.connection import Cluster
from httpd_operator.engine import Engine
from httpd_operator.informer import Informer
from httpd_operator.kinds import KIND, KINDS
from httpd_operator.kube import ApiError, Kube, path
from httpd_operator.metrics import Metrics
from httpd_operator.peering import Peering, ensure_peering_object
from httpd_operator.render.meta import LABEL_INSTANCE, LABEL_MANAGED_BY, MANAGED_BY
from httpd_operator.retry import START_UP, Retries
from httpd_operator.settings import Settings
from httpd_operator.transport import kopf_login

MANAGED = {LABEL_MANAGED_BY: MANAGED_BY}
RESUME_POLL = 1.0  # seconds between looks at the peering view, while peering


def _volume(body: Mapping[str, Any]) -> dict[str, Any]:
    spec = body.get("spec")
    volume = spec.get("volume") if isinstance(spec, dict) else None
    return volume if isinstance(volume, dict) else {}


def build(settings: Settings, cluster: Cluster, debounce: float = 0.1, metrics: Metrics | None = None,
          namespaces: Sequence[str] = (), peering: Peering | None = None) -> tuple[kopf.OperatorRegistry, Engine]:
    """A fresh registry with the operator's handlers, and the engine they drive."""
    registry = kopf.OperatorRegistry()
    engine = Engine(settings=settings, kube=Kube(cluster, settings.request_timeout), debounce=debounce,
                    metrics=metrics, peering=peering)

    # What is watched besides the sites: every claim (sites may mount claims they do not
    # own) and the operator's own children (by label), each in the API version the operator
    # writes; add-ons only where the cluster serves them (kinds.py says which is which).
    watched = {k.name: (settings.api_version(k.name) if k.versioned else k.api_version(),
                        MANAGED if k.watch == "managed" else None)
               for k in KINDS.values() if k.watch and k.name != KIND and (not k.add_on or settings.serves(k.name))}
    if not settings.network_policies:  # off: none written, so none watched (nor granted, in the chart)
        watched.pop("NetworkPolicy", None)

    @kopf.on.startup(registry=registry)
    async def configure(settings: kopf.OperatorSettings, logger: Any, **_: Any) -> None:
        settings.posting.level = logging.INFO
        settings.watching.server_timeout = 300
        settings.watching.client_timeout = 330
        settings.networking.request_timeout = 60
        # The children's watches, started and listed before the sites' (see below): a
        # restarted operator must see a site's children before it reconciles the site, or it
        # would try to create them again.
        for kind, (api_version, labels) in watched.items():
            selector = ",".join(f"{k}={v}" for k, v in (labels or {}).items()) or None
            for scope in _scopes(namespaces):
                informer = Informer(engine.kube, path(kind, scope, api_version=api_version), selector,
                                    child_event(kind, namespaces), f"{kind} in {scope or 'all namespaces'}")
                informers.append(informer)
                tasks.append(asyncio.create_task(informer.run(), name=f"watch {informer.name}"))
        if peering is not None:  # kopf's peering objects: cluster-wide, or one in each namespace
            for scope in _scopes(namespaces):
                if scope is not None or not namespaces:  # (not with patterns: no one namespace)
                    url = _peering_url(scope, namespaces)
                    made = await _retried(lambda url=url: ensure_peering_object(engine.kube, url, peering.name),
                                          logger)
                    if not made:
                        logger.warning(f"may not create the peering object {peering.name} ({url}): 403")
                informer = Informer(engine.kube, _peering_url(scope, namespaces), None, peering.observe, "peering",
                                    missing_ok=True)
                informers.append(informer)
                tasks.append(asyncio.create_task(informer.run(), name="watch peering"))
        await asyncio.gather(*(i.synced.wait() for i in informers))
        engine.ready = True
        # Then the sites. Their listing comes after the children's (a restarted operator must see a
        # site's children before it reconciles it, or it would create them again), and is stored
        # whole before the first reconcile runs (kicks wait out the debounce): a site mounting
        # another's volume finds it at once.
        for scope in _scopes(namespaces):
            sites = Informer(engine.kube, path(KIND, scope), None, site_event, f"sites in {scope or 'all namespaces'}")
            tasks.append(asyncio.create_task(sites.run(), name=f"watch {sites.name}"))
        if peering is not None:
            tasks.append(asyncio.create_task(_resume_when_active(logger), name="resume when active"))
        logger.info(f"watching the sites and {len(informers)} kinds of children in {len(_scopes(namespaces))} scopes")

    async def _resume_when_active(logger: Any) -> None:
        """A replica that takes over (its peer gone quiet) reconciles every site: while it was
        paused, its kicks were dropped. Peers age out with time, not with an event: polled."""
        acted = engine.may_act()
        while True:
            await asyncio.sleep(RESUME_POLL)  # a poll of the peering view, not a synchronisation
            acts = engine.may_act()
            if acts and not acted:
                logger.info("active again: every site is reconciled")
                engine.kick_all()
            acted = acts

    informers: list[Informer] = []
    tasks: list[asyncio.Task[None]] = []

    @kopf.on.cleanup(registry=registry)
    async def close(**_: Any) -> None:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await engine.queue.close()  # no reconcile may open a connection once the client is closed
        await engine.events.close()
        await engine.kube.aclose()

    @kopf.on.login(registry=registry)
    async def login(**_: Any) -> kopf.AiohttpSession:
        # kopf asks again after a 401: a rotated token file or an expired plugin token is read
        # afresh (kopf refuses the credentials it has just seen rejected). The session is the
        # operator's transport's: the same TLS (tls-server-name) and proxy as its own requests.
        return await kopf_login(cluster)  # type: ignore[no-any-return]

    # The sites' events keep their store and kick them (and the sites sharing their volume).
    def site_event(type: str | None, raw: dict[str, Any]) -> None:
        meta = raw.get("metadata") or {}
        namespace, name = meta.get("namespace") or "", meta.get("name") or ""
        if not _served(namespace, namespaces):
            return
        engine.observe(KIND, type, raw)
        volume = _volume(raw) if type != "DELETED" else {}
        engine.links.update((namespace, name), volume.get("fromSite"), volume.get("claimName"))
        if type != "DELETED":
            engine.kick((namespace, name))
        for dependent in engine.links.sharers_of(namespace, name):
            engine.kick((namespace, dependent))

    def child_event(kind: str, namespaces: Sequence[str]) -> Any:
        def handler(type: str | None, raw: dict[str, Any]) -> None:
            meta = raw.get("metadata") or {}
            namespace, name = meta.get("namespace") or "", meta.get("name") or ""
            if not _served(namespace, namespaces):
                return
            if kind == "Job":
                engine.observe_job(type, raw)
            else:
                engine.observe(kind, type, raw)
            labels = meta.get("labels") or {}
            if labels.get(LABEL_MANAGED_BY) == MANAGED_BY and labels.get(LABEL_INSTANCE):
                engine.kick((namespace, labels[LABEL_INSTANCE]))
            if kind == "PersistentVolumeClaim":
                for user in engine.links.claim_users_of(namespace, name):
                    engine.kick((namespace, user))
        return handler

    return registry, engine


def _patterns(namespaces: Sequence[str]) -> bool:
    return any(any(c in ns for c in "*?[!") for ns in namespaces)


def _served(namespace: str, namespaces: Sequence[str]) -> bool:
    """Whether the operator serves a namespace (names, or kopf's glob patterns with ! exclusions)."""
    if not _patterns(namespaces):
        return True  # the watch's scope already is the namespace
    excluded = any(fnmatch.fnmatch(namespace, ns[1:]) for ns in namespaces if ns.startswith("!"))
    return not excluded and any(fnmatch.fnmatch(namespace, ns) for ns in namespaces if not ns.startswith("!"))


async def _retried(call: Any, logger: Any) -> Any:
    """A start-up call, retried with backoff while the API errs (nothing can proceed without it)."""
    retries = Retries(START_UP)
    while True:
        try:
            return await call()
        except ApiError as exc:
            delay = retries.failed(exc)
            logger.warning(f"{exc}; retrying in {delay:.1f}s")
            await asyncio.sleep(delay)  # backoff before the retry, not a synchronisation


def _peering_url(scope: str | None, namespaces: Sequence[str]) -> str:
    """Where kopf keeps its peers: one cluster object, or one per served namespace."""
    if not namespaces:
        return "/apis/kopf.dev/v1/clusterkopfpeerings"
    return f"/apis/kopf.dev/v1/namespaces/{scope}/kopfpeerings" if scope else "/apis/kopf.dev/v1/kopfpeerings"


def _scopes(namespaces: Sequence[str]) -> list[str | None]:
    """Where to watch: each namespace named, or the whole cluster (none named, or patterns)."""
    return [None] if not namespaces or _patterns(namespaces) else list(namespaces)
