"""The engine's parts alone, against a fake client (an in-memory API with the client's methods,
no HTTP): scheduling, apply outcomes, per-site memory and the uid rule."""

from __future__ import annotations

import asyncio
import copy
import functools
import itertools
from collections.abc import Callable
from typing import Any

import pytest
import support
from support import eventually

from httpd_operator.engine import Engine
from httpd_operator.engine.apply import CREATES_IN_FLIGHT, Applier
from httpd_operator.engine.memory import Memories, SiteMemory
from httpd_operator.engine.queue import Queue, Result
from httpd_operator.engine.store import Store
from httpd_operator.kinds import STORED
from httpd_operator.kube import ApiError
from httpd_operator.settings import Settings
from httpd_operator.spec import parse_site


def _merge(into: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            into.pop(key, None)
        elif isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


class FakeKube:
    """The client interface the engine uses, over a dict: objects get a uid and a resourceVersion;
    `refuse(predicate, error)` makes the next matching call fail once."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str | None, str], dict[str, Any]] = {}
        self.calls: list[tuple[str, str, str]] = []
        self._faults: list[tuple[Callable[[str, str, str], bool], ApiError]] = []
        self._rv = itertools.count(1)

    def refuse(self, predicate: Callable[[str, str, str], bool], error: ApiError) -> None:
        self._faults.append((predicate, error))

    def _enter(self, verb: str, kind: str, name: str) -> None:
        self.calls.append((verb, kind, name))
        for fault in self._faults:
            if fault[0](verb, kind, name):
                self._faults.remove(fault)
                fault[1].object = f"{kind} {name}"
                raise fault[1]

    def _stamp(self, obj: dict[str, Any]) -> dict[str, Any]:
        obj["metadata"]["resourceVersion"] = str(next(self._rv))
        return copy.deepcopy(obj)

    async def get(self, kind: str, namespace: str | None, name: str, api_version: str | None = None) -> Any:
        self._enter("get", kind, name)
        obj = self.objects.get((kind, namespace, name))
        return copy.deepcopy(obj) if obj else None

    async def list(self, kind: str, namespace: str | None, label_selector: str | None = None) -> list[Any]:
        self._enter("list", kind, "")
        return [copy.deepcopy(o) for (k, ns, _), o in self.objects.items() if k == kind and ns == namespace]

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        self._enter("create", obj["kind"], meta["name"])
        key = (obj["kind"], meta.get("namespace"), meta["name"])
        if key in self.objects:
            raise ApiError(409, "already exists")
        new = copy.deepcopy(obj)
        new["metadata"]["uid"] = f"uid-{len(self.calls)}"
        self.objects[key] = new
        return self._stamp(new)

    async def patch(self, kind: str, namespace: str | None, name: str, patch: dict[str, Any],
                    sub: str | None = None, api_version: str | None = None) -> dict[str, Any]:
        self._enter("patch" + (f"/{sub}" if sub else ""), kind, name)
        obj = self.objects.get((kind, namespace, name))
        if obj is None:
            raise ApiError(404, "not found")
        _merge(obj, {"status": patch["status"]} if sub == "status" else patch)
        return self._stamp(obj)

    async def delete(self, kind: str, namespace: str | None, name: str, api_version: str | None = None) -> None:
        self._enter("delete", kind, name)
        self.objects.pop((kind, namespace, name), None)

    async def call(self, method: str, url: str, body: Any = None, **_: Any) -> Any:
        self._enter(method.lower(), "Event" if url.endswith("/events") else url, "")
        return body


site = functools.partial(support.site, uid="u1", generation=1, resource_version="1")


# -- the queue ---------------------------------------------------------------------------------------


async def test_kicks_within_the_window_fold_into_one_reconcile() -> None:
    runs: list[Any] = []

    async def work(key: Any) -> Result:
        runs.append(key)
        return Result("changed")

    queue = Queue(work, debounce=0.1)
    for _ in range(5):
        queue.kick(("ns", "a"))
    queue.kick(("ns", "b"))
    await queue.drain()
    assert sorted(runs) == [("ns", "a"), ("ns", "b")]
    assert queue.idle and queue.tracked() == 0


async def test_reconciles_in_flight_are_capped() -> None:
    running, peak, release = 0, 0, asyncio.Event()

    async def work(key: Any) -> Result:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await release.wait()
        running -= 1
        return Result("changed")

    queue = Queue(work, debounce=0, concurrency=2)
    for i in range(6):
        queue.kick(("ns", f"s{i}"))
    await eventually(lambda: running == 2)
    release.set()
    await queue.drain()
    assert peak == 2 and queue.reconciled == 6


async def test_api_errors_back_off_and_the_attempts_reset_on_success() -> None:
    failures, delays = [ApiError(503, "busy"), ApiError(503, "busy")], []

    async def work(key: Any) -> Result:
        if failures:
            raise failures.pop()
        return Result("changed")

    def delay(attempt: int, exc: BaseException) -> float:
        delays.append(attempt)
        return 0.01

    queue = Queue(work, debounce=0, api_delay=delay)
    queue.kick(("ns", "a"))
    await eventually(lambda: queue.reconciled == 3 and queue.idle)
    assert delays == [1, 2]  # doubling per attempt, counted per site
    assert queue.tracked() == 0  # succeeded: the attempts are forgotten


async def test_an_event_does_not_wait_out_a_failed_attempts_backoff() -> None:
    """After an outage a site may be minutes into its backoff; an event about it (the watch's
    relist once the server is back) reconciles it now. Its attempts still count."""
    runs: list[int] = []
    delays: list[int] = []

    async def work(key: Any) -> Result:
        runs.append(len(runs))
        if len(runs) == 1:
            raise ApiError(503, "busy")
        return Result("changed")

    def delay(attempt: int, exc: BaseException) -> float:
        delays.append(attempt)
        return 600.0  # a long backoff: the test would time out waiting for it

    queue = Queue(work, debounce=0.01, api_delay=delay)
    queue.kick(("ns", "a"))
    await eventually(lambda: delays == [1], what="the failed attempt's backoff")
    queue.kick(("ns", "a"))  # later than the failure, sooner than the retry
    await eventually(lambda: len(runs) == 2 and queue.idle, timeout=5, what="the event's reconcile")
    assert queue.tracked() == 0
    queue.kick(("ns", "a"), delay=60.0)  # a later requeue folds into nothing sooner...
    queue.kick(("ns", "a"))  # ...and a sooner kick replaces it
    await eventually(lambda: len(runs) == 3 and queue.idle, timeout=5, what="the sooner kick")


async def test_a_bug_in_one_site_never_stops_the_others() -> None:
    done: list[Any] = []

    async def work(key: Any) -> Result:
        if key == ("ns", "buggy"):
            raise KeyError("a bug")
        done.append(key)
        return Result("changed")

    queue = Queue(work, debounce=0, bug_delay=lambda attempt, exc: 0.01 if attempt < 3 else 60.0)
    for name in ("buggy", "a", "b"):
        queue.kick(("ns", name))
    await eventually(lambda: queue.reconciled >= 5)  # a, b, and buggy three times
    assert sorted(done) == [("ns", "a"), ("ns", "b")]


async def test_a_result_asks_for_its_own_requeue() -> None:
    runs: list[Any] = []

    async def work(key: Any) -> Result:
        runs.append(key)
        return Result("held", requeue_after=0.01) if len(runs) == 1 else Result("changed")

    queue = Queue(work, debounce=0)
    queue.kick(("ns", "a"))
    await eventually(lambda: len(runs) == 2 and queue.idle)


async def test_a_periodic_poll_lets_the_queue_idle_and_an_event_does_not_wait_for_it() -> None:
    """A git site is looked at every interval; the demo and the tests still see the queue idle
    between looks, and an event in between is handled at once."""
    runs: list[Any] = []

    async def work(key: Any) -> Result:
        runs.append(key)
        return Result("unchanged", poll_after=60.0)

    queue = Queue(work, debounce=0)
    queue.kick(("ns", "git"))
    await eventually(lambda: len(runs) == 1 and queue.idle)
    queue.kick(("ns", "git"))  # an event: sooner than the poll, so it takes its place
    assert not queue.idle
    await eventually(lambda: len(runs) == 2 and queue.idle)
    await queue.close()


# -- apply -------------------------------------------------------------------------------------------


def _claim(size: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": "web-htdocs", "namespace": "ns", "labels": {"a": "b"}},
            "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}}


async def test_apply_answers_what_it_did() -> None:
    kube, store, memory = FakeKube(), Store(STORED), SiteMemory("u1")
    applier, spec = Applier(kube, store), parse_site(site(), Settings())  # type: ignore[arg-type]
    created = await applier.apply(memory, spec, _claim("1Gi"))
    assert (created.action, str(created)) == ("created", "created PersistentVolumeClaim web-htdocs")
    assert memory.created_claim == "web-htdocs"
    assert (await applier.apply(memory, spec, _claim("1Gi"))).action == "unchanged"
    grown = await applier.apply(memory, spec, _claim("2Gi"))
    assert (grown.action, grown.fields) == ("updated", ("spec.resources",))
    shrunk = await applier.apply(memory, spec, _claim("1Gi"))
    assert shrunk.action == "unchanged" and shrunk.note and shrunk.note["reason"] == "ShrinkRefused"
    assert kube.objects[("PersistentVolumeClaim", "ns", "web-htdocs")]["spec"]["resources"]["requests"] == \
        {"storage": "2Gi"}


class SlowKube(FakeKube):
    """Creates that take a moment, counting how many run at once, per kind."""

    def __init__(self) -> None:
        super().__init__()
        self.running: dict[str, int] = {}
        self.peak: dict[str, int] = {}

    async def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        kind = obj["kind"]
        self.running[kind] = self.running.get(kind, 0) + 1
        self.peak[kind] = max(self.peak.get(kind, 0), self.running[kind])
        try:
            await asyncio.sleep(0.02)  # the server's latency being modelled, not a synchronisation
            return await super().create(obj)
        finally:
            self.running[kind] -= 1


async def test_a_sites_children_are_created_at_once_and_services_a_few_at_a_time() -> None:
    """One round trip per site, not one per child; Services capped (their ClusterIP allocations
    retry each other on a real kube-apiserver), whatever the sites in flight."""
    kube = SlowKube()
    engine = await _engine(kube)
    names = [f"web-{i}" for i in range(12)]
    for i, name in enumerate(names):
        body = site(name, uid=f"u{i}")
        engine.observe("HttpdSite", "ADDED", body)
        kube.objects[("HttpdSite", "ns", name)] = body
        engine.kick(("ns", name))
    await eventually(lambda: all(("Service", "ns", n) in kube.objects for n in names))
    assert kube.peak["Service"] == CREATES_IN_FLIGHT["Service"] < len(names)
    assert kube.peak["Deployment"] > CREATES_IN_FLIGHT["Service"]
    # within a site: its claim, Deployment and Service were all asked for before any answered
    first = [c for c in kube.calls if c[0] == "create" and c[2].startswith("web-0")]
    assert {k for _, k, _ in first[:3]} == {"PersistentVolumeClaim", "Deployment", "Service"}


async def test_a_refused_claim_change_is_reported_and_not_sent_again() -> None:
    kube, store, memory = FakeKube(), Store(STORED), SiteMemory("u1")
    applier, spec = Applier(kube, store), parse_site(site(), Settings())  # type: ignore[arg-type]
    await applier.apply(memory, spec, _claim("1Gi"))
    kube.refuse(lambda verb, kind, name: verb == "patch", ApiError(422, "the class cannot expand"))
    for _ in range(2):
        refused = await applier.apply(memory, spec, _claim("5Gi"))
        assert refused.action == "refused" and refused.note and refused.note["reason"] == "ResizeRefused"
    assert [c for c in kube.calls if c[0] == "patch"] == [("patch", "PersistentVolumeClaim", "web-htdocs")]


# -- memory and the uid rule ---------------------------------------------------------------------------


def test_memories_are_per_uid_and_a_new_uid_under_a_name_drops_the_old() -> None:
    memories = Memories()
    memories.of(("ns", "web"), "u1").protected = "pv-1"
    assert memories.of(("ns", "web"), "u1").protected == "pv-1"
    assert memories.of(("ns", "web"), "u2").protected is None  # another object: nothing carried over
    assert len(memories) == 1
    memories.drop(("ns", "web"), "u1")  # a late deletion of the first one spares the second
    assert len(memories) == 1
    memories.drop(("ns", "web"), "u2")
    assert len(memories) == 0
    memories.of(("ns", "web"), "u3")
    memories.drop(("ns", "web"))  # by name: whichever uid it had
    assert len(memories) == 0


async def _engine(kube: FakeKube) -> Engine:
    engine = Engine(Settings(), kube, debounce=0, status_hold=0)  # type: ignore[arg-type]
    engine.ready = True
    return engine


async def test_a_sites_memory_goes_with_it() -> None:
    kube = FakeKube()
    engine = await _engine(kube)
    engine.observe("HttpdSite", "ADDED", site())
    kube.objects[("HttpdSite", "ns", "web")] = site()
    engine.kick(("ns", "web"))
    await eventually(lambda: engine.reconciled >= 1 and engine.idle)
    assert len(engine.memories) == 1
    engine.observe("HttpdSite", "DELETED", site())
    assert len(engine.memories) == 0 and engine.queue.tracked() == 0


async def test_a_refusal_is_remembered_for_that_uid_only() -> None:
    kube = FakeKube()
    engine = await _engine(kube)
    kube.refuse(lambda verb, kind, name: (verb, kind) == ("create", "Deployment"), ApiError(422, "invalid affinity"))
    kube.objects[("HttpdSite", "ns", "web")] = site()
    engine.observe("HttpdSite", "ADDED", site())
    result = await engine.reconcile("ns", "web")
    assert result == Result("changed")
    status = kube.objects[("HttpdSite", "ns", "web")]["status"]
    assert (status["phase"], status["conditions"][0]["reason"]) == ("Failed", "ChildRejected")
    creates = len([c for c in kube.calls if c[:2] == ("create", "Deployment")])
    await engine.reconcile("ns", "web")  # the same generation: not sent again
    assert len([c for c in kube.calls if c[:2] == ("create", "Deployment")]) == creates
    # Deleted (its deletion unseen) and created again under the same name: a new uid, generation 1.
    engine.observe("HttpdSite", "ADDED", site(uid="u2", resource_version="100"))
    kube.objects[("HttpdSite", "ns", "web")] = site(uid="u2", resource_version="100")
    await engine.reconcile("ns", "web")
    assert ("Deployment", "ns", "web") in kube.objects
    assert len(engine.memories) == 1


@pytest.mark.parametrize("status", [400, 422])
async def test_a_rejected_child_fails_the_site_not_the_queue(status: int) -> None:
    kube = FakeKube()
    engine = await _engine(kube)
    kube.refuse(lambda verb, kind, name: (verb, kind) == ("create", "Service"), ApiError(status, "no"))
    for name in ("bad", "good"):
        kube.objects[("HttpdSite", "ns", name)] = site(name, uid=name)
        engine.observe("HttpdSite", "ADDED", site(name, uid=name))
    engine.kick(("ns", "bad"))
    engine.kick(("ns", "good"))
    await eventually(lambda: engine.reconciled >= 2 and engine.idle)
    assert kube.objects[("HttpdSite", "ns", "bad")]["status"]["phase"] == "Failed"
    assert ("Service", "ns", "good") in kube.objects


async def test_a_site_gone_without_its_deletion_seen_is_forgotten_at_its_next_reconcile() -> None:
    kube = FakeKube()
    engine = await _engine(kube)
    kube.objects[("HttpdSite", "ns", "web")] = site()
    engine.observe("HttpdSite", "ADDED", site())
    await engine.reconcile("ns", "web")
    assert len(engine.memories) == 1
    del engine.store.kinds["HttpdSite"][("ns", "web")]  # a relist that no longer has it
    engine.store.written.clear()
    assert await engine.reconcile("ns", "web") == Result("gone")  # e.g. kicked by a child's deletion
    assert len(engine.memories) == 0


def test_our_writes_answer_is_dropped_once_the_watch_delivers_it() -> None:
    """A quiet site must not keep its last status answer unpacked for ever (RSS at 10,000 sites)."""
    store = Store(STORED)
    answer = site(resource_version="7")
    store.remember(answer)
    assert store.actual("HttpdSite", "ns", "web") == answer  # read your writes, before the watch
    store.observe("HttpdSite", "MODIFIED", site(resource_version="6"))
    assert store.written  # an older event: the answer is still the newest
    store.observe("HttpdSite", "MODIFIED", site(resource_version="7"))
    assert not store.written
