"""The real control plane's own failures (hack/control-plane restart: SIGKILL, then started again
on the same data), with the operator running as its ServiceAccount: the kube-apiserver killed
mid-run, etcd killed mid-run, and etcd compacted under the watches so that they get 410 Gone and
the informers relist. After each: every site converges, no child is made twice, the operator
deleted no claim and left no volume but Retain (the audit log), and a restarted operator's first
pass over the converged sites writes nothing. The seconds from recovery to convergence are
printed, not asserted. And the operator itself, as its own process, SIGKILLed ten times at random
moments while 500 sites are applied."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import pathlib
import random
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import pytest

from httpd_operator.kube import Kube, load_configuration

from .backends import OPERATOR_USER, RealBackend, operator_identity
from .test_scenarios import poll, restart_writes_nothing, settled, site

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "hack" / "control-plane"
SITES = 12
LABEL = "app.kubernetes.io/instance"


@pytest.fixture
async def real(control_plane: Any, api_client: Any, namespace: str, tmp_path: pathlib.Path,
               ) -> AsyncIterator[RealBackend]:
    config = await asyncio.to_thread(operator_identity, control_plane, api_client, tmp_path)
    admin = Kube(load_configuration(str(control_plane.kubeconfig)))
    backend = RealBackend(control_plane, namespace, admin, config)
    backend.timeout = 180.0
    try:
        yield backend
    finally:
        await backend.stop_operator()
        await admin.aclose()


def restart(component: str) -> float:
    """SIGKILL the component and start it again; the seconds until it served again."""
    out = subprocess.run(["bash", str(SCRIPT), "restart", component], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return float(out.stdout.strip().splitlines()[-1])


async def all_settled(backend: RealBackend, names: list[str]) -> bool:
    for name in names:
        if not await settled(backend, name):
            return False
    return True


async def no_loss_and_no_duplicates(backend: RealBackend, names: list[str], mark: int) -> None:
    for kind, plural in (("Deployment", "apps/v1/deployments"), ("Service", "v1/services"),
                         ("PersistentVolumeClaim", "v1/persistentvolumeclaims")):
        group = "/api" if plural.startswith("v1/") else "/apis"
        items = (await backend.admin.call("GET", f"{group}/{plural.rsplit('/', 1)[0]}/namespaces/{backend.namespace}/"
                                          f"{plural.rsplit('/', 1)[1]}"))["items"]
        owners = sorted(i["metadata"].get("labels", {}).get(LABEL, "") for i in items)
        assert owners == sorted(names), f"{kind}: {owners}"
    entries = backend.audit.read(since=0)
    deletes = [e["requestURI"] for e in entries if e["user"].get("username") == OPERATOR_USER and e["verb"] == "delete"
               and (e.get("objectRef") or {}).get("resource") == "persistentvolumeclaims"]
    assert deletes == []
    for name in names:
        claim = await backend.get("PersistentVolumeClaim", f"{name}-htdocs")
        volume = await backend.get_volume(claim["spec"]["volumeName"])
        await poll(lambda v=claim["spec"]["volumeName"]: _retain(backend, v), backend.timeout, "Retain")
        assert volume["metadata"]["name"] == claim["spec"]["volumeName"]
    volume_writes = {e["verb"] for e in entries[mark:] if e["user"].get("username") == OPERATOR_USER
                     and (e.get("objectRef") or {}).get("resource") == "persistentvolumes"}
    assert volume_writes <= {"get", "patch"}  # the Retain patch only


async def _retain(backend: RealBackend, volume: str) -> bool:
    return (await backend.get_volume(volume))["spec"]["persistentVolumeReclaimPolicy"] == "Retain"


async def _all_retained(backend: RealBackend, names: list[str]) -> bool:
    """Every site's claim is bound to a volume the operator has set to Retain."""
    volumes = (await backend.admin.call("GET", "/api/v1/persistentvolumes"))["items"]
    kept = {v["spec"].get("claimRef", {}).get("name") for v in volumes
            if v["spec"]["persistentVolumeReclaimPolicy"] == "Retain"}
    return {f"{n}-htdocs" for n in names} <= kept


async def run_through(backend: RealBackend, fault: Any) -> None:
    names = [f"site-{i}" for i in range(SITES)]
    operator = await backend.start_operator()
    mark = backend.mark()
    for name in names:
        await backend.create(site(name))
    await poll(lambda: _started(operator), backend.timeout, "the operator at work")
    serving_again = await asyncio.to_thread(fault)
    recovered = time.monotonic()
    await poll(lambda: all_settled(backend, names), backend.timeout, "every site converged after the fault")
    print(f"\n{fault.__name__}: served again in {serving_again:.1f} s; converged "
          f"{time.monotonic() - recovered:.1f} s after recovery")
    await no_loss_and_no_duplicates(backend, names, mark)
    await restart_writes_nothing(backend, operator, sites=SITES)


async def _started(operator: Any) -> bool:
    return operator.engine.reconciled >= 3


@pytest.mark.timeout(900)
async def test_the_apiserver_killed_mid_run(real: RealBackend) -> None:
    def apiserver_killed() -> float:
        return restart("kube-apiserver")

    await run_through(real, apiserver_killed)


