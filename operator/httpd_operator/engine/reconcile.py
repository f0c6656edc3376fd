"""One site's reconcile, as a page: render, apply, prune, claims, status; returns a `Result`.

It reads only the stores (a converged site costs no request), writes only what differs, and
never schedules itself: when to look again is part of its `Result`, which the queue acts on.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
from collections.abc import Iterator, Mapping
from typing import Any

from httpd_operator.engine.apply import Applier, Outcome
from httpd_operator.engine.claims import Claims
from httpd_operator.engine.memory import Memories, SiteKey, SiteMemory
from httpd_operator.engine.queue import Result
from httpd_operator.engine.static_volume import ensure_volume
from httpd_operator.engine.store import Store
from httpd_operator.errors import SpecError
from httpd_operator.events import Events
from httpd_operator.kinds import CHILDREN, OPTIONAL
from httpd_operator.kube import ApiError, Kube
from httpd_operator.metrics import Metrics
from httpd_operator.render import Rendered, render_site
from httpd_operator.render.content import WRITER_CONTAINER, extras, writer_selector
from httpd_operator.settings import Settings
from httpd_operator.spec import SiteSpec, parse_site
from httpd_operator.status import Observed, desired_status, hold_for, merge_conditions, volume_synced, warnings

logger = logging.getLogger("httpd_operator")


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Sites(Mapping[str, "SiteSpec | SpecError"]):
    """The namespace's sites, parsed on demand (only FromSite ever looks them up)."""

    def __init__(self, store: Store, settings: Settings, namespace: str) -> None:
        self.store, self.settings, self.namespace = store, settings, namespace

    def __getitem__(self, name: str) -> SiteSpec | SpecError:
        body = self.store.actual("HttpdSite", self.namespace, name)
        if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
            raise KeyError(name)
        try:
            return parse_site(body, self.settings)
        except SpecError as exc:
            return exc

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


