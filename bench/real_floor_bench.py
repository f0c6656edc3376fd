#!/usr/bin/env python3
"""The operator against its floor on the real kube-apiserver, like for like, in one run.

    hack/control-plane start
    python bench/real_floor_bench.py --sites 100 --sites 1000

For each N, one after the other on the same control plane, all as the operator's ServiceAccount
(the shipped RBAC), 16 sites in flight:
  floor   N sites created first (as a GitOps tool applying a folder does), then a plain client
          makes exactly the writes each needs, one after the other: the objects `render_body`
          gives (claim, Deployment, Service, NetworkPolicy) and one status patch for its
          generation (no Event: the operator posts one more write per site).
  cold    N other sites created first, then `httpd-operator run` started; the clock runs from
          its start until every site has its three children and a status for its generation.
  steady  with the operator running, N more sites applied at once; the same clock.
"Settled" does not wait for the claim binder or the pods. Requests are counted by verb in the
apiserver's audit log; the operator's peak RSS and CPU come from /proc.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import json
import pathlib
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from httpd_operator.kube import ApiError, Kube, load_configuration, path
from httpd_operator.render import render_body
from httpd_operator.settings import Settings
from httpd_operator.status import Observed, desired_status, merge_conditions

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from operator_bench import proc_stats  # noqa: E402
from real_cluster import audit, install, mark, operator_kubeconfig  # noqa: E402

IN_FLIGHT = 16
CHILDREN = ("PersistentVolumeClaim", "Deployment", "Service")  # what "settled" counts


async def bounded(items: list[Any], work: Callable[[Any], Awaitable[None]]) -> None:
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def one(item: Any) -> None:
        async with gate:
            await work(item)
    await asyncio.gather(*(one(i) for i in items))


def site(name: str) -> dict[str, Any]:
    return {"apiVersion": "httpd.dev/v1alpha1", "kind": "HttpdSite", "metadata": {"name": name},
            "spec": {"replicas": 1}}


async def create_sites(kube: Kube, ns: str, n: int) -> list[dict[str, Any]]:
    created: list[dict[str, Any]] = []

    async def one(i: int) -> None:
        created.append(await kube.call("POST", path("HttpdSite", ns), site(f"site-{i:05d}")))
    await bounded(list(range(n)), one)
    return created


async def floor(kube: Kube, sites: list[dict[str, Any]]) -> None:
    """Per site, what it needs and nothing more: three creates and one status patch."""
    settings = Settings()

    async def one(body: dict[str, Any]) -> None:
        ns, rendered = body["metadata"]["namespace"], render_body(body, settings)
        made: dict[str, dict[str, Any]] = {}
        for obj in rendered.objects:  # what the operator renders for it (claim, Deployment, Service, NetworkPolicy)
            made[obj["kind"]] = await kube.call("POST", path(obj["kind"], ns), obj)
        status = desired_status(body, rendered, Observed(claim=made.get("PersistentVolumeClaim"),
                                                          deployment=made.get("Deployment")))
        status["conditions"] = merge_conditions(status["conditions"], None,
                                                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        await kube.call("PATCH", path("HttpdSite", ns, body["metadata"]["name"], "status"),
                        {"status": status}, content_type="application/merge-patch+json")
    await bounded(sites, one)


async def settled(kube: Kube, ns: str, n: int) -> bool:
    """Every site has a status for its generation and the namespace holds its three children each."""
    items = (await kube.call("GET", path("HttpdSite", ns)))["items"]
    if len(items) < n or any((s.get("status") or {}).get("observedGeneration") != s["metadata"]["generation"]
                             for s in items):
        return False
    for kind in CHILDREN:
        if len((await kube.call("GET", path(kind, ns), query={"limit": str(n + 1)}))["items"]) < n:
            return False
    return True


async def until_settled(kube: Kube, ns: str, n: int, started: float, timeout: float = 900.0) -> float:
    while not await settled(kube, ns, n):
        if time.monotonic() - started > timeout:
            raise SystemExit(f"{ns}: not settled in {timeout:.0f} s")
        # polling the API for the outcome, not a synchronisation; each poll lists N sites, so not
        # more often than this, or the poll itself would load the apiserver being measured
        await asyncio.sleep(1.0)
    return time.monotonic() - started


def by_verb(entries: list[dict[str, Any]]) -> collections.Counter[str]:
    return collections.Counter(f"{e['verb']} {(e.get('objectRef') or {}).get('resource')}"
                               + ("/" + e["objectRef"]["subresource"] if (e.get("objectRef") or {}).get("subresource")
                                  else "") for e in entries)


def report(label: str, n: int, seconds: float, entries: list[dict[str, Any]], extra: str = "") -> dict[str, Any]:
    verbs = by_verb(entries)
    writes = sum(v for k, v in verbs.items() if k.split()[0] in ("create", "update", "patch", "delete"))
    print(f"  {label:<7} {seconds:7.1f} s  {n / seconds:6.1f} sites/s  {writes / n:5.2f} writes/site  "
          f"{sum(verbs.values()) / n:5.2f} requests/site  {extra}")
    for key, count in verbs.most_common():
        print(f"            {key:<44} {count / n:6.2f}/site")
    return {"seconds": seconds, "writes_per_site": writes / n, "verbs": dict(verbs)}


async def namespace(kube: Kube, name: str) -> None:
    await kube.call("POST", "/api/v1/namespaces", {"metadata": {"name": name}})


async def gone(kube: Kube, names: list[str], timeout: float = 900.0) -> None:
    """The namespaces deleted and gone, so the next run does not meet this one's teardown."""
    for name in names:
        await kube.call("DELETE", f"/api/v1/namespaces/{name}")
    deadline = time.monotonic() + timeout
    for name in names:
        while time.monotonic() < deadline:
            try:
                await kube.call("GET", f"/api/v1/namespaces/{name}")
            except ApiError as exc:
                if exc.status == 404:
                    break
                raise
            await asyncio.sleep(1)  # polling the namespace's deletion, not a synchronisation


