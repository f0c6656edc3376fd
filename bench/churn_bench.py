#!/usr/bin/env python3
"""Churn: create and delete sites in waves, and watch the operator's memory.

The operator runs as its own process (bench/operator_bench.py's harness) against the emulated
API. Each wave creates `--per-wave` sites under names never used before, waits until every one is
Ready, deletes them all and waits until they and their children are gone and the operator is
quiet; then the operator's resident memory (VmRSS) is read. Whatever the operator keeps per site
must go with the site: the RSS after the last wave should be within 10 % of the RSS after the
first. The sites' claims are `reclaimPolicy: Delete` (a Retain claim outlives its site by design,
and the operator watches every claim: retained claims would grow it legitimately).

    python bench/churn_bench.py --waves 10 --per-wave 1000     # 10,000 sites
"""

from __future__ import annotations

import argparse
import asyncio
import pathlib
import sys
import time
from typing import Any

import aiohttp

ROOT = pathlib.Path(__file__).resolve().parent.parent
SITES = "httpd.dev/v1alpha1/httpdsites"
sys.path.insert(0, str(ROOT / "bench"))  # bench/ is not a package: operator_bench.py is its harness
import operator_bench  # noqa: E402

CHILDREN = ("v1/persistentvolumeclaims", "apps/v1/deployments", "v1/services", "policy/v1/poddisruptionbudgets")


def rss_mib(pid: int) -> float:
    """The process's resident memory now (VmRSS), in MiB."""
    for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def wave(bench: Any, server: Any, client: aiohttp.ClientSession, number: int, n: int,
               concurrency: int, log: str) -> float:
    """One wave: n new sites, Ready, then deleted and gone; returns the seconds it took."""
    started = time.monotonic()
    semaphore = asyncio.Semaphore(concurrency)
    keys = [(f"ns-{i % 10}", f"w{number:03d}-{i:05d}") for i in range(n)]

    async def send(method: str, ns: str, name: str, body: Any = None) -> None:
        url = f"/apis/httpd.dev/v1alpha1/namespaces/{ns}/httpdsites" + ("" if body else f"/{name}")
        try:
            async with semaphore, client.request(method, url, json=body) as resp:
                assert resp.status in (200, 201, 202), await resp.text()
        except TimeoutError:  # seen on long runs: the emulator itself stops answering one request
            raise SystemExit(f"wave {number}: the emulator did not answer {method} {url} within 60 s") from None

    await asyncio.gather(*(send("POST", ns, name, {
        "apiVersion": "httpd.dev/v1alpha1", "kind": "HttpdSite", "metadata": {"name": name, "namespace": ns},
        "spec": {"replicas": 1 + i % 3, "volume": {"reclaimPolicy": "Delete"}}}) for i, (ns, name) in enumerate(keys)))
    waiting = set(keys)
    while waiting:  # only the sites not yet Ready are looked at: the poll stays cheap
        waiting = {k for k in waiting
                   if ((server.peek_one(SITES, *k) or {}).get("status") or {}).get("phase") != "Ready"}
        if time.monotonic() - started > 60 + n * 0.5:
            raise SystemExit(f"wave {number}: only {n - len(waiting)}/{n} sites Ready; see {log}")
        await asyncio.sleep(0.1)  # polling the emulator's state, not a synchronisation
    ready = time.monotonic() - started
    await asyncio.gather(*(send("DELETE", ns, name) for ns, name in keys))
    left = [(SITES, ns, name) for ns, name in keys]
    left += [(kind, ns, name + ("-htdocs" if "claims" in kind else "")) for kind in CHILDREN for ns, name in keys]
    while left:  # the sites, then their children by garbage collection
        left = [k for k in left if server.peek_one(*k) is not None]
        if time.monotonic() - started > 120 + n * 0.2:
            raise SystemExit(f"wave {number}: {len(left)} objects not gone, e.g. {left[:3]}; see {log}")
        await asyncio.sleep(0.5)  # polling the emulator's state, not a synchronisation
    gone = time.monotonic() - started
    await bench.quiet(server)
    print(f"  (Ready after {ready:.1f} s, all gone after {gone:.1f} s)", flush=True)
    return time.monotonic() - started


async def run(waves: int, per_wave: int, concurrency: int) -> None:
    bench = operator_bench
    server = bench.emulator()
    async with server.running() as url, bench.operator_process(server, url) as operator, \
            aiohttp.ClientSession(url, headers={"User-Agent": bench.BENCH_AGENT},
                                  timeout=aiohttp.ClientTimeout(total=60)) as client:
        figures = []
        for number in range(waves):
            seconds = await wave(bench, server, client, number, per_wave, concurrency, operator.log)
            figures.append(rss_mib(operator.pid))
            print(f"wave {number + 1}/{waves}: {per_wave} sites created, Ready, deleted in {seconds:.1f} s; "
                  f"operator RSS {figures[-1]:.1f} MiB", flush=True)
        peak, cpu = bench.proc_stats(operator.pid)
    first, last = figures[0], figures[-1]
    print(f"\n{waves * per_wave} sites in {waves} waves of {per_wave}: operator RSS after the first wave "
          f"{first:.1f} MiB, after the last {last:.1f} MiB, ratio {last / first:.3f} "
          f"({'within' if last <= first * 1.1 else 'NOT within'} 10 %); peak {peak:.0f} MiB, CPU {cpu:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--waves", type=int, default=10)
    parser.add_argument("--per-wave", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    asyncio.run(run(args.waves, args.per_wave, args.concurrency))


if __name__ == "__main__":
    main()
