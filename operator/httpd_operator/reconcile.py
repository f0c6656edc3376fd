"""Bring one site's children and status in line with its spec: apply and report, nothing more.

The operator keeps what it has seen in memory (stores fed by the watches), so a converged site
costs no API request at all, and a restart on a converged cluster writes nothing. Events about a
site or any of its children only *kick* the site: bursts are coalesced into one reconcile.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from httpd_operator.diff import is_subset, merge_patch
from httpd_operator.engine.memory import Memories, SiteMemory
from httpd_operator.errors import SpecError
from httpd_operator.events import Events
from httpd_operator.kube import ApiError, Kube, backoff
from httpd_operator.metrics import Metrics
from httpd_operator.packed import Packed
from httpd_operator.peering import Peering
from httpd_operator.quantity import QuantityError, parse_quantity
from httpd_operator.render import Rendered, render_site
from httpd_operator.render.config import ANNOTATION_CHECKSUM
from httpd_operator.render.meta import LABEL_INSTANCE, owner_reference
from httpd_operator.render.volumes import WAITING_REASONS
from httpd_operator.settings import Settings
from httpd_operator.spec import SiteSpec, parse_site
from httpd_operator.status import Observed, condition, desired_status, merge_conditions

logger = logging.getLogger("httpd_operator")
SiteKey = tuple[str, str]
# The kinds kept in memory (`Engine.stores`): the sites (kopf) and the children (informers).
STORED = ("HttpdSite", "PersistentVolumeClaim", "Deployment", "Service", "PodDisruptionBudget", "ConfigMap",
          "Ingress", "HorizontalPodAutoscaler", "CronJob", "ServiceMonitor")
# Children that exist only while the spec asks for them (named like the site); removed otherwise.
OPTIONAL = ("PodDisruptionBudget", "ConfigMap", "Ingress", "HorizontalPodAutoscaler", "CronJob", "ServiceMonitor")


def _rv(obj: Mapping[str, Any] | None) -> int:
    try:
        return int(((obj or {}).get("metadata") or {}).get("resourceVersion") or -1)
    except ValueError:
        return -1


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Sites(Mapping[str, "SiteSpec | SpecError"]):
    """The namespace's sites, parsed on demand (only FromSite ever looks them up)."""

    def __init__(self, engine: Engine, namespace: str) -> None:
        self.engine, self.namespace = engine, namespace

    def __getitem__(self, name: str) -> SiteSpec | SpecError:
        body = self.engine.actual("HttpdSite", self.namespace, name)
        if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
            raise KeyError(name)
        try:
            return parse_site(body, self.engine.settings)
        except SpecError as exc:
            return exc

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


@dataclass
class Links:
    """Which sites mount another site's volume or a claim they do not own, kept from site events."""

    _from_site: dict[SiteKey, str] = field(default_factory=dict)
    _claim: dict[SiteKey, str] = field(default_factory=dict)

    def update(self, key: SiteKey, from_site: str | None, claim: str | None) -> None:
        for table, value in ((self._from_site, from_site), (self._claim, claim)):
            if value:
                table[key] = value
            else:
                table.pop(key, None)

    def sharers_of(self, namespace: str, name: str) -> list[str]:
        return [k[1] for k, v in self._from_site.items() if k[0] == namespace and v == name]

    def claim_users_of(self, namespace: str, claim: str) -> list[str]:
        return [k[1] for k, v in self._claim.items() if k[0] == namespace and v == claim]