async def one_size(admin: Kube, sa: Kube, sa_config: pathlib.Path, log: pathlib.Path, n: int,
                   folder: pathlib.Path) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:5]
    floor_ns, cold_ns, steady_ns = f"floor-{tag}", f"cold-{tag}", f"steady-{tag}"
    for ns in (floor_ns, cold_ns, steady_ns):
        await namespace(admin, ns)
    print(f"== {n} sites (namespaces *-{tag})")
    out: dict[str, Any] = {}
    sites = await create_sites(admin, floor_ns, n)
    since, started = mark(log), time.monotonic()
    await floor(sa, sites)
    out["floor"] = report("floor", n, await until_settled(admin, floor_ns, n, started), audit(log, since))
    await gone(admin, [floor_ns])  # its objects do not load the apiserver's watches during the next runs
    await create_sites(admin, cold_ns, n)
    since, started = mark(log), time.monotonic()
    operator = subprocess.Popen([sys.executable, "-m", "httpd_operator", "run", "-n", cold_ns, "-n", steady_ns,
                                 "--kubeconfig", str(sa_config)], stdout=subprocess.DEVNULL,
                                stderr=open(folder / f"operator-{n}.log", "w"))  # noqa: SIM115
    try:
        seconds = await until_settled(admin, cold_ns, n, started)
        rss, cpu = proc_stats(operator.pid)
        out["cold"] = report("cold", n, seconds, audit(log, since), f"RSS {rss:.0f} MiB, CPU {cpu:.1f} s")
        await asyncio.sleep(2)  # a moment for the cold run's last writes to land (not a synchronisation)
        since, started = mark(log), time.monotonic()
        await create_sites(admin, steady_ns, n)
        seconds = await until_settled(admin, steady_ns, n, started)
        rss2, cpu2 = proc_stats(operator.pid)
        out["steady"] = report("steady", n, seconds, audit(log, since),
                               f"RSS {rss2:.0f} MiB, CPU {cpu2 - cpu:.1f} s")
    finally:
        operator.terminate()
        operator.wait(60)
    print(f"  ratios: cold/floor {out['cold']['seconds'] / out['floor']['seconds']:.2f}, "
          f"steady/floor {out['steady']['seconds'] / out['floor']['seconds']:.2f}")
    await gone(admin, [cold_ns, steady_ns])
    return out


async def main_async(args: argparse.Namespace, admin_config: pathlib.Path, sa_config: pathlib.Path,
                     folder: pathlib.Path) -> None:
    admin = Kube(load_configuration(str(admin_config)))
    sa = Kube(load_configuration(str(sa_config)))
    try:
        results = {}
        for n in args.sites:
            results[n] = await one_size(admin, sa, sa_config, pathlib.Path(args.scratch) / "audit.log", n, folder)
        if args.json:
            pathlib.Path(args.json).write_text(json.dumps(results, indent=1))
        print(f"(operator logs in {folder})")
    finally:
        await sa.aclose()
        await admin.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sites", type=int, action="append", default=None, help="repeatable (default: 100)")
    parser.add_argument("--scratch", default="/tmp/httpd-operator-cp", help="hack/control-plane's scratch dir")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()
    args.sites = args.sites or [100]
    admin_config = pathlib.Path(args.scratch) / "kubeconfig"
    install(admin_config)
    folder = pathlib.Path(tempfile.mkdtemp(prefix="real-floor-"))
    sa_config = operator_kubeconfig(load_configuration(str(admin_config)), admin_config, folder)
    asyncio.run(main_async(args, admin_config, sa_config, folder))


if __name__ == "__main__":
    main()
