#!/usr/bin/env python3
"""The floor under the operator: the fewest API requests N sites need, against the same emulator.

A plain client (aiohttp) does, per site, exactly what the site needs and nothing more: create the
HttpdSite (as bench/operator_bench.py does), create its claim, Deployment and Service (the objects
`httpd_operator.render.render_body` gives) and write its final status once. It never reads, never
watches and posts no events: the status it writes is computed up front from what the emulator's
controller stand-ins are known to do (claims Bound, replicas ready), so it is a lower bound, not a
controller. Then the same N sites go through the real operator (operator_bench's `run()`), and
both are printed side by side: seconds to converge, requests per site by verb, ratios.

    python bench/floor_bench.py --sites 100
"""

from __future__ import annotations

import asyncio
import collections
import importlib.util
import json
import pathlib
import time
from typing import Any

import aiohttp
import yaml

from httpd_operator.emulator import ApiServer
from httpd_operator.kube import path
from httpd_operator.render import Rendered, render_body
from httpd_operator.settings import Settings
from httpd_operator.status import Observed, condition, desired_status, merge_conditions

ROOT = pathlib.Path(__file__).resolve().parent.parent
CRD = yaml.safe_load((ROOT / "crds" / "httpdsites.yaml").read_text())
SITES = "httpd.dev/v1alpha1/httpdsites"
FLOOR_AGENT = "httpd-operator-floor"
MERGE = {"Content-Type": "application/merge-patch+json"}


