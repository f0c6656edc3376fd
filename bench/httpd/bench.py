#!/usr/bin/env python3
"""Throughput of the compiled httpd beside Debian's packaged apache2 and nginx.

All three serve the same 1 KiB file from the same directory, run as the same
unprivileged user, and are measured with the same load tool (wrk) in one session, the
runs alternating (the order rotates each round) so that drift of the shared 2-core
machine hits all three alike. Both Apache builds run the image's own httpd.conf (event
MPM, same modules); nginx runs a minimal equivalent (2 workers, access log to stdout).
Prints requests per second per run, the medians and the ratios, and the image's size
beside the official httpd image's published size.

    python3 bench/httpd/bench.py [--rounds 5] [--duration 5] [--connections 50]

Needs: hack/httpd-deps (wrk, apache2, nginx), sources (hack/httpd-fetch-debian); builds
httpd into the cache with hack/httpd-build when not yet built. Root, to run the servers
as nobody with setpriv. Loopback only.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from httpd_operator.render.mpm import mpm_sizing

REPO = Path(__file__).resolve().parents[2]
IMAGE_DIR = REPO / "images" / "httpd"
MPM = {k: str(v) for k, v in mpm_sizing(None).items()}  # the image's own defaults

# The official image, for scale: `docker images` shows httpd:2.4 (Debian bookworm based,
# amd64) at about 145 MB uncompressed (public transcripts, 2023-2025, range 138-148 MB);
# Docker Hub lists about 58 MB compressed for the amd64 tag. Not measured here: no
# registry is reachable from these machines.
OFFICIAL_HTTPD_UNCOMPRESSED_MB = 145
OFFICIAL_HTTPD_COMPRESSED_MB = 58

NGINX_CONF = """\
worker_processes 2;
daemon off;
pid {root}/run/nginx.pid;
error_log stderr warn;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    access_log /dev/stdout;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 5;
    keepalive_requests 1000000;
    client_body_temp_path {root}/run/body;
    proxy_temp_path {root}/run/proxy;
    fastcgi_temp_path {root}/run/fastcgi;
    uwsgi_temp_path {root}/run/uwsgi;
    scgi_temp_path {root}/run/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {docroot};
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_nobody(cmd: list[str]) -> list[str]:
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", *cmd]


def apache_root(base: Path, name: str, modules: Path, mime_types: Path, libs: Path | None,
                docroot: Path) -> Path:
    """A ServerRoot laid out as in the image, for either Apache build."""
    root = base / name
    (root / "conf").mkdir(parents=True)
    (root / "modules").symlink_to(modules)
    if libs:
        (root / "lib").symlink_to(libs)
    shutil.copy(IMAGE_DIR / "httpd.conf", root / "conf" / "httpd.conf")
    shutil.copy(mime_types, root / "conf" / "mime.types")
    shutil.copytree(IMAGE_DIR / "health", root / "health")
    (root / "conf.d").mkdir()
    (root / "htdocs").symlink_to(docroot)
    for d in ("run", "logs"):
        (root / d).mkdir()
        shutil.chown(root / d, "nobody", "nogroup")
    return root


def wait_ready(proc: subprocess.Popen, port: int, name: str, log: Path) -> None:
    end = time.monotonic() + 30
    while time.monotonic() < end:
        if proc.poll() is not None:
            sys.exit(f"{name} exited with {proc.returncode}:\n{log.read_text()}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/bench.html")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.05)
    sys.exit(f"{name} did not answer within 30 s")


def wrk(port: int, duration: int, connections: int, threads: int) -> tuple[float, str]:
    """Requests per second, and wrk's socket error line ("" if none)."""
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s",
         f"http://127.0.0.1:{port}/bench.html"],
        check=True, capture_output=True, text=True,
    ).stdout
    if "Non-2xx" in out:
        sys.exit(f"wrk saw error responses:\n{out}")
    # reported, not fatal: Apache closes a connection after MaxKeepAliveRequests (100),
    # which wrk counts as a read error when it had the next request on the way
    errors = re.search(r"Socket errors: (.*)", out)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    return rps, f"  (socket errors: {errors.group(1)})" if errors else ""