@dataclass
class Engine:
    """Per-operator state: settings, the client, the stores, and the reconcile scheduler."""

    settings: Settings
    kube: Kube
    debounce: float = 0.05
    # What the watches delivered, newest first: kind -> (namespace, name) -> object; and backup
    # Jobs as summaries by (namespace, site) -> job name.
    stores: dict[str, dict[SiteKey, Packed]] = field(default_factory=lambda: {kind: {} for kind in STORED})
    jobs: dict[SiteKey, dict[str, dict[str, Any]]] = field(default_factory=dict)
    links: Links = field(default_factory=Links)
    written: dict[tuple[str, str, str], dict[str, Any]] = field(default_factory=dict)
    metrics: Metrics | None = None
    peering: Peering | None = None  # with --peering: reconcile only while kopf has not paused us
    events: Events = field(init=False)  # Kubernetes Events, posted in the background
    ready: bool = False  # set once every store has been listed (start-up)
    # Everything remembered about a site, by uid, dropped with it (engine/memory.py).
    memories: Memories = field(default_factory=Memories)
    # After creating a site's children, a status that would only say "on its way" (Pending,
    # Progressing) waits up to this long while their controllers have not yet answered (claim not
    # Bound, Deployment not observed): one status write, not three.
    status_hold: float = 5.0
    reconciled: int = 0        # reconciles finished, whatever their result (tests wait on it)
    _pending: set[SiteKey] = field(default_factory=set)
    _gone: set[tuple[str, str, str, str | None]] = field(default_factory=set)  # deleted, not yet seen gone
    # One lock per site being reconciled (or waiting to), dropped when the last holder leaves.
    _running: dict[SiteKey, tuple[asyncio.Lock, int]] = field(default_factory=dict)
    _attempts: dict[SiteKey, int] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    # Reconciles in flight at once: each holds its site's objects unpacked, so a burst of a
    # thousand kicks must not unpack a thousand sites at the same time (RSS), nor interleave them.
    concurrency: int = 64
    _slots: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self._slots = asyncio.Semaphore(self.concurrency)
        self.events = Events(self.kube)

    # -- scheduling ------------------------------------------------------------------------------

    def kick(self, key: SiteKey, delay: float | None = None) -> None:
        """Reconcile the site soon; kicks that arrive before it runs are folded into one."""
        if key in self._pending:
            return
        self._pending.add(key)
        task = asyncio.get_running_loop().create_task(self._run(key, self.debounce if delay is None else delay))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, key: SiteKey, delay: float) -> None:
        await asyncio.sleep(delay)  # a debounce window, not a synchronisation
        lock, users = self._running.get(key) or (asyncio.Lock(), 0)
        self._running[key] = (lock, users + 1)
        try:
            async with self._slots, lock:
                await self._run_locked(key)
        finally:
            lock, users = self._running[key]
            if users == 1:
                del self._running[key]
            else:
                self._running[key] = (lock, users - 1)

    async def _run_locked(self, key: SiteKey) -> None:
        if True:
            self._pending.discard(key)
            if not self.ready:
                return  # the stores are being filled; kopf's listing of the sites kicks them all after
            if self.peering is not None and self.peering.paused():
                return  # another replica acts; kopf relists the sites when this one resumes
            started = asyncio.get_running_loop().time()
            try:
                result = await self.reconcile(*key)
                self._attempts.pop(key, None)
            except ApiError as exc:
                if self.metrics:
                    self.metrics.api_errors.labels(str(exc.status)).inc()
                if exc.status == 403 and "being terminated" in exc.message:
                    # The namespace is being deleted, and the site with it: nothing can be made
                    # there any more (its children's deletions would kick it again and again), and
                    # its own deletion ends the matter. This site is left alone from now on.
                    seen = self.stores["HttpdSite"].get(key)
                    if seen is not None and seen.uid:
                        self.memories.of(key, seen.uid).doomed = True
                    logger.info("site %s/%s: its namespace is being deleted; left alone", *key)
                    self.reconciled += 1
                    return
                attempt = self._attempts[key] = self._attempts.get(key, 0) + 1
                delay = backoff(attempt, exc, cap=60.0)
                logger.warning("site %s/%s: API error %s; retrying in %.1fs", *key, exc, delay)
                result = "error"
                self.kick(key, delay=delay)
            except Exception:  # a bug must not kill the operator or other sites
                logger.exception("site %s/%s: reconcile failed", *key)
                attempt = self._attempts[key] = self._attempts.get(key, 0) + 1
                result = "error"
                self.kick(key, delay=min(300.0, 2.0 ** min(attempt, 8)))
            self.reconciled += 1
            if self.metrics:
                self.metrics.observe(result, asyncio.get_running_loop().time() - started)

    @property
    def idle(self) -> bool:
        """No reconcile scheduled or running."""
        return not self._pending and not self._running

    async def drain(self) -> None:
        """Wait for scheduled reconciles (tests and the demo use it)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # -- observed state ------------------------------------------------------------------------

    def _newest(self, kind: str, namespace: str, name: str) -> Packed | dict[str, Any] | None:
        """The newer of what the watch delivered (packed) and what our own last write returned."""
        seen = self.stores[kind].get((namespace, name))
        if seen is not None and (kind, namespace, name, seen.uid) in self._gone:
            seen = None  # deleted by us; the watch has not said so yet
        mine = self.written.get((kind, namespace, name))
        if mine is not None and (seen is None or _rv(mine) > seen.rv):
            return mine
        if mine is not None:
            del self.written[(kind, namespace, name)]  # the watch caught up
        return seen

    def observe(self, kind: str, type_: str | None, body: Mapping[str, Any]) -> None:
        """A watch event (or a listed object, type None): keep the newest copy, drop deleted ones."""
        meta = body.get("metadata") or {}
        key = (meta.get("namespace") or "", meta.get("name") or "")
        store = self.stores[kind]
        if type_ == "DELETED":
            old = store.get(key)
            if old is not None and old.uid == meta.get("uid"):
                del store[key]
            self.forget(kind, *key, meta.get("uid"))
            return
        new = Packed(body)
        old = store.get(key)
        if old is None or old.uid != new.uid or old.rv <= new.rv:  # events of one object may race
            store[key] = new

    def observe_job(self, type_: str | None, body: Mapping[str, Any]) -> None:
        """Backup Jobs, by site: only what status.backup needs."""
        meta = body.get("metadata") or {}
        key = (meta.get("namespace") or "", (meta.get("labels") or {}).get(LABEL_INSTANCE) or "")
        if type_ == "DELETED":
            jobs = self.jobs.get(key) or {}
            jobs.pop(meta.get("name") or "", None)
            if not jobs:
                self.jobs.pop(key, None)  # the last of the site's Jobs: nothing left to keep
            return
        jobs = self.jobs.setdefault(key, {})
        status = body.get("status") or {}
        state = next((c.get("type") for c in status.get("conditions") or []
                      if c.get("type") in ("Complete", "Failed") and c.get("status") == "True"), None)
        jobs[meta.get("name") or ""] = {"name": meta.get("name"), "state": state,
                                        "completionTime": status.get("completionTime"),
                                        "startTime": status.get("startTime")}

    def _jobs_of(self, namespace: str, name: str) -> tuple[dict[str, Any], ...]:
        return tuple(self.jobs.get((namespace, name), {}).values())

    def actual(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        """The newest of what the watch delivered and what our own last write returned."""
        newest = self._newest(kind, namespace, name)
        return newest.unpack() if isinstance(newest, Packed) else newest

    def version(self, kind: str, namespace: str, name: str) -> int:
        """The resourceVersion `actual` would return (-1: absent), without unpacking it."""
        newest = self._newest(kind, namespace, name)
        return newest.rv if isinstance(newest, Packed) else _rv(newest)

    def forget(self, kind: str, namespace: str, name: str, uid: str | None) -> None:
        """A child was deleted: drop our copy of it, unless we have already re-created it."""
        if kind == "HttpdSite":
            self.memories.drop((namespace, name), uid)
            if self.metrics:
                self.metrics.phases.pop((namespace, name), None)
        mine = self.written.get((kind, namespace, name))
        if mine is not None and (mine.get("metadata") or {}).get("uid") == uid:
            del self.written[(kind, namespace, name)]
        self._gone.discard((kind, namespace, name, uid))

    def _remember(self, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj.get("metadata") or {}
        self.written[(obj.get("kind", ""), meta.get("namespace", ""), meta.get("name", ""))] = obj
        return obj

    # -- the reconcile -------------------------------------------------------------------------

    def _fingerprint(self, body: Mapping[str, Any], claim: str | None) -> tuple[Any, ...]:
        """What a reconcile of a site reads: its spec's generation, its children as last seen."""
        meta = body.get("metadata") or {}
        namespace, name = meta.get("namespace", ""), meta.get("name", "")
        children = tuple(self.version(kind, namespace, claim if kind == "PersistentVolumeClaim" else name)
                         for kind in STORED if kind != "HttpdSite" and (claim or kind != "PersistentVolumeClaim"))
        jobs = tuple(tuple(sorted(j.items())) for j in self._jobs_of(namespace, name))
        return meta.get("uid"), meta.get("generation"), claim, children, jobs

    async def reconcile(self, namespace: str, name: str) -> str:
        body = self.actual("HttpdSite", namespace, name)
        uid = str(((body or {}).get("metadata") or {}).get("uid") or "")
        if body is None or (body.get("metadata") or {}).get("deletionTimestamp") or not uid:
            if self.metrics:
                self.metrics.phases.pop((namespace, name), None)
            return "gone"
        memory = self.memories.of((namespace, name), uid)
        if memory.doomed:
            return "gone"  # its namespace is being deleted
        quiet = memory.quiet
        if quiet is not None and quiet == self._fingerprint(body, quiet[2]):
            return "unchanged"
        try:
            rendered: Rendered | SpecError = render_site(parse_site(body, self.settings),
                                                         _Sites(self, namespace), self.settings)
        except SpecError as exc:
            rendered = exc
        # Taken before any await: an event arriving meanwhile must not be folded into it.
        fingerprint = self._fingerprint(body, rendered.volume.claim if isinstance(rendered, Rendered) else None)
        extra: list[dict[str, Any]] = []
        changed: list[str] = []
        generation = int((body.get("metadata") or {}).get("generation") or 0)
        rejected = memory.rejected
        if isinstance(rendered, Rendered) and rejected and rejected[0] == generation:
            rendered = rejected[1]  # refused by the API server: not again until the spec changes
        if isinstance(rendered, Rendered):
            # What the children's wanted state depends on (the settings aside, fixed per run).
            wanted = None if rendered.site.volume.type == "FromSite" or not generation \
                else (rendered.site.uid, generation)
            try:
                for obj in rendered.objects:
                    note = await self._apply(memory, rendered.site, obj, changed, wanted)
                    if note:
                        extra.append(note)
                await self._prune(rendered, changed)
                await self._protect_volume(memory, rendered)
                await self._share_claim(rendered)
            except ApiError as exc:
                if exc.status not in (400, 422):
                    raise
                # The server's own validation refused a child: a spec problem, not a transient one.
                rendered = SpecError(exc.object or "a child", f"the API server refused it: {exc.message}",
                                     reason="ChildRejected")
                memory.rejected = (generation, rendered)
        jobs = self._jobs_of(namespace, name)
        observed = Observed(
            claim=self.actual("PersistentVolumeClaim", namespace, rendered.volume.claim)
            if isinstance(rendered, Rendered) and rendered.volume.claim else None,
            deployment=self.actual("Deployment", namespace, name),
            ingress=self.actual("Ingress", namespace, name),
            cron_job=self.actual("CronJob", namespace, name),
            jobs=jobs,
            archive=await self._last_archive(memory, body, jobs) if isinstance(rendered, Rendered) and
            rendered.site.backup else None)
        status = desired_status(body, rendered, observed)
        if self.metrics:
            self.metrics.phases[(namespace, name)] = status["phase"]
        if isinstance(rendered, Rendered):
            status["conditions"].append(extra[0] if extra else
                                        condition("VolumeSynced", True, "InSync", "the volume matches the spec"))
        key, now = (namespace, name), asyncio.get_running_loop().time()
        if any(note.startswith("created") for note in changed):
            # The new children's watch events kick this site again within moments; reporting then
            # saves a status write that would only say "creating". The kick is the fallback.
            self.events.info(body, "Applied", "; ".join(changed))
            memory.created_at = now
            self.kick(key, delay=1.0)
            return "changed"
        held = now - (memory.created_at if memory.created_at is not None else -self.status_hold)
        if status["phase"] in ("Pending", "Progressing") and held < self.status_hold and not changed \
                and _settling(observed):
            self.kick(key, delay=min(1.0, self.status_hold - held))  # their controllers are at work
            return "held"
        memory.created_at = None
        wrote_status = await self._write_status(body, status)
        if changed:
            self.events.info(body, "Applied", "; ".join(changed))
        if wrote_status:
            self._announce(body, status)
        spec = body.get("spec")
        volume = spec.get("volume") if isinstance(spec, dict) else None
        if not changed and not (isinstance(volume, dict) and volume.get("type") == "FromSite"):
            # FromSite reads another site too: never skipped. Others: same inputs, same outcome.
            memory.quiet = fingerprint
        else:
            memory.quiet = None
        return "changed" if changed or wrote_status else "unchanged"

    async def _apply(self, memory: SiteMemory, site: SiteSpec, want: dict[str, Any], changed: list[str],
                     wanted: Any = None) -> dict[str, Any] | None:
        """Create or patch one child; returns a VolumeSynced=False condition if a change is refused."""
        kind, meta = want["kind"], want["metadata"]
        child = (kind, meta["namespace"], meta["name"])
        in_shape = memory.in_shape.get((kind, meta["name"])) if wanted is not None else None
        if in_shape is not None and in_shape[:2] == (self.version(*child), wanted):
            return in_shape[2]  # found in shape before, and neither it nor what we want has changed
        have = self.actual(*child)
        if have is None:
            try:
                self._remember(await self.kube.create(want))
                if kind == "PersistentVolumeClaim":
                    memory.created_claims.add(meta["name"])
                changed.append(f"created {kind} {meta['name']}")
                return None
            except ApiError as exc:
                if exc.status != 409:
                    raise
                have = await self.kube.get(kind, meta["namespace"], meta["name"], want.get("apiVersion"))
                if have is None:
                    raise
                self._remember(have)
        note = None
        if kind == "PersistentVolumeClaim":
            want, note = self._claim_changes(site, want, have)
        want = _without_stale(kind, want, have)
        if is_subset(want, have):
            if wanted is not None:
                memory.in_shape[(kind, meta["name"])] = (_rv(have), wanted, note)
            return note
        patch = merge_patch(want, have)
        if want["metadata"].get("ownerReferences") == []:
            patch.setdefault("metadata", {})["ownerReferences"] = None  # Retain: no owner at all
        refusal_key = (kind, meta["name"], repr(patch))
        if refusal_key in memory.refused:
            return memory.refused[refusal_key]
        try:
            self._remember(await self.kube.patch(kind, meta["namespace"], meta["name"], patch,
                                                 api_version=want.get("apiVersion")))
        except ApiError as exc:
            if kind != "PersistentVolumeClaim" or exc.status not in (403, 422):
                raise
            # The server refuses the change (e.g. a class that cannot expand): report it, and do
            # not send the same patch again until the spec asks for something else.
            refusal = condition("VolumeSynced", False, "ResizeRefused" if "spec" in patch else "ClaimUpdateRefused",
                                f"claim {meta['name']}: the API server refused the change: {exc.message}")
            memory.refused[refusal_key] = refusal
            return refusal
        changed.append(f"updated {kind} {meta['name']} ({', '.join(sorted(_paths(patch)))})")
        return note

    def _claim_changes(self, site: SiteSpec, want: dict[str, Any], have: dict[str, Any]
                       ) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """Only metadata and growth can change on a claim; anything else is reported, never forced.

        Owner references of other sites (sites sharing a Delete claim, see `_share_claim`) are
        kept, so garbage collection waits until no site uses the claim.
        """
        hspec = have.get("spec") or {}
        wspec = want["spec"]
        had = (have.get("metadata") or {}).get("ownerReferences") or []
        refs = [r for r in had if r.get("uid") != site.uid] + (want["metadata"].get("ownerReferences") or [])
        meta = {k: v for k, v in want["metadata"].items() if k != "ownerReferences"}
        if refs or had:
            meta["ownerReferences"] = refs  # [] removes the site's own reference (Retain)
        allowed: dict[str, Any] = {"metadata": meta}
        problems = []
        for field_ in ("storageClassName", "accessModes", "volumeMode"):
            if field_ in wspec and field_ in hspec and wspec[field_] != hspec[field_]:
                problems.append(f"spec.volume.{field_} is {wspec[field_]!r} but claim "
                                f"{want['metadata']['name']} has {hspec[field_]!r}, which Kubernetes "
                                "cannot change on an existing claim")
        wsize = wspec["resources"]["requests"]["storage"]
        hsize = ((hspec.get("resources") or {}).get("requests") or {}).get("storage", "0")
        try:
            grow = parse_quantity(wsize) > parse_quantity(hsize)
            shrink = parse_quantity(wsize) < parse_quantity(hsize)
        except QuantityError:
            grow = shrink = False
        if grow:
            allowed["spec"] = {"resources": {"requests": {"storage": wsize}}}
        if shrink:
            problems.append(f"spec.volume.size {wsize} is smaller than the claim's {hsize}; "
                            "claims can grow but never shrink, so it was left as it is")
            return allowed, condition("VolumeSynced", False, "ShrinkRefused", problems[-1])
        if problems:
            return allowed, condition("VolumeSynced", False, "ImmutableField", "; ".join(problems))
        return allowed, None

    async def _protect_volume(self, memory: SiteMemory, rendered: Rendered) -> None:
        """Retain claims: make the bound PersistentVolume outlive a claim deleted by hand too.

        Dynamically provisioned volumes default to Delete. A volume provisioned for a claim this
        run created is patched straight away (the patch is idempotent); any other is read first
        and patched only when needed, so a restarted operator on a converged cluster writes nothing.
        """
        site = rendered.site
        if not self.settings.protect_volumes or site.volume.type != "Managed" or \
                site.volume.reclaim_policy != "Retain":
            return
        claim = self.actual("PersistentVolumeClaim", site.namespace, rendered.volume.claim or "")
        if claim is None or (claim.get("status") or {}).get("phase") != "Bound":
            return
        volume = (claim.get("spec") or {}).get("volumeName")
        if not volume or volume in memory.protected:
            return
        fresh = rendered.volume.claim in memory.created_claims
        pv = None if fresh else await self.kube.get("PersistentVolume", None, volume)
        if fresh or pv is not None and (pv.get("spec") or {}).get("persistentVolumeReclaimPolicy") != "Retain":
            try:
                await self.kube.patch("PersistentVolume", None, volume,
                                      {"spec": {"persistentVolumeReclaimPolicy": "Retain"}})
            except ApiError as exc:
                if exc.status != 404:
                    raise
                return  # gone already (a static volume deleted by hand): nothing left to protect
            memory.created_claims.discard(rendered.volume.claim or "")
            logger.info("site %s/%s: set PersistentVolume %s's reclaim policy to Retain",
                        site.namespace, site.name, volume)
        memory.protected.add(volume)

    async def _last_archive(self, memory: SiteMemory, body: Mapping[str, Any], jobs: tuple[Mapping[str, Any], ...]
                            ) -> tuple[str, int] | None:
        """The newest successful backup's archive name and size, from its pod's termination message
        (read once per Job; status keeps it across restarts)."""
        done = [j for j in jobs if j.get("state") == "Complete"]
        if not done:
            return None
        job = max(done, key=lambda j: (j.get("completionTime") or "", j["name"]))["name"]
        old = (body.get("status") or {}).get("backup") or {}
        if old.get("lastJob") == job and old.get("lastArchive"):
            return old["lastArchive"], int(old.get("lastArchiveSize") or 0)
        namespace = body["metadata"]["namespace"]
        if job not in memory.archives:
            pods = await self.kube.list("Pod", namespace, label_selector=f"job-name={job}")
            memory.archives[job] = _archive_of(pods)
        return memory.archives[job]

    async def _prune(self, rendered: Rendered, changed: list[str]) -> None:
        """Delete optional children the spec no longer asks for (only ones this site controls)."""
        site = rendered.site
        wanted = {o["kind"] for o in rendered.objects}
        for kind in OPTIONAL:
            have = self.actual(kind, site.namespace, site.name)
            refs = ((have or {}).get("metadata") or {}).get("ownerReferences") or []
            if kind in wanted or have is None or not any(r.get("uid") == site.uid for r in refs):
                continue
            await self.kube.delete(kind, site.namespace, site.name, api_version=have.get("apiVersion"))
            self.written.pop((kind, site.namespace, site.name), None)
            self._gone.add((kind, site.namespace, site.name, (have.get("metadata") or {}).get("uid")))
            changed.append(f"deleted {kind} {site.name}")

    async def _share_claim(self, rendered: Rendered) -> None:
        """A site mounting another site's Delete claim becomes one of its owners, so deleting the
        source site never deletes data this site still serves (the claim goes with its last owner)."""
        site = rendered.site
        if site.volume.type != "FromSite" or not rendered.volume.claim:
            return
        claim = self.actual("PersistentVolumeClaim", site.namespace, rendered.volume.claim)
        refs = ((claim or {}).get("metadata") or {}).get("ownerReferences") or []
        if not refs or any(r.get("uid") == site.uid for r in refs):
            return  # not owned by anyone (Retain: kept anyway), or already shared
        mine = {**owner_reference(site), "controller": False, "blockOwnerDeletion": False}
        meta = claim["metadata"]  # type: ignore[index]
        self._remember(await self.kube.patch("PersistentVolumeClaim", meta["namespace"], meta["name"],
                                             {"metadata": {"ownerReferences": [*refs, mine]}}))
        logger.info("site %s/%s: shares claim %s, added as an owner", site.namespace, site.name, meta["name"])

    async def _write_status(self, body: dict[str, Any], status: dict[str, Any]) -> bool:
        old = body.get("status") or {}
        status["conditions"] = merge_conditions(status["conditions"], old.get("conditions"), _now())
        if status == {k: v for k, v in old.items() if k in status} and set(old) <= set(status):
            return False
        patch = {"status": {**{k: None for k in old if k not in status}, **status}}
        meta = body["metadata"]
        self._remember(await self.kube.patch("HttpdSite", meta["namespace"], meta["name"], patch, sub="status"))
        return True

    def _announce(self, body: dict[str, Any], status: dict[str, Any]) -> None:
        """A Warning event and a log line when the site is refused or degraded (once per change)."""
        old = {c.get("type"): c for c in (body.get("status") or {}).get("conditions") or []}
        for cond in status["conditions"]:
            prior = old.get(cond["type"]) or {}
            if cond["status"] == "True" or (prior.get("status"), prior.get("reason"), prior.get("message")) == \
                    (cond["status"], cond["reason"], cond["message"]):
                continue
            refused = status.get("phase") in ("Failed", "Degraded") or cond["reason"] in WAITING_REASONS
            if cond["type"] == "Ready" and refused or cond["type"] in ("VolumeSynced", "LastBackupSucceeded"):
                meta = body["metadata"]
                logger.warning("site %s/%s: %s: %s", meta.get("namespace"), meta.get("name"),
                               cond["reason"], cond["message"])
                self.events.warn(body, cond["reason"], cond["message"])


