"""The emulated API server's own behaviour: where the operator depends on Kubernetes semantics."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import kmock
import pytest
from kmock._internal import dsl

from httpd_operator.emulator import ApiServer

CM = "/api/v1/namespaces/ns/configmaps"
DEPLOY = "/apis/apps/v1/namespaces/ns/deployments"


@pytest.fixture
async def emu() -> AsyncIterator[tuple[ApiServer, aiohttp.ClientSession]]:
    server = ApiServer()
    server.load_builtin()
    async with server.running() as url, aiohttp.ClientSession(url) as session:
        yield server, session


async def call(session: aiohttp.ClientSession, method: str, path: str, body: Any = None,
               ctype: str = "application/merge-patch+json") -> tuple[int, Any]:
    headers = {"Content-Type": ctype if method == "PATCH" else "application/json"}
    async with session.request(method, path, data=json.dumps(body) if body is not None else None,
                               headers=headers) as resp:
        return resp.status, await resp.json()


async def test_create_fills_server_fields_and_namespace_from_url(emu) -> None:
    _, s = emu
    status, obj = await call(s, "POST", CM, {"metadata": {"generateName": "cm-"}, "data": {"a": "1"}})
    assert status == 201
    meta = obj["metadata"]
    assert meta["namespace"] == "ns" and meta["name"].startswith("cm-") and len(meta["name"]) == 8
    assert meta["uid"] and meta["resourceVersion"] and meta["creationTimestamp"] and meta["generation"] == 1
    assert (obj["apiVersion"], obj["kind"]) == ("v1", "ConfigMap")
    status, again = await call(s, "POST", CM, {"metadata": {"name": meta["name"]}})
    assert (status, again["reason"]) == (409, "AlreadyExists")


async def test_every_write_bumps_resource_version_and_stale_versions_conflict(emu) -> None:
    _, s = emu
    _, obj = await call(s, "POST", CM, {"metadata": {"name": "c"}, "data": {"a": "1"}})
    rv1 = obj["metadata"]["resourceVersion"]
    _, obj2 = await call(s, "PATCH", f"{CM}/c", {"data": {"a": "2"}})
    assert int(obj2["metadata"]["resourceVersion"]) > int(rv1)
    status, err = await call(s, "PATCH", f"{CM}/c", {"metadata": {"resourceVersion": rv1}, "data": {"a": "3"}})
    assert (status, err["reason"]) == (409, "Conflict")
    status, err = await call(s, "PUT", f"{CM}/c", {"metadata": {"name": "c", "resourceVersion": rv1}})
    assert status == 409
    current = obj2["metadata"]["resourceVersion"]
    replacement = {"metadata": {"name": "c", "resourceVersion": current}, "data": {"b": "1"}}
    status, _ = await call(s, "PUT", f"{CM}/c", replacement)
    assert status == 200


async def test_json_patch_test_failure_is_422_and_applies_nothing(emu) -> None:
    server, s = emu
    _, obj = await call(s, "POST", CM, {"metadata": {"name": "c"}})
    ops = [{"op": "test", "path": "/metadata/resourceVersion", "value": "0"},
           {"op": "add", "path": "/metadata/finalizers", "value": ["x"]}]
    status, err = await call(s, "PATCH", f"{CM}/c", ops, ctype="application/json-patch+json")
    assert (status, err["reason"]) == (422, "Invalid")
    assert "finalizers" not in server.get("v1/configmaps", "ns", "c")["metadata"]
    ops[0]["value"] = obj["metadata"]["resourceVersion"]
    status, ok = await call(s, "PATCH", f"{CM}/c", ops, ctype="application/json-patch+json")
    assert status == 200 and ok["metadata"]["finalizers"] == ["x"]


async def test_status_subresource_and_generation(emu) -> None:
    _, s = emu
    _, d = await call(s, "POST", DEPLOY, {"metadata": {"name": "d"}, "spec": {"replicas": 1},
                                          "status": {"replicas": 9}})
    assert "status" not in d and d["metadata"]["generation"] == 1
    _, d = await call(s, "PATCH", f"{DEPLOY}/d", {"spec": {"replicas": 2}, "status": {"replicas": 5}})
    assert d["metadata"]["generation"] == 2 and "status" not in d
    _, d = await call(s, "PATCH", f"{DEPLOY}/d/status", {"spec": {"replicas": 7}, "status": {"replicas": 2}})
    assert d["status"] == {"replicas": 2} and d["spec"]["replicas"] == 2 and d["metadata"]["generation"] == 2
    _, d = await call(s, "PATCH", f"{DEPLOY}/d", {"metadata": {"labels": {"a": "b"}}})
    assert d["metadata"]["generation"] == 2  # metadata changes do not bump the generation
    _, scale = await call(s, "GET", f"{DEPLOY}/d/scale")
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 2


async def test_list_has_kind_and_core_discovery_has_proper_group_version(emu) -> None:
    _, s = emu
    await call(s, "POST", CM, {"metadata": {"name": "c", "labels": {"app": "x"}}})
    await call(s, "POST", CM, {"metadata": {"name": "d"}})
    _, listing = await call(s, "GET", CM)
    assert listing["kind"] == "ConfigMapList" and listing["apiVersion"] == "v1"
    assert int(listing["metadata"]["resourceVersion"]) > 0
    _, selected = await call(s, "GET", CM + "?labelSelector=app%3Dx")
    assert [i["metadata"]["name"] for i in selected["items"]] == ["c"]
    _, core = await call(s, "GET", "/api/v1")
    assert core["groupVersion"] == "v1"


async def test_watch_honours_resource_version_and_is_json(emu) -> None:
    _, s = emu
    _, first = await call(s, "POST", CM, {"metadata": {"name": "a"}})
    _, second = await call(s, "POST", CM, {"metadata": {"name": "b"}})
    await call(s, "DELETE", f"{CM}/a")
    since = first["metadata"]["resourceVersion"]
    async with s.get(f"{CM}?watch=true&resourceVersion={since}&timeoutSeconds=1") as resp:
        assert resp.headers["Content-Type"].startswith("application/json")
        events = [json.loads(line) async for line in resp.content if line.strip()]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "b"), ("DELETED", "a")]
    async with s.get(f"{CM}?watch=true&timeoutSeconds=1") as resp:
        events = [json.loads(line) async for line in resp.content if line.strip()]
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "b")]
    assert second["metadata"]["name"] == "b"


async def test_watch_streams_changes_as_they_happen(emu) -> None:
    _, s = emu
    async with s.get(f"{CM}?watch=true&timeoutSeconds=5") as resp:
        await call(s, "POST", CM, {"metadata": {"name": "live"}})
        line = await asyncio.wait_for(resp.content.readline(), 5)
    assert json.loads(line)["object"]["metadata"]["name"] == "live"


async def test_finalizers_then_cascading_deletion_by_owner_references(emu) -> None:
    server, s = emu
    _, owner = await call(s, "POST", CM, {"metadata": {"name": "owner", "finalizers": ["keep"]}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
    await call(s, "POST", CM, {"metadata": {"name": "child", "ownerReferences": [ref]}})
    await call(s, "POST", CM, {"metadata": {"name": "orphan"}})
    _, deleting = await call(s, "DELETE", f"{CM}/owner")
    assert deleting["metadata"]["deletionTimestamp"] and server.get("v1/configmaps", "ns", "owner")
    assert server.get("v1/configmaps", "ns", "child") is not None
    await call(s, "PATCH", f"{CM}/owner", {"metadata": {"finalizers": None}})
    assert server.get("v1/configmaps", "ns", "owner") is None
    for _ in range(100):  # the garbage collector acts after the owner is gone, as a controller does
        if server.get("v1/configmaps", "ns", "child") is None:
            break
        await asyncio.sleep(0.01)
    assert server.get("v1/configmaps", "ns", "child") is None  # garbage-collected
    assert server.get("v1/configmaps", "ns", "orphan") is not None


async def test_injected_faults_come_first_and_store_nothing(emu) -> None:
    server, s = emu
    server["create v1/configmaps"][:1] << kmock.KubernetesError(status=500, reason="Boom", message="injected")
    status, err = await call(s, "POST", CM, {"metadata": {"name": "c"}})
    assert (status, err["reason"]) == (500, "Boom")
    assert server.get("v1/configmaps", "ns", "c") is None
    status, _ = await call(s, "POST", CM, {"metadata": {"name": "c"}})
    assert status == 201


async def test_request_matching_does_not_rescan_the_request_log(emu, monkeypatch) -> None:
    server, s = emu
    server["get /nothing-matches-this"] << 418  # a plain filter reaction
    for i in range(50):
        await call(s, "POST", CM, {"metadata": {"name": f"c{i}"}})
    scans = []
    original = dsl.Root.__iter__
    monkeypatch.setattr(dsl.Root, "__iter__", lambda self: scans.append(1) or original(self))
    for i in range(20):
        await call(s, "GET", f"{CM}/c{i}")
    assert scans == []


async def test_controller_stand_ins_bind_claims_and_roll_out_deployments() -> None:
    server = ApiServer(controllers=True)
    server.load_builtin()
    async with server.running() as url, aiohttp.ClientSession(url) as s:
        await call(s, "POST", "/api/v1/namespaces/ns/persistentvolumeclaims",
                   {"metadata": {"name": "c"}, "spec": {"accessModes": ["ReadWriteOnce"],
                                                        "resources": {"requests": {"storage": "2Gi"}}}})
        await call(s, "POST", DEPLOY, {"metadata": {"name": "d"}, "spec": {"replicas": 3}})
        for _ in range(100):
            claim = server.get("v1/persistentvolumeclaims", "ns", "c")
            deployment = server.get("apps/v1/deployments", "ns", "d")
            if claim.get("status") and deployment.get("status"):
                break
            await asyncio.sleep(0.01)
        assert claim["status"] == {"phase": "Bound", "capacity": {"storage": "2Gi"}, "accessModes": ["ReadWriteOnce"]}
        pv = server.get("v1/persistentvolumes", None, claim["spec"]["volumeName"])
        assert pv["spec"]["claimRef"]["name"] == "c"
        assert deployment["status"]["readyReplicas"] == 3
