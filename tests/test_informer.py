"""The operator's own watch loop (`informer.py`) against the emulated API server, over real HTTP.

Why: the engine's stores of children are only as good as this loop. A restarted operator must see
what exists (listed, type None) before it reconciles, then every change once and in order; a cut
stream must resume, not relist; deletions it missed while it could not watch must still reach the
store; a failing server must get a backoff, not a storm; and a peering resource that is not served
must not hold up start-up. Each test drives the real protocol and reads the server's request log.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import kmock
import pytest
from support import Api, eventually

from httpd_operator.connection import Cluster
from httpd_operator.informer import Informer
from httpd_operator.kube import Kube

CM = "/api/v1/namespaces/ns/configmaps"
PEERINGS = "/apis/kopf.dev/v1/clusterkopfpeerings"
WEB = {"app": "web"}
Event = tuple[str | None, str | None, str | None]  # (type, name, resourceVersion)


@dataclass
class Run:
    informer: Informer
    events: list[Event] = field(default_factory=list)
    raws: list[dict[str, Any]] = field(default_factory=list)

    def record(self, type_: str | None, raw: dict[str, Any]) -> None:
        meta = raw.get("metadata") or {}
        self.events.append((type_, meta.get("name"), meta.get("resourceVersion")))
        self.raws.append(raw)

    async def synced(self, timeout: float = 15.0) -> None:
        await asyncio.wait_for(self.informer.synced.wait(), timeout)


@pytest.fixture
async def start(api: Api) -> AsyncIterator[Callable[..., Run]]:
    """Start an informer as a task; cancelled and its client closed at the end of the test."""
    kube = Kube(Cluster(server=api.url))
    tasks: list[asyncio.Task[None]] = []

    def start_(url: str = CM, selector: str | None = None, missing_ok: bool = False) -> Run:
        run = Run(Informer(kube, url, selector, lambda t, raw: run.record(t, raw), "test", missing_ok=missing_ok))
        tasks.append(asyncio.create_task(run.informer.run()))
        return run

    yield start_
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await kube.aclose()


class Fault:
    """A predicate for kmock: the watch GETs on `url` while armed (at most `budget` of them).
    Decided once per request, so kmock may ask again; kmock's slices count from the log's start."""

    def __init__(self, url: str, budget: int = 1_000_000) -> None:
        self.url, self.budget, self.armed = url, budget, False
        self.hit: list[float] = []  # the event loop's time of each request failed
        self._decided: dict[int, bool] = {}

    def __call__(self, request: Any) -> bool:
        if request.id not in self._decided:
            hit = self.armed and len(self.hit) < self.budget and is_watch(request, self.url)
            self._decided[request.id] = hit
            if hit:
                self.hit.append(asyncio.get_running_loop().time())
        return self._decided[request.id]


def is_watch(request: Any, url: str) -> bool:
    return request.method.value == "GET" and request.url.path == url and request.params.get("watch") in ("1", "true")


def lists(api: Api, url: str = CM) -> list[Any]:
    return [r for r in api.server._requests
            if r.method.value == "GET" and r.url.path == url and "watch" not in r.params]


def watches(api: Api, url: str = CM) -> list[Any]:
    return [r for r in api.server._requests if is_watch(r, url)]


async def create(api: Api, name: str, labels: dict[str, str] | None = None) -> str:
    obj = await api.request("POST", CM, {"metadata": {"name": name, "labels": labels or {}}, "data": {"k": "1"}})
    return str(obj["metadata"]["resourceVersion"])


async def patch(api: Api, name: str, value: str) -> str:
    obj = await api.request("PATCH", f"{CM}/{name}", {"data": {"k": value}})
    return str(obj["metadata"]["resourceVersion"])


async def test_lists_then_streams_changes_in_order_through_the_selector(api: Api, start) -> None:
    pre = await create(api, "pre", WEB)
    await create(api, "stranger")  # no label: never reaches the callback
    run = start(selector="app=web")
    await run.synced()
    assert run.events == [(None, "pre", pre)]
    added = await create(api, "b", WEB)
    await create(api, "unlabelled")
    modified = await patch(api, "b", "2")
    await patch(api, "stranger", "2")
    await api.delete(f"{CM}/b")
    await eventually(lambda: len(run.events) >= 4, what="b's deletion")
    deleted = run.events[3][2]
    assert run.events == [(None, "pre", pre), ("ADDED", "b", added), ("MODIFIED", "b", modified),
                          ("DELETED", "b", deleted)]
    assert deleted is not None and int(deleted) > int(modified)


async def test_a_cut_stream_resumes_from_the_last_version_without_relisting(api: Api, start) -> None:
    first = await create(api, "a")
    run = start()
    await run.synced()
    second = await patch(api, "a", "2")
    await eventually(lambda: ("MODIFIED", "a", second) in run.events, what="the first change")
    api.server.cut_watches()
    third = await patch(api, "a", "3")
    sentinel = await create(api, "sentinel")
    await eventually(lambda: ("ADDED", "sentinel", sentinel) in run.events, what="the change after the cut")
    assert run.events == [(None, "a", first), ("MODIFIED", "a", second), ("MODIFIED", "a", third),
                          ("ADDED", "sentinel", sentinel)]
    assert len(lists(api)) == 1
    assert [w.params.get("resourceVersion") for w in watches(api)][1:] == [second]


async def test_deletions_missed_while_watches_fail_are_reported_after_the_relist(api: Api, start) -> None:
    await create(api, "keep")
    await create(api, "gone")
    run = start()
    await run.synced()
    fault = Fault(CM)
    api.server[fault] << kmock.KubernetesError(status=500, reason="InternalError", message="injected")
    fault.armed = True
    api.server.cut_watches()
    await eventually(lambda: len(fault.hit) >= 2, what="two failed watch attempts")
    await api.delete(f"{CM}/gone")  # while the informer cannot watch
    fault.armed = False
    await eventually(lambda: ("DELETED", "gone", None) in run.events, what="the missed deletion")
    # Reported by the relist (no resourceVersion: the watch never saw it), and once.
    assert [e for e in run.events if e[0] == "DELETED"] == [("DELETED", "gone", None)]
    assert run.raws[run.events.index(("DELETED", "gone", None))]["metadata"]["namespace"] == "ns"
    took = fault.hit[-1] - fault.hit[0]
    assert len(fault.hit) < 10, f"{len(fault.hit)} failed watch attempts in {took:.1f} s: no backoff"
    assert fault.hit[1] - fault.hit[0] >= 0.5, "retried at once: no backoff"
    assert len(lists(api)) >= 2
    later = await create(api, "later")
    await eventually(lambda: ("ADDED", "later", later) in run.events, what="a change once watches work")


async def test_an_object_made_again_while_watches_fail_is_reported_deleted_then_listed(api: Api, start) -> None:
    await create(api, "a")
    run = start()
    await run.synced()
    old_uid = run.raws[0]["metadata"]["uid"]
    fault = Fault(CM)
    api.server[fault] << kmock.KubernetesError(status=500, reason="InternalError", message="injected")
    fault.armed = True
    api.server.cut_watches()
    await eventually(lambda: len(fault.hit) >= 1, what="a failed watch attempt")
    await api.delete(f"{CM}/a")
    await create(api, "a")  # same name, another object (another uid)
    fault.armed = False
    await eventually(lambda: len(run.events) >= 3, what="the relist")
    assert [e[0] for e in run.events[1:3]] == ["DELETED", None]
    assert run.raws[1]["metadata"]["uid"] == old_uid  # the store drops the old one by its uid...
    assert run.raws[2]["metadata"]["uid"] != old_uid  # ...and keeps the new one


@pytest.mark.parametrize("gone", [
    pytest.param(kmock.KubernetesError(status=410, reason="Expired", message="injected"), id="http-status"),
    pytest.param({"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired"}}, id="watch-event"),
])
async def test_a_410_on_the_watch_relists_and_carries_on(api: Api, start, gone: Any) -> None:
    await create(api, "a")
    run = start()
    await run.synced()
    fault = Fault(CM, budget=1)
    api.server[fault] << gone
    fault.armed = True
    api.server.cut_watches()
    await eventually(lambda: len(lists(api)) == 2, what="the relist after the 410")
    assert len(fault.hit) == 1
    changed = await patch(api, "a", "2")
    await eventually(lambda: ("MODIFIED", "a", changed) in run.events, what="a change after the relist")


KOPF_PEERING_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "clusterkopfpeerings.kopf.dev"},
    "spec": {"group": "kopf.dev", "scope": "Cluster",
             "names": {"kind": "ClusterKopfPeering", "plural": "clusterkopfpeerings"},
             "versions": [{"name": "v1", "served": True, "storage": True}]},
}


async def test_missing_ok_reports_a_resource_not_served_and_picks_it_up_later(api: Api, start) -> None:
    run = start(PEERINGS, missing_ok=True)
    await run.synced()
    assert run.events == [("MISSING", None, None)] and run.raws == [{}]
    api.server.register_crd(KOPF_PEERING_CRD)
    await eventually(lambda: ("LISTED", None, None) in run.events, what="served now (no object yet)")
    await api.request("POST", PEERINGS, {"metadata": {"name": "httpd-operator"}})
    await eventually(lambda: any(e[1] == "httpd-operator" for e in run.events), what="the peering object")


async def test_without_missing_ok_a_resource_not_served_is_waited_for(api: Api, start) -> None:
    run = start(PEERINGS)
    with pytest.raises(TimeoutError):  # a bounded check that it stays unsynced, not a synchronisation
        await asyncio.wait_for(run.informer.synced.wait(), 1.5)
    assert run.events == []
    assert len(lists(api, PEERINGS)) >= 1  # it did ask