def _settling(observed: Observed) -> bool:
    """Whether a child just created has not yet been answered by its controller."""
    deployment = observed.deployment
    if deployment is None or "observedGeneration" not in (deployment.get("status") or {}):
        return True
    return observed.claim is not None and (observed.claim.get("status") or {}).get("phase") != "Bound"


def _archive_of(pods: list[dict[str, Any]]) -> tuple[str, int] | None:
    """"NAME SIZE", as the backup container's last words (its termination message)."""
    for pod in pods:
        for container in (pod.get("status") or {}).get("containerStatuses") or []:
            message = ((container.get("state") or {}).get("terminated") or {}).get("message") or ""
            parts = message.split()
            if container.get("name") == "backup" and len(parts) == 2 and parts[1].isdigit():
                return parts[0], int(parts[1])
    return None


def _without_stale(kind: str, want: dict[str, Any], have: Mapping[str, Any]) -> dict[str, Any]:
    """Keys the operator owns that the spec no longer asks for are removed, not left behind:
    a ConfigMap's files, and the config checksum on a Deployment's pod template."""
    if kind == "ConfigMap":
        stale = {k: None for k in have.get("data") or {} if k not in want["data"]}
        return {**want, "data": {**want["data"], **stale}} if stale else want
    if kind == "Deployment":
        have_notes = (((have.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("annotations") or {}
        template = want["spec"]["template"]
        if ANNOTATION_CHECKSUM in have_notes and ANNOTATION_CHECKSUM not in template["metadata"].get("annotations", {}):
            annotations = {**template["metadata"].get("annotations", {}), ANNOTATION_CHECKSUM: None}
            template = {**template, "metadata": {**template["metadata"], "annotations": annotations}}
            return {**want, "spec": {**want["spec"], "template": template}}
    return want


def _paths(patch: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    for key, value in patch.items():
        if isinstance(value, Mapping) and value and key in ("metadata", "spec", "template"):
            yield from _paths(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"