class Reconciler:
    """`reconcile(key) -> Result` over the stores, the site memories and the client."""

    def __init__(self, settings: Settings, kube: Kube, store: Store, memories: Memories, events: Events,
                 metrics: Metrics | None = None, status_hold: float = 5.0) -> None:
        self.settings, self.kube, self.store, self.memories, self.events = settings, kube, store, memories, events
        self.metrics = metrics
        # After creating a site's children, a status that would only say "on its way" waits up to
        # this long for their controllers (status.hold_for).
        self.status_hold = status_hold
        self.applier = Applier(kube, store)
        self.claims = Claims(kube, store, settings)

    async def reconcile(self, key: SiteKey) -> Result:
        body = self.store.actual("HttpdSite", *key)
        uid = str(((body or {}).get("metadata") or {}).get("uid") or "")
        if body is None or not uid or (body.get("metadata") or {}).get("deletionTimestamp"):
            if self.metrics:
                self.metrics.phases.pop(key, None)
            if body is None:
                self.memories.drop(key)  # gone, even if its deletion was never seen
            return Result("gone")
        memory = self.memories.of(key, uid)
        if memory.doomed:
            return Result("gone")  # its namespace is being deleted
        if memory.quiet is not None and memory.quiet == self._fingerprint(body, memory.quiet[2]):
            return Result("unchanged")
        try:
            return await self._reconcile(body, memory)
        except ApiError as exc:
            if exc.status != 403 or "being terminated" not in exc.message:
                raise
            # The namespace is being deleted, and the site with it: nothing can be made there any
            # more (its children's deletions would kick it again and again), and its own deletion
            # ends the matter. This site is left alone from now on.
            if self.metrics:
                self.metrics.api_errors.labels(str(exc.status)).inc()
            memory.doomed = True
            logger.info("site %s/%s: its namespace is being deleted; left alone", *key)
            return Result("gone")

    async def _reconcile(self, body: dict[str, Any], memory: SiteMemory) -> Result:
        meta = body["metadata"]
        key: SiteKey = (meta.get("namespace") or "", meta.get("name") or "")
        rendered = self._render(body)
        poll = self._poll(rendered)
        # Taken before any await: an event arriving meanwhile must not be folded into it.
        fingerprint = self._fingerprint(body, rendered.volume.claim if isinstance(rendered, Rendered) else None)
        generation = int(meta.get("generation") or 0)
        if isinstance(rendered, Rendered) and memory.rejected and memory.rejected[0] == generation:
            rendered = memory.rejected[1]  # refused by the API server: not again until the spec changes
        outcomes: list[Outcome] = []
        if isinstance(rendered, Rendered):
            try:
                outcomes = await self._apply(memory, rendered, generation)
            except ApiError as exc:
                if exc.status not in (400, 422):
                    raise
                # The server's own validation refused a child: a spec problem, not a transient one.
                rendered = SpecError(exc.object or "a child", f"the API server refused it: {exc.message}",
                                     reason="ChildRejected")
                memory.rejected = (generation, rendered)
        observed = await self._observe(memory, body, rendered)
        status = desired_status(body, rendered, observed)
        if self.metrics:
            self.metrics.phases[key] = status["phase"]
        if isinstance(rendered, Rendered):
            status["conditions"].append(volume_synced([o.note for o in outcomes if o.note]))
        changed = "; ".join(str(o) for o in outcomes if o.changed)
        now = asyncio.get_running_loop().time()
        if any(o.action == "created" for o in outcomes):
            # The new children's watch events kick this site again within moments; reporting then
            # saves a status write that would only say "creating". The requeue is the fallback.
            self.events.info(body, "Applied", changed)
            memory.created_at = now
            return Result("changed", requeue_after=1.0, poll_after=poll)
        since = None if changed or memory.created_at is None else now - memory.created_at
        wait = hold_for(status, observed, since, self.status_hold)
        if wait is not None:
            return Result("held", requeue_after=wait, poll_after=poll)  # their controllers are at work
        memory.created_at = None
        wrote_status = await self._write_status(body, status)
        if changed:
            self.events.info(body, "Applied", changed)
        if wrote_status:
            self._announce(body, status)
        volume = (body.get("spec") or {}).get("volume") if isinstance(body.get("spec"), dict) else None
        # FromSite reads another site too, and a git writer's log is unwatched: never skipped.
        # Others: same inputs, same outcome.
        from_site = isinstance(volume, dict) and volume.get("type") == "FromSite"
        git = isinstance(rendered, Rendered) and rendered.site.git is not None
        memory.quiet = fingerprint if not changed and not from_site and not git else None
        return Result("changed" if changed or wrote_status else "unchanged", poll_after=poll)

    def _render(self, body: dict[str, Any]) -> Rendered | SpecError:
        try:
            return render_site(parse_site(body, self.settings),
                               _Sites(self.store, self.settings, body["metadata"]["namespace"]), self.settings)
        except SpecError as exc:
            return exc

    async def _apply(self, memory: SiteMemory, rendered: Rendered, generation: int) -> list[Outcome]:
        """Every child, then what is no longer wanted, then the claims' extras."""
        # What the children's wanted state depends on (the settings aside, fixed per run).
        wanted = None if rendered.site.volume.type == "FromSite" or not generation \
            else (rendered.site.uid, generation)
        # The children at once: none needs another to exist first (a pod waits for its claim and
        # its ConfigMap), and one round trip instead of one per child is most of a site's time
        # against a real API server (bench/real_floor_bench.py).
        results = await asyncio.gather(*(
            ensure_volume(self.kube, self.store, self.settings, rendered.site, obj)
            if obj["kind"] == "PersistentVolume"  # cluster-scoped, unwatched: its own rule
            else self.applier.apply(memory, rendered.site, obj, wanted) for obj in rendered.objects),
            return_exceptions=True)
        failed = next((r for r in results if isinstance(r, BaseException)), None)
        if failed is not None:
            raise failed  # every child was tried; the first failure decides, as before
        outcomes: list[Outcome] = [r for r in results if isinstance(r, Outcome)]
        outcomes += await self.applier.prune(rendered, OPTIONAL, extras(rendered.site.name))
        await self.claims.protect(memory, rendered)
        await self.claims.share(rendered)
        return outcomes

    async def _observe(self, memory: SiteMemory, body: dict[str, Any], rendered: Rendered | SpecError) -> Observed:
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        jobs = self.store.jobs_of(namespace, name)
        ok = isinstance(rendered, Rendered)
        return Observed(
            claim=self.store.actual("PersistentVolumeClaim", namespace, rendered.volume.claim)
            if isinstance(rendered, Rendered) and rendered.volume.claim else None,
            deployment=self.store.actual("Deployment", namespace, name),
            ingress=self.store.actual("Ingress", namespace, name),
            cron_job=self.store.actual("CronJob", namespace, name),
            jobs=jobs,
            archive=await self._last_archive(memory, body, jobs) if ok and rendered.site.backup else None,  # type: ignore[union-attr]
            content=await self._content_record(namespace, name) if ok and rendered.site.git else None)  # type: ignore[union-attr]

    def _poll(self, rendered: Rendered | SpecError) -> float | None:
        """A site whose content comes from git is looked at again every interval (or the
        operator's --content-poll, in tests): its writer's log is not watched."""
        git = rendered.site.git if isinstance(rendered, Rendered) else None
        if git is None:
            return None
        return self.settings.content_poll or float(git.interval)

    async def _content_record(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The git writer's last sync, from its newest pod's log: the last line that is a JSON object
        (two requests: the pods, then the log's last lines)."""
        pods = await self.kube.list("Pod", namespace, label_selector=writer_selector(name))
        pods = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
        if not pods:
            return None
        pod = max(pods, key=lambda p: ((p.get("metadata") or {}).get("creationTimestamp") or "",
                                       (p.get("metadata") or {}).get("name") or ""))
        text = await self.kube.log(namespace, pod["metadata"]["name"], WRITER_CONTAINER, tail=20)
        return last_record(text or "")

    def _fingerprint(self, body: Mapping[str, Any], claim: str | None) -> tuple[Any, ...]:
        """What a reconcile of a site reads: its spec's generation, its children as last seen."""
        meta = body.get("metadata") or {}
        namespace, name = meta.get("namespace", ""), meta.get("name", "")
        children = tuple(self.store.version(kind, namespace, claim if kind == "PersistentVolumeClaim" else name)
                         for kind in CHILDREN if claim or kind != "PersistentVolumeClaim")
        jobs = tuple(tuple(sorted(j.items())) for j in self.store.jobs_of(namespace, name))
        return meta.get("uid"), meta.get("generation"), claim, children, jobs

    async def _last_archive(self, memory: SiteMemory, body: Mapping[str, Any],
                            jobs: tuple[Mapping[str, Any], ...]) -> tuple[str, int] | None:
        """The newest successful backup's archive name and size, from its pod's termination message
        (read once per Job; status keeps it across restarts)."""
        done = [j for j in jobs if j.get("state") == "Complete"]
        if not done:
            return None
        job = max(done, key=lambda j: (j.get("completionTime") or "", j["name"]))["name"]
        old = (body.get("status") or {}).get("backup") or {}
        if old.get("lastJob") == job and old.get("lastArchive"):
            return old["lastArchive"], int(old.get("lastArchiveSize") or 0)
        if job not in memory.archives:
            pods = await self.kube.list("Pod", body["metadata"]["namespace"], label_selector=f"job-name={job}")
            memory.archives[job] = archive_of(pods)
        return memory.archives[job]

    async def _write_status(self, body: dict[str, Any], status: dict[str, Any]) -> bool:
        old = body.get("status") or {}
        status["conditions"] = merge_conditions(status["conditions"], old.get("conditions"), _now())
        if status == {k: v for k, v in old.items() if k in status} and set(old) <= set(status):
            return False
        patch = {"status": {**{k: None for k in old if k not in status}, **status}}
        meta = body["metadata"]
        self.store.remember(await self.kube.patch("HttpdSite", meta["namespace"], meta["name"], patch, sub="status"))
        return True

    def _announce(self, body: dict[str, Any], status: dict[str, Any]) -> None:
        """A Warning event and a log line for each condition status.warnings picks."""
        meta = body["metadata"]
        for cond in warnings(body.get("status") or {}, status):
            logger.warning("site %s/%s: %s: %s", meta.get("namespace"), meta.get("name"),
                           cond["reason"], cond["message"])
            self.events.warn(body, cond["reason"], cond["message"])


def last_record(text: str) -> dict[str, Any] | None:
    """The last line of a log that is a JSON object (git-sync prints one per sync)."""
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                return record
    return None


def archive_of(pods: list[dict[str, Any]]) -> tuple[str, int] | None:
    """"NAME SIZE", as the backup container's last words (its termination message)."""
    for pod in pods:
        for container in (pod.get("status") or {}).get("containerStatuses") or []:
            message = ((container.get("state") or {}).get("terminated") or {}).get("message") or ""
            parts = message.split()
            if container.get("name") == "backup" and len(parts) == 2 and parts[1].isdigit():
                return parts[0], int(parts[1])
    return None