def operator_bench() -> Any:
    """bench/operator_bench.py as a module (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location("operator_bench", ROOT / "bench" / "operator_bench.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def site_body(i: int) -> dict[str, Any]:
    """The same sites operator_bench creates."""
    return {"apiVersion": "httpd.dev/v1alpha1", "kind": "HttpdSite",
            "metadata": {"name": f"site-{i:05d}", "namespace": f"ns-{i % 10}"},
            "spec": {"replicas": 1 + i % 3}}


def final_status(site: dict[str, Any], rendered: Rendered, created: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The status the operator ends with, from the children as the controller stand-ins finish them."""
    claim = created.get("PersistentVolumeClaim")
    if claim is not None:
        spec = claim["spec"]
        claim = {**claim, "status": {"phase": "Bound", "accessModes": spec["accessModes"],
                                     "capacity": {"storage": spec["resources"]["requests"]["storage"]}}}
    deployment = created["Deployment"]
    replicas = deployment["spec"]["replicas"]
    deployment = {**deployment, "status": {
        "observedGeneration": deployment["metadata"]["generation"], "replicas": replicas,
        "readyReplicas": replicas, "availableReplicas": replicas, "updatedReplicas": replicas}}
    status = desired_status(site, rendered, Observed(claim=claim, deployment=deployment))
    status["conditions"].append(condition("VolumeSynced", True, "InSync", "the volume matches the spec"))
    status["conditions"] = merge_conditions(status["conditions"], None,
                                            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    return status


def unsettled(server: ApiServer, waiting: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Of the sites waited for, those not yet Ready with their claim Bound and their Deployment's
    replicas ready (only these are looked at: the poll stays cheap)."""
    def settled(ns: str, name: str) -> bool:
        site = server.peek_one(SITES, ns, name) or {}
        claim = server.peek_one("v1/persistentvolumeclaims", ns, f"{name}-htdocs") or {}
        deployment = server.peek_one("apps/v1/deployments", ns, name) or {}
        return ((site.get("status") or {}).get("phase") == "Ready"
                and (claim.get("status") or {}).get("phase") == "Bound"
                and (deployment.get("status") or {}).get("readyReplicas") == deployment["spec"]["replicas"])
    return {key for key in waiting if not settled(*key)}


def applied_event(site: dict[str, Any], message: str) -> dict[str, Any]:
    """The Normal event the operator posts when it creates a site's children (issue 4's rule)."""
    meta = site["metadata"]
    return {"apiVersion": "v1", "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {"apiVersion": site["apiVersion"], "kind": site["kind"], "name": meta["name"],
                               "namespace": meta["namespace"], "uid": meta["uid"]},
            "reason": "Applied", "message": message, "type": "Normal", "source": {"component": "floor"}}


async def floor(n: int, concurrency: int, verb: Any, required: bool = False) -> dict[str, Any]:
    """With `required`, also the two writes this operator's own rules add per site: the Applied
    Event, and the bound PersistentVolume's reclaim policy set to Retain (the data-safety rule;
    the volume is named pvc-<claim uid>, as provisioners name them)."""
    settings = Settings()
    server = ApiServer(controllers=True)
    server.load_builtin()
    server.register_crd(CRD)
    async with server.running() as url, aiohttp.ClientSession(url, headers={"User-Agent": FLOOR_AGENT}) as client:
        async def send(method: str, url_path: str, body: Any, headers: dict[str, str] | None = None) -> Any:
            async with client.request(method, "/" + url_path.lstrip("/"), data=json.dumps(body),
                                      headers=headers or {"Content-Type": "application/json"}) as resp:
                assert resp.status < 300, await resp.text()
                return await resp.json()

        semaphore = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            body = site_body(i)
            ns, name = body["metadata"]["namespace"], body["metadata"]["name"]
            async with semaphore:
                stored = await send("POST", path("HttpdSite", ns), body)
                rendered = render_body(stored, settings)
                created = {}
                for obj in rendered.objects:
                    created[obj["kind"]] = await send("POST", path(obj["kind"], ns), obj)
                if required:
                    await send("POST", f"/api/v1/namespaces/{ns}/events",
                               applied_event(stored, "; ".join(f"created {k}" for k in created)))
                    volume = f"pvc-{created['PersistentVolumeClaim']['metadata']['uid']}"
                    await send("PATCH", path("PersistentVolume", None, volume),
                               {"spec": {"persistentVolumeReclaimPolicy": "Retain"}}, MERGE)
                await send("PATCH", path("HttpdSite", ns, name, "status"),
                           {"status": final_status(stored, rendered, created)}, MERGE)

        first_request = len(server._requests)
        started = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(n)))
        written = time.monotonic() - started
        waiting = {(site_body(i)["metadata"]["namespace"], site_body(i)["metadata"]["name"]) for i in range(n)}
        while waiting := unsettled(server, waiting):
            if time.monotonic() - started > 60 + n * 0.5:
                raise SystemExit(f"floor: only {n - len(waiting)}/{n} sites settled")
            await asyncio.sleep(0.01)  # polling the emulator's state, not a synchronisation
        converged = time.monotonic() - started
        requests = server._requests[first_request:]
        by_verb = collections.Counter(f"{verb(r)} {r.resource.plural if r.resource else r.url.path}"
                                      for r in requests if r.headers.get("User-Agent") == FLOOR_AGENT)
    return {"sites": n, "written_s": written, "converged_s": converged, "by_verb": by_verb}


def report(floor_result: dict[str, Any], operator_result: dict[str, Any], required: dict[str, Any]) -> None:
    n = floor_result["sites"]
    # operator_bench counts only the operator's own requests (not the bench's HttpdSite creates).
    floor_verbs = collections.Counter({k: v for k, v in floor_result["by_verb"].items() if k != "create httpdsites"})
    op_verbs: collections.Counter[str] = operator_result["by_verb"]
    floor_total, op_total = sum(floor_verbs.values()), sum(op_verbs.values())
    print(f"\n== {n} sites: floor (plain client, exact writes) vs the operator")
    print(f"{'':44} {'floor':>10} {'operator':>10} {'ratio':>8}")
    f_s, o_s = floor_result["converged_s"], operator_result["converged_s"]
    print(f"{'seconds until every site is Ready':44} {f_s:10.2f} {o_s:10.2f} {o_s / f_s:8.1f}")
    print(f"{'  of which sending the HttpdSite creates':44} {'':10} {operator_result['created_s']:10.2f}")
    print(f"{'  floor: all its writes answered':44} {floor_result['written_s']:10.2f}")
    print(f"{'API requests per site (not the site create)':44} {floor_total / n:10.2f} {op_total / n:10.2f} "
          f"{op_total / floor_total:8.1f}")
    writes = ("create", "patch", "update", "delete")
    f_w = sum(v for k, v in floor_verbs.items() if k.split()[0] in writes)
    o_w = sum(v for k, v in op_verbs.items() if k.split()[0] in writes)
    print(f"{'  writes per site':44} {f_w / n:10.2f} {o_w / n:10.2f} {o_w / f_w:8.1f}")
    o_we = sum(v for k, v in op_verbs.items() if k.split()[0] in writes and not k.endswith(" events"))
    print(f"{'  writes per site, events left out':44} {f_w / n:10.2f} {o_we / n:10.2f} {o_we / f_w:8.1f}")
    o_core = sum(v for k, v in op_verbs.items() if k.split()[0] in writes and not k.endswith((" events",
                                                                                           " persistentvolumes")))
    print(f"{'  ... and volume protection (PV Retain) too':44} {f_w / n:10.2f} {o_core / n:10.2f} "
          f"{o_core / f_w:8.1f}")
    r_verbs = {k: v for k, v in required["by_verb"].items() if k != "create httpdsites"}
    r_s, r_total = required["converged_s"], sum(r_verbs.values())
    print("the floor plus the writes the operator's own rules add (the Applied Event, PV Retain):")
    print(f"{'  seconds until every site is Ready':44} {r_s:10.2f} {o_s:10.2f} {o_s / r_s:8.1f}")
    print(f"{'  API requests per site':44} {r_total / n:10.2f} {op_total / n:10.2f} {op_total / r_total:8.1f}")
    print("by verb (per site):")
    for key in sorted(set(floor_verbs) | set(op_verbs), key=lambda k: (-op_verbs.get(k, 0), k)):
        print(f"  {key:<42} {floor_verbs.get(key, 0) / n:10.2f} {op_verbs.get(key, 0) / n:10.2f}")
    print(f"operator: {operator_result['idle_writes']} writes during {operator_result['idle_s']:.0f} s idle "
          f"afterwards; peak RSS {operator_result['rss_mib']:.0f} MiB, CPU {operator_result['cpu_s']:.1f} s; "
          f"the emulator's CPU until converged {operator_result['harness_cpu_s']:.1f} s")


def main() -> None:
    bench = operator_bench()
    args = bench.arguments(__doc__, idle=2.0)
    for n in args.sites or [100]:
        floor_result = asyncio.run(floor(n, args.concurrency, bench.verb))
        required = asyncio.run(floor(n, args.concurrency, bench.verb, required=True))
        operator_result = asyncio.run(bench.run(n, args.idle, args.concurrency))
        report(floor_result, operator_result, required)


if __name__ == "__main__":
    main()