def image_size() -> tuple[str, float, float] | None:
    """(tag, image MB, base MB) of our image in the cache's podman storage, if built."""
    if shutil.which("podman") is None:
        return None
    exports = subprocess.run(["bash", str(REPO / "hack" / "httpd-image"), "env"],
                             capture_output=True, text=True).stdout.split()[1:]
    env = {**os.environ, **dict(e.split("=", 1) for e in exports)}

    def podman(*args: str) -> str:
        return subprocess.run(["podman", *args], env=env, capture_output=True,
                              text=True).stdout

    images = json.loads(podman("images", "--format", "json") or "[]")
    ours = [i for i in images if any(n.startswith("localhost/httpd-operator-httpd:")
                                     for n in i.get("Names") or [])]
    base = [i for i in images if "docker.io/library/debian:bookworm-slim"
            in (i.get("Names") or [])]
    if not ours:
        return None
    return ours[0]["Names"][0], ours[0]["Size"] / 1e6, (base[0]["Size"] / 1e6 if base else 0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    ap.add_argument("--connections", type=int, default=50)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    for tool in ("wrk", "nginx", "setpriv"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not installed: run hack/httpd-deps")
    if not Path("/usr/sbin/apache2").exists():
        sys.exit("apache2 not installed: run hack/httpd-deps")
    build = subprocess.run(["bash", str(REPO / "hack" / "httpd-build")],
                           capture_output=True, text=True)
    if build.returncode != 0:
        sys.exit(f"hack/httpd-build failed:\n{build.stderr}")
    prefix = Path(build.stdout.strip().splitlines()[-1])

    base = Path(tempfile.mkdtemp(prefix="httpd-bench-", dir="/tmp"))
    base.chmod(0o755)
    procs: list[subprocess.Popen] = []
    try:
        docroot = base / "docroot"
        docroot.mkdir()
        (docroot / "bench.html").write_bytes((b"0123456789abcdef" * 64)[:1023] + b"\n")
        assert (docroot / "bench.html").stat().st_size == 1024
        # the compiled server runs from a copy readable by nobody (the cache is under /root)
        compiled = base / "compiled-prefix"
        for d in ("bin", "lib", "modules", "conf"):
            shutil.copytree(prefix / d, compiled / d, symlinks=True)

        servers: dict[str, tuple[list[str], dict[str, str], int]] = {}
        port = free_port()
        root = apache_root(base, "compiled", compiled / "modules", compiled / "conf/mime.types",
                           compiled / "lib", docroot)
        servers["httpd 2.4.68 (compiled)"] = (
            [str(compiled / "bin/httpd"), "-f", str(root / "conf/httpd.conf"),
             "-C", f"Define HTTPD_PREFIX {root}", "-DFOREGROUND"],
            {"HTTPD_PORT": f"127.0.0.1:{port}", **MPM, "LD_LIBRARY_PATH": str(compiled / "lib")}, port)
        port = free_port()
        root = apache_root(base, "debian", Path("/usr/lib/apache2/modules"),
                           Path("/etc/mime.types"), None, docroot)
        version = subprocess.run(["/usr/sbin/apache2", "-v"], capture_output=True,
                                 text=True).stdout.split()[2]
        servers[f"Debian apache2 ({version})"] = (
            ["/usr/sbin/apache2", "-f", str(root / "conf/httpd.conf"),
             "-C", f"Define HTTPD_PREFIX {root}", "-DFOREGROUND"],
            {"HTTPD_PORT": f"127.0.0.1:{port}", **MPM}, port)
        port = free_port()
        nroot = base / "nginx"
        (nroot / "run").mkdir(parents=True)
        shutil.chown(nroot / "run", "nobody", "nogroup")
        (nroot / "nginx.conf").write_text(NGINX_CONF.format(root=nroot, port=port,
                                                            docroot=docroot))
        version = subprocess.run(["nginx", "-v"], capture_output=True,
                                 text=True).stderr.strip().split("/")[-1]
        servers[f"Debian nginx ({version})"] = (
            ["nginx", "-c", str(nroot / "nginx.conf"), "-e", "stderr"], {}, port)

        for i, (name, (cmd, env, port)) in enumerate(servers.items()):
            # the servers reopen stdout/stderr by path (/proc/self/fd/N, /dev/stdout), so
            # these must be the run user's; access logs go to /dev/null for all three
            log = base / f"server-{i}.stderr"
            log.touch()
            shutil.chown(log, "nobody", "nogroup")
            with open(log, "wb") as err:
                proc = subprocess.Popen(as_nobody(cmd), env={**os.environ, **env},
                                        stdout=subprocess.DEVNULL, stderr=err)
            procs.append(proc)
            wait_ready(proc, port, name, log)
            wrk(port, 1, args.connections, args.threads)  # warm-up, not counted

        names = list(servers)
        results: dict[str, list[float]] = {n: [] for n in names}
        print(f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s, 1 KiB file, "
              f"{args.rounds} alternating rounds")
        for r in range(args.rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                rps, errors = wrk(servers[name][2], args.duration, args.connections,
                                  args.threads)
                results[name].append(rps)
                print(f"  round {r + 1}  {name:32s} {rps:8.0f} req/s{errors}", flush=True)
        print()
        medians = {n: statistics.median(v) for n, v in results.items()}
        reference = medians[names[0]]
        for name in names:
            v = results[name]
            print(f"{name:32s} median {medians[name]:8.0f} req/s  (min {min(v):.0f}, "
                  f"max {max(v):.0f})  compiled/this = {reference / medians[name]:.2f}")
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(base)

    print()
    size = image_size()
    if size:
        tag, mb, base_mb = size
        print(f"image {tag}: {mb:.0f} MB uncompressed ({mb - base_mb:.0f} MB over its "
              f"{base_mb:.0f} MB debootstrap base)")
    else:
        print("image: not built (hack/httpd-image build)")
    print(f"official httpd:2.4 (published): about {OFFICIAL_HTTPD_UNCOMPRESSED_MB} MB "
          f"uncompressed, {OFFICIAL_HTTPD_COMPRESSED_MB} MB compressed")


if __name__ == "__main__":
    main()
