#!/usr/bin/env python3
"""Create N sites in the emulated API and measure the operator converging them.

The operator runs as its own process (`httpd-operator run`, as users run it) against the emulated
API server in this process, so its RSS and CPU are its own. Prints: seconds until every site is
Ready, sites per second, API requests per site by verb, writes during an idle period afterwards,
and the operator's peak RSS and CPU seconds.

    python bench/operator_bench.py --sites 100 --sites 1000
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import pathlib
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator

import aiohttp
import yaml

from httpd_operator.emulator import ApiServer
from httpd_operator.emulator import kubeconfig as emulated_kubeconfig

ROOT = pathlib.Path(__file__).resolve().parent.parent
CRD = yaml.safe_load((ROOT / "crds" / "httpdsites.yaml").read_text())
SITES = "httpd.dev/v1alpha1/httpdsites"
BENCH_AGENT = "httpd-operator-bench"


def proc_stats(pid: int) -> tuple[float, float]:
    """(peak RSS in MiB, CPU seconds) of a process, from /proc."""
    peak = 0.0
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) / 1024
    fields = pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return peak, cpu


def verb(request) -> str:  # type: ignore[no-untyped-def]
    method = request.method.value
    if method == "GET":
        if request.params.get("watch") in ("true", "1"):
            return "watch"
        return "get" if request.name else "list"
    return {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}.get(method, method)


# BENCH_PROFILE=FILE runs the operator under cProfile and writes its profile there (for pstats).
PROFILE = os.environ.get("BENCH_PROFILE", "")


def emulator() -> ApiServer:
    """The emulated API server with its controller stand-ins and the CRD."""
    server = ApiServer(controllers=True)
    server.load_builtin()
    server.register_crd(CRD)
    return server


@contextlib.asynccontextmanager
async def operator_process(server: ApiServer, url: str) -> AsyncIterator[subprocess.Popen[bytes]]:
    """`httpd-operator run` as its own process against `url`, once it is watching the sites."""
    folder = tempfile.mkdtemp()
    kubeconfig = pathlib.Path(folder) / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(emulated_kubeconfig(url)))
    operator = subprocess.Popen(
        [sys.executable, *(["-m", "cProfile", "-o", PROFILE] if PROFILE else []),
         "-m", "httpd_operator", "run", "--all-namespaces", "--kubeconfig", str(kubeconfig)],
        stdout=subprocess.DEVNULL, stderr=open(pathlib.Path(folder) / "operator.log", "w"))  # noqa: SIM115
    operator.log = f"{folder}/operator.log"  # type: ignore[attr-defined]
    try:
        # Wait until the operator is watching sites before starting the clock.
        deadline = time.monotonic() + 60
        while not any(r.params.get("watch") and r.resource and r.resource.plural == "httpdsites"
                      for r in server._requests[-200:]):
            if time.monotonic() > deadline or operator.poll() is not None:
                raise SystemExit(f"operator did not start; see {folder}/operator.log")
            await asyncio.sleep(0.05)
        yield operator
    finally:
        operator.terminate()
        operator.wait(30)


async def quiet(server: ApiServer, seconds: float = 2.0) -> None:
    """Until the server has received no request for `seconds` (the operator's work is done)."""
    quiet_since, seen = time.monotonic(), len(server._requests)
    while time.monotonic() - quiet_since < seconds:
        await asyncio.sleep(0.1)  # polling the request log, not a synchronisation
        if len(server._requests) != seen:
            quiet_since, seen = time.monotonic(), len(server._requests)


async def run(n: int, idle: float, concurrency: int) -> dict[str, object]:
    server = emulator()
    async with server.running() as url, operator_process(server, url) as operator:
        folder = operator.log.rsplit("/", 1)[0]  # type: ignore[attr-defined]
        async with aiohttp.ClientSession(url, headers={"User-Agent": BENCH_AGENT}) as client:
            first_request = len(server._requests)
            started, harness_cpu = time.monotonic(), time.process_time()
            semaphore = asyncio.Semaphore(concurrency)

            async def create(i: int) -> None:
                body = {"apiVersion": "httpd.dev/v1alpha1", "kind": "HttpdSite",
                        "metadata": {"name": f"site-{i:05d}", "namespace": f"ns-{i % 10}"},
                        "spec": {"replicas": 1 + i % 3}}
                async with semaphore, client.post(
                        f"/apis/httpd.dev/v1alpha1/namespaces/ns-{i % 10}/httpdsites", json=body) as resp:
                    assert resp.status == 201, await resp.text()

            await asyncio.gather(*(create(i) for i in range(n)))
            created = time.monotonic() - started
            waiting = {(f"ns-{i % 10}", f"site-{i:05d}") for i in range(n)}
            while waiting:  # only the sites not yet Ready are looked at: the poll stays cheap
                waiting = {key for key in waiting if ((server.peek_one(SITES, *key) or {}).get("status")
                                                      or {}).get("phase") != "Ready"}
                if time.monotonic() - started > 60 + n * 0.5:
                    raise SystemExit(f"only {n - len(waiting)}/{n} sites Ready; see {folder}/operator.log")
                await asyncio.sleep(0.1)  # polling the emulator's state, not a synchronisation
            converged = time.monotonic() - started
            # This process (the emulator and the site creates): if it was busy all along, the
            # emulator paced the run, not the operator.
            harness_cpu = time.process_time() - harness_cpu
            # Work left after the last site turned Ready (kopf's queued events, late status
            # writes) counts too: wait until the operator has sent nothing for 2 s.
            await quiet(server)
        operator_requests = [r for r in server._requests[first_request:]
                             if r.headers.get("User-Agent") != BENCH_AGENT]
        by_verb = collections.Counter(f"{verb(r)} {r.resource.plural if r.resource else r.url.path}"
                                      for r in operator_requests)
        writes_before = len(server._requests)
        await asyncio.sleep(idle)  # the idle period being measured, not a synchronisation
        idle_by_verb = collections.Counter(
            f"{verb(r)} {r.resource.plural if r.resource else r.url.path}" for r in server._requests[writes_before:]
            if r.method.value in ("POST", "PATCH", "PUT", "DELETE"))
        idle_writes = sum(idle_by_verb.values())
        rss, cpu = proc_stats(operator.pid)
    return {"sites": n, "created_s": created, "converged_s": converged, "by_verb": by_verb,
            "idle_writes": idle_writes, "idle_by_verb": idle_by_verb, "idle_s": idle, "rss_mib": rss, "cpu_s": cpu,
            "harness_cpu_s": harness_cpu}


def report(result: dict[str, object]) -> None:
    n = int(result["sites"])  # type: ignore[arg-type]
    by_verb: collections.Counter[str] = result["by_verb"]  # type: ignore[assignment]
    total = sum(by_verb.values())
    print(f"\n== {n} sites")
    print(f"converged in {result['converged_s']:.2f} s ({n / float(result['converged_s']):.0f} sites/s; "  # type: ignore[arg-type]
          f"creates sent in {result['created_s']:.2f} s)")
    print(f"operator API requests until quiet: {total} ({total / n:.2f} per site)")
    for key, count in sorted(by_verb.items(), key=lambda kv: -kv[1]):
        print(f"  {key:<40} {count:>7}  {count / n:6.2f}/site")
    print(f"writes during {result['idle_s']:.0f} s idle afterwards: {result['idle_writes']} "
          f"{dict(result['idle_by_verb']) or ''}")  # type: ignore[call-overload]
    print(f"operator peak RSS {result['rss_mib']:.0f} MiB, CPU {result['cpu_s']:.1f} s; "
          f"the emulator's CPU until converged {result['harness_cpu_s']:.1f} s")


def arguments(doc: str | None, idle: float) -> argparse.Namespace:
    """The options both benchmarks take."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sites", type=int, action="append", help="number of sites (repeatable)")
    parser.add_argument("--idle", type=float, default=idle, help="idle seconds to watch the operator for writes")
    parser.add_argument("--concurrency", type=int, default=32)
    return parser.parse_args()


def main() -> None:
    args = arguments(__doc__, idle=10.0)
    for n in args.sites or [100]:
        report(asyncio.run(run(n, args.idle, args.concurrency)))


if __name__ == "__main__":
    main()
