"""Promises kept while the API server errs, watches break and the operator dies mid-way."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from typing import Any

import kmock
import pytest
from support import SITES, Api, eventually, site

from httpd_operator.settings import Settings

CLAIMS = "v1/persistentvolumeclaims"
DEPLOYMENTS = "apps/v1/deployments"
SERVICES = "v1/services"


def ours(request: Any) -> bool:
    """Requests of the operator (its client and kopf), not of the test."""
    agent = request.headers.get("User-Agent", "")
    return agent.startswith("httpd-operator/") or "kopf" in agent


def converged(api: Api, names: list[str], replicas: int = 1) -> bool:
    for name in names:
        status = api.site_status("ns", name)
        generation = (api.get(SITES, "ns", name) or {}).get("metadata", {}).get("generation")
        if status.get("phase") != "Ready" or status.get("observedGeneration") != generation:
            return False
        deployment = api.get(DEPLOYMENTS, "ns", name)
        if deployment is None or deployment["spec"]["replicas"] != replicas:
            return False
    return True


def children_exactly_once(api: Api, names: list[str]) -> None:
    for resource, suffix in ((CLAIMS, "-htdocs"), (DEPLOYMENTS, ""), (SERVICES, "")):
        found = sorted(o["metadata"]["name"] for o in api.server.list(resource, "ns")
                       if o["metadata"].get("labels", {}).get("app.kubernetes.io/managed-by") == "httpd-operator")
        assert found == sorted(n + suffix for n in names), resource


@pytest.mark.timeout(600)
async def test_sites_converge_through_api_errors_without_duplicates_or_storms(api: Api, operator) -> None:
    rnd = random.Random(2026)
    server = api.server

    async def commit_then_fail(request: Any) -> None:  # the write happens, the answer is lost
        await server._serve_object(request)
        raise kmock.KubernetesError(status=504, reason="Timeout", message="injected: committed, then timed out")

    def share(method: str, p: float, extra: Any = lambda r: True) -> Any:
        return lambda r: ours(r) and r.method.value == method and extra(r) and rnd.random() < p

    server[share("POST", 0.15, lambda r: "/events" not in r.url.path)] << commit_then_fail
    server[share("POST", 0.2)] << kmock.KubernetesError(status=500, reason="InternalError", message="injected")
    server[share("PATCH", 0.2)] << kmock.KubernetesError(status=503, reason="ServiceUnavailable", message="injected")
    server[share("PATCH", 0.1, lambda r: "/status" in r.url.path)] << kmock.KubernetesError(
        status=409, reason="Conflict", message="injected: the object has been modified")
    too_many = {"kind": "Status", "code": 429, "reason": "TooManyRequests"}
    server[share("GET", 0.1)] << 429 << {"Retry-After": "1"} << too_many

    hung: list[str] = []

    async def hang_then_commit(request: Any) -> Any:  # no answer in time; the write lands later
        hung.append(request.url.path)
        await asyncio.sleep(1.5)  # longer than the operator's request timeout, not a synchronisation
        return await server._serve_object(request)

    server[share("PATCH", 0.1, lambda r: "/status" not in r.url.path)] << hang_then_commit
    server[share("POST", 0.1, lambda r: "/events" not in r.url.path)] << hang_then_commit
    await operator(Settings(request_timeout=0.5))
    names = [f"site-{i}" for i in range(8)]
    for name in names:
        await api.create_site(site(name))
    # Injected errors push a site's backoff up to a minute: the deadline leaves room for two of them.
    await eventually(lambda: converged(api, names), timeout=200)
    for name in names[:4]:
        await api.patch_site("ns", name, {"spec": {"replicas": 2}})
    await eventually(lambda: converged(api, names[:4], replicas=2) and converged(api, names[4:]), timeout=200)
    children_exactly_once(api, names)
    assert hung  # client-side timeouts did happen (and the late writes landed) along the way
    # Backoff, not a storm: the operator's writes stay within a small multiple of what it needs.
    writes = [r for r in server._requests
              if ours(r) and r.method.value in ("POST", "PATCH") and "/events" not in r.url.path]
    assert len(writes) < 15 * len(names), len(writes)


async def test_watch_streams_cut_mid_way_are_resumed(api: Api, operator) -> None:
    await operator()
    await api.create_site(site("a"))
    await eventually(lambda: converged(api, ["a"]))
    for round_ in range(3):
        api.server.cut_watches()
        await api.patch_site("ns", "a", {"spec": {"replicas": 2 + round_}})
        await eventually(lambda round_=round_: converged(api, ["a"], replicas=2 + round_))
    await api.create_site(site("b"))
    await eventually(lambda: converged(api, ["a", "b"]) is False and converged(api, ["b"]))


async def test_a_404_for_the_sites_group_while_the_apiserver_restarts_is_waited_out(api: Api, operator) -> None:
    """A restarting kube-apiserver answers "404 page not found" for a custom resource's group
    until it has loaded the CRD (seen on the real one, tests/controlplane/test_real_faults.py).
    kopf's watcher took that as fatal and nothing was reconciled again until a restart."""
    await operator()
    await api.create_site(site("a"))
    await eventually(lambda: converged(api, ["a"]))
    restarting = True
    refused: list[str] = []

    def sites_not_yet_served(request: Any) -> bool:
        if restarting and ours(request) and request.url.path.startswith("/apis/httpd.dev/"):
            refused.append(request.url.path)
            return True
        return False

    api.server[sites_not_yet_served] << 404 << b"404 page not found"
    api.server.cut_watches()
    await eventually(lambda: len(refused) >= 2, what="the operator asking again while the group is not served")
    restarting = False
    await api.patch_site("ns", "a", {"spec": {"replicas": 2}})
    await api.create_site(site("b"))
    await eventually(lambda: converged(api, ["a"], replicas=2) and converged(api, ["b"]), timeout=60,
                     what="both sites reconciled once the group is served again")


