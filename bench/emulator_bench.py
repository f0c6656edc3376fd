#!/usr/bin/env python3
"""The emulator's own cost per request, kmock's request parse against ours, side by side.

    python bench/emulator_bench.py --requests 3000 --rounds 3

Each round serves the same mix an operator sends (create a claim, get it, merge-patch it,
patch a status, list with a label selector) from one client with 16 in flight, once with
kmock's own `Request._parse` and once with `emulator/request_parse.py`, alternating; it prints
the server process's CPU microseconds per request (client and server share this process: the
client's share is the same in both) and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import aiohttp
from kmock._internal import rendering

from httpd_operator.emulator import ApiServer, request_parse

OURS = rendering.Request.__dict__["_parse"]


async def one_round(n: int) -> float:
    server = ApiServer()
    server.load_builtin()
    async with server.running() as url, aiohttp.ClientSession(url) as client:
        gate = asyncio.Semaphore(16)
        claims = "/api/v1/namespaces/ns/persistentvolumeclaims"

        async def mix(i: int) -> None:
            name = f"c-{i:05d}"
            async with gate:
                body = {"metadata": {"name": name, "labels": {"app": str(i % 10)}},
                        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}
                async with client.post(claims, json=body) as r:
                    assert r.status == 201, await r.text()
                async with client.get(f"{claims}/{name}") as r:
                    await r.read()
                async with client.patch(f"{claims}/{name}", json={"metadata": {"annotations": {"a": "b"}}},
                                        headers={"Content-Type": "application/merge-patch+json"}) as r:
                    await r.read()
                async with client.patch(f"{claims}/{name}/status", json={"status": {"phase": "Bound"}},
                                        headers={"Content-Type": "application/merge-patch+json"}) as r:
                    await r.read()
                if i % 20 == 0:
                    async with client.get(claims, params={"labelSelector": "app=3"}) as r:
                        await r.read()
        started = time.process_time()
        await asyncio.gather(*(mix(i) for i in range(n // 4)))
        return (time.process_time() - started) / len(server._requests) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    figures: dict[str, list[float]] = {"kmock": [], "ours": []}
    for _ in range(args.rounds):
        for label, parse in (("kmock", request_parse.KMOCK_PARSE), ("ours", OURS)):
            rendering.Request._parse = parse  # type: ignore[method-assign,assignment]
            figures[label].append(asyncio.run(one_round(args.requests)))
    rendering.Request._parse = OURS  # type: ignore[method-assign,assignment]
    for label, values in figures.items():
        print(f"{label:<6} {statistics.median(values):7.0f} µs CPU per request (median of {args.rounds}: "
              + ", ".join(f"{v:.0f}" for v in values) + ")")
    print(f"ratio ours/kmock {statistics.median(figures['ours']) / statistics.median(figures['kmock']):.2f}")


if __name__ == "__main__":
    main()