@pytest.mark.timeout(900)
async def test_etcd_killed_mid_run(real: RealBackend) -> None:
    def etcd_killed() -> float:
        return restart("etcd")

    await run_through(real, etcd_killed)


def etcd(path: str, body: dict[str, Any], port: int) -> dict[str, Any]:
    """etcd's own API (its gRPC gateway over HTTP, on the client port)."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


@pytest.mark.timeout(900)
async def test_watches_answered_410_after_compaction_relist(real: RealBackend, control_plane: Any) -> None:
    port = int(control_plane.env().get("HTTPD_OPERATOR_CP_ETCD_PORT", "12379"))
    marks: list[int] = []

    def compacted_then_apiserver_restarted() -> float:
        # Later revisions elsewhere, compaction up to the newest: every watch's resourceVersion is
        # gone; the restarted apiserver's watches (and its cache) answer the informers 410.
        for i in range(5):
            subprocess.run([str(control_plane.kubectl), "-n", real.namespace, "create", "configmap", f"bump-{i}"],
                           env=control_plane.env(), check=True, capture_output=True)
        key = base64.b64encode(b"/registry").decode()
        revision = int(etcd("/v3/kv/range", {"key": key, "limit": 1}, port)["header"]["revision"])
        etcd("/v3/kv/compaction", {"revision": revision, "physical": True}, port)
        marks.append(real.mark())
        return restart("kube-apiserver")

    await run_through(real, compacted_then_apiserver_restarted)
    relists = {(e.get("objectRef") or {}).get("resource") for e in real.audit.read(since=marks[0])
               if e["user"].get("username") == OPERATOR_USER and e["verb"] == "list"}
    assert {"deployments", "services", "persistentvolumeclaims"} <= relists


KILLS = 10
MANY = 500


async def _created(backend: RealBackend, names: list[str]) -> None:
    """The sites applied at once, 16 in flight, as a GitOps tool applies a folder."""
    todo = iter(names)

    async def worker() -> None:
        for name in todo:
            await backend.create(site(name))

    await asyncio.gather(*(worker() for _ in range(16)))


async def _converged(backend: RealBackend, names: list[str]) -> bool:
    """Each site has a status for its generation and its three children (not waiting for the
    binder here: that is the controller-manager's pace, not the operator's)."""
    sites = (await backend.admin.call("GET", f"/apis/httpd.dev/v1alpha1/namespaces/{backend.namespace}/httpdsites"))
    done = {s["metadata"]["name"] for s in sites["items"]
            if (s.get("status") or {}).get("observedGeneration") == s["metadata"]["generation"]}
    if done != set(names):
        return False
    for group, plural in (("/apis/apps/v1", "deployments"), ("/api/v1", "services"),
                          ("/api/v1", "persistentvolumeclaims")):
        items = (await backend.admin.call("GET", f"{group}/namespaces/{backend.namespace}/{plural}"))["items"]
        if len(items) < len(names):
            return False
    return True


async def _bound(backend: RealBackend, count: int) -> bool:
    claims = (await backend.admin.call("GET", f"/api/v1/namespaces/{backend.namespace}/persistentvolumeclaims"))
    return sum(1 for c in claims["items"] if (c.get("status") or {}).get("phase") == "Bound") >= count


@pytest.mark.timeout(1200)
async def test_the_operator_sigkilled_ten_times_while_500_sites_are_applied(
        real: RealBackend, tmp_path: pathlib.Path) -> None:
    rnd = random.Random(2020)
    kubeconfig = tmp_path / "operator.kubeconfig"  # the ServiceAccount's, written by the fixture
    cmd = [sys.executable, "-m", "httpd_operator", "run", "--all-namespaces", "--kubeconfig", str(kubeconfig)]
    names = [f"s-{i:03d}" for i in range(MANY)]
    mark = real.mark()
    log = open(tmp_path / "operator.log", "ab")  # noqa: SIM115 (every run appends, closed below)
    applying = asyncio.create_task(_created(real, names))
    try:
        for _ in range(KILLS):
            proc = subprocess.Popen(cmd, stdout=log, stderr=log)
            await asyncio.sleep(rnd.uniform(1.0, 6.0))  # a random moment to die at, not a synchronisation
            os.kill(proc.pid, signal.SIGKILL)
            await asyncio.to_thread(proc.wait)
        await applying
        last_kill = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=log, stderr=log)
        try:
            await poll(lambda: _converged(real, names), real.timeout * 5, "every site converged after the kills")
            print(f"\n{MANY} sites, operator SIGKILLed {KILLS} times: converged "
                  f"{time.monotonic() - last_kill:.1f} s after the last kill")
            await poll(lambda: _bound(real, MANY), real.timeout * 5, "every claim bound (the binder's pace)")
            # the operator keeps each volume once its claim is bound: wait for that with it still running
            await poll(lambda: _all_retained(real, names), real.timeout * 5, "every bound volume kept (Retain)")
        finally:
            proc.terminate()
            await asyncio.to_thread(proc.wait, 60)
    finally:
        if not applying.done():
            applying.cancel()
        log.close()
    await no_loss_and_no_duplicates(real, names, mark)
    operator = await real.start_operator()
    await restart_writes_nothing(real, operator, sites=MANY)