async def test_operator_killed_at_random_points_converges_and_never_deletes_claims(api: Api) -> None:
    rnd = random.Random(7)
    cmd = [sys.executable, "-m", "httpd_operator", "run", "--all-namespaces", "--kubeconfig", str(api.kubeconfig)]
    names = [f"k-{i}" for i in range(12)]
    created = 0
    for round_ in range(4):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for name in names[created:created + 4]:
                await api.create_site(site(name, volume={"size": "1Gi"}))
            for name in names[:created]:
                await api.patch_site("ns", name, {"spec": {"replicas": 1 + round_ % 2}})
            created += 4
            await asyncio.sleep(rnd.uniform(0.3, 2.0))  # a random moment to die at, not a synchronisation
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            await asyncio.to_thread(proc.wait)
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        # The last round set every site to 2 replicas.
        await eventually(lambda: converged(api, names, replicas=2), timeout=90)
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait)
    children_exactly_once(api, names)
    claim_deletes = [r for r in api.server._requests
                     if r.method.value == "DELETE" and "persistentvolumeclaims" in r.url.path]
    assert claim_deletes == []


async def test_a_namespace_being_deleted_is_not_hammered(api: Api, operator) -> None:
    """kube-apiserver refuses creates in a terminating namespace (403) while the namespace
    controller deletes the children before the site: the operator must not retry what can never
    succeed (its site's deletion follows), but leave sites elsewhere unaffected."""
    terminating = ("services \"doomed\" is forbidden: unable to create new content in namespace ns "
                   "because it is being terminated")
    api.server[lambda r: r.method.value == "POST" and r.url.path == "/api/v1/namespaces/ns/services"] << \
        kmock.KubernetesError(status=403, reason="Forbidden", message=terminating)
    op = await operator()
    await api.create_site(site("doomed"))
    await api.create_site(site("fine", namespace="other"))
    await eventually(lambda: (api.site_status("other", "fine") or {}).get("phase") == "Ready")
    await eventually(lambda: op.engine.idle and op.engine.reconciled >= 2)
    attempts = [r for r in api.server._requests if ours(r) and r.method.value == "POST"
                and r.url.path == "/api/v1/namespaces/ns/services"]
    # Refused once; no retry is scheduled (the engine is idle), and the children's own events
    # (created, bound, rolled out: deleted, in a real namespace teardown) do not try it again.
    assert len(attempts) == 1, len(attempts)


async def test_a_site_recreated_after_a_refusal_is_not_held_to_the_old_one(api: Api, operator) -> None:
    """The API server refuses a site's Deployment once (422): the site is Failed (ChildRejected).
    Deleted and created again under the same name, valid, it is a new object (a new uid, generation
    1 again): it must become Ready with its Deployment, not inherit the first one's refusal."""
    refused: list[Any] = []

    def once(request: Any) -> bool:
        hit = not refused and ours(request) and request.method.value == "POST" and \
            request.url.path == "/apis/apps/v1/namespaces/ns/deployments"
        if hit:
            refused.append(request)
        return hit

    api.server[once] << kmock.KubernetesError(status=422, reason="Invalid", message=(
        "Deployment.apps \"web\" is invalid: spec.template.spec.affinity.nodeAffinity."
        "requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms: Required value: must have at least one"))
    await operator()
    await api.create_site(site("web"))
    await eventually(lambda: api.site_status("ns", "web").get("conditions", [{}])[0].get("reason") == "ChildRejected")
    assert api.get(DEPLOYMENTS, "ns", "web") is None
    await api.delete("/apis/httpd.dev/v1alpha1/namespaces/ns/httpdsites/web")
    await eventually(lambda: api.get(SITES, "ns", "web") is None)
    await api.create_site(site("web"))
    await eventually(lambda: converged(api, ["web"]), what="the re-created site Ready with its Deployment")
    assert len(refused) == 1
