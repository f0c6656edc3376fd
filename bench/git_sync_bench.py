"""What content from git costs: images/git/git-sync run directly against a local `git daemon`
(through a counting TCP proxy), as the writer pod runs it.

Prints:
- seconds from a push to the new revision switched in, with the writer looping at `--interval`
  (the wait is up to one interval plus one sync), and one sync of a change of `--files` files;
- the cost of a no-change interval: connections, bytes up and down, and milliseconds per sync.

    .venv/bin/python bench/git_sync_bench.py [--interval 10] [--pushes 5] [--idle 20] [--files 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import pathlib
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from test_git_sync import SCRIPT, _free_port, serving  # noqa: E402


class CountingProxy:
    """127.0.0.1:port -> 127.0.0.1:target, counting connections and bytes each way."""

    def __init__(self, target: int) -> None:
        self.target, self.port = target, _free_port()
        self.connections = self.up = self.down = 0
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()
        self.ready.wait(10)

    def reset(self) -> None:
        self.connections = self.up = self.down = 0

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        server = await asyncio.start_server(self._client, "127.0.0.1", self.port)
        self.ready.set()
        async with server:
            await server.serve_forever()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, upward: bool) -> None:
            while data := await src.read(65536):
                if upward:
                    self.up += len(data)
                else:
                    self.down += len(data)
                dst.write(data)
                await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer, True), pipe(up_reader, writer, False), return_exceptions=True)


def env(volume: pathlib.Path, url: str, **extra: str) -> dict[str, str]:
    return {"PATH": os.environ["PATH"], "HOME": str(volume.parent), "TMPDIR": str(volume.parent),
            "GIT_SYNC_REPOSITORY": url, "GIT_SYNC_REF": "main",
            "GIT_SYNC_ROOT": str(volume), **extra}


def once(volume: pathlib.Path, url: str) -> float:
    started = time.perf_counter()
    subprocess.run(["sh", str(SCRIPT)], env=env(volume, url, GIT_SYNC_ONCE="1"), check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--interval", type=int, default=10, help="the writer's interval, seconds (minimum 10)")
    parser.add_argument("--pushes", type=int, default=5)
    parser.add_argument("--idle", type=int, default=20, help="no-change syncs measured")
    parser.add_argument("--files", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch, serving(pathlib.Path(scratch)) as up:
        base = pathlib.Path(scratch)
        proxy = CountingProxy(up.port)
        url = f"git://127.0.0.1:{proxy.port}/site.git"
        up.commit({f"f{i:04d}.html": f"old {i}\n" for i in range(args.files)})
        volume = base / "volume"
        volume.mkdir()
        first = once(volume, url)
        up.commit({f"f{i:04d}.html": f"new {i}\n" for i in range(args.files)})
        change = once(volume, url)
        print(f"one sync: first clone of {args.files} files {first:.2f} s; a change of all {args.files} "
              f"files switched in {change:.2f} s")

        idle = []
        proxy.reset()
        for _ in range(args.idle):
            idle.append(once(volume, url) * 1000)
        n = args.idle
        print(f"no-change interval (mean of {n}): {proxy.connections / n:.1f} connections, "
              f"{proxy.up / n:.0f} bytes up, {proxy.down / n:.0f} bytes down, "
              f"{statistics.mean(idle):.0f} ms (median {statistics.median(idle):.0f}, max {max(idle):.0f})")

        loop = subprocess.Popen(["sh", str(SCRIPT)], env=env(volume, url, GIT_SYNC_INTERVAL=str(args.interval)),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            latencies = []
            for i in range(args.pushes):
                time.sleep(random.uniform(0, args.interval))
                sha = up.commit({"index.html": f"push {i}\n"})
                pushed = time.monotonic()
                while os.readlink(volume / "current") != f"rev-{sha}":
                    time.sleep(0.02)
                latencies.append(time.monotonic() - pushed)
        finally:
            loop.terminate()
            loop.wait()
        print(f"push to switched in, writer every {args.interval} s, {args.pushes} pushes at random times: "
              f"mean {statistics.mean(latencies):.1f} s, max {max(latencies):.1f} s "
              f"({', '.join(f'{x:.1f}' for x in latencies)})")


if __name__ == "__main__":
    main()
