#!/usr/bin/env python3
"""The benchmark matrix of issue 18: the compiled httpd, Debian's apache2 and nginx side by side.

Cells: a file (1 KiB, 100 KiB, 10 MiB), a directory index and a 404; 1, 50 and 1000
connections; HTTP/1.1 with keep-alive and with a new connection per request (wrk), HTTP/2
cleartext (h2load, one stream in flight per connection). Both Apache builds run the image's
own httpd.conf; nginx runs an equivalent configuration (same headers, charset, keep-alive
timeout, access log in the same combined format). Access logs go to stdout for all three,
a pipe drained into a file as a container runtime does. Every server is pinned with taskset
to the same CPU set and gets the same worker count (nginx's worker_processes; the image's
own sizing for Apache, which reads the CPU set at start); the load tool runs pinned to the
other CPUs. Within a round every cell runs every server, the order rotating, so drift of a
shared machine hits all three alike; medians over the rounds are printed with the ratios to
nginx, and all raw figures go to a JSON file. Last, the memory each server holds with
10,000 idle keep-alive connections (RSS and PSS summed over its processes).

    python3 bench/httpd/matrix.py [--duration 3] [--rounds 3] [--files 1k,404]
        [--conns 50] [--modes ka,close,h2] [--idle 10000] [--json out.json]

Needs root (servers start as root and drop to an unprivileged user, as the image's
configuration allows), wrk, h2load (nghttp2-client), apache2, nginx, and the compiled
httpd in the cache (hack/httpd-build; this script never builds). Loopback, ports
--port-base to --port-base+99 (default 18100).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import resource
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from httpd_operator.render.mpm import mpm_sizing

REPO = Path(__file__).resolve().parents[2]
IMAGE_DIR = REPO / "images" / "httpd"
CACHE = Path(os.environ.get("HTTPD_OPERATOR_CACHE_DIR")
             or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
             / "httpd-operator") / "httpd"

KIB = 1024
# name -> (URL path, expected status); the contents are made by make_docroot
FILES = {
    "1k": ("/1k.bin", 200),
    "100k": ("/100k.bin", 200),
    "10m": ("/10m.bin", 200),
    "dir": ("/dir/", 200),
    "404": ("/missing.html", 404),
}
CONNS = (1, 50, 1000)
MODES = ("ka", "close", "h2")  # HTTP/1.1 keep-alive, HTTP/1.1 new connection per request, h2c
MODE_LABEL = {"ka": "h1 keep-alive", "close": "h1 new conn", "h2": "h2c"}

NGINX_CONF = """\
user nobody nogroup;
worker_processes {workers};
worker_rlimit_nofile 30000;
daemon off;
pid {root}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 12000; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    charset utf-8;
    server_tokens off;
    log_format combined2 '$remote_addr - $remote_user [$time_local] "$request" '
                         '$status $body_bytes_sent "$http_referer" "$http_user_agent"';
    access_log /dev/stdout combined2;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout {keepalive_timeout};
    keepalive_requests {keepalive_requests};
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    root {docroot};
    index index.html;
    add_header X-Content-Type-Options nosniff always;
    server {{
        listen 127.0.0.1:{port} reuseport;
    }}
    # nginx 1.22 over h2 with sendfile stalls on delayed ACKs (~1,000 req/s at 1 KiB
    # measured here, 25,000 without): its h2 port gets sendfile off, its best setting
    server {{
        listen 127.0.0.1:{h2port} http2;
        sendfile off;
    }}
}}
"""


# ---------------------------------------------------------------- pure parts (unit-tested)

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def duration_ms(text: str) -> float:
    """wrk's '812.00us', '1.23ms', '2.00s' in milliseconds."""
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not m:
        raise ValueError(f"not a wrk duration: {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


@dataclass
class Result:
    """One load run against one server in one cell."""
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int = 0
    errors: str = ""  # socket errors or failed requests, as the tool reports them
    statuses: dict[str, int] = field(default_factory=dict)


def parse_wrk(out: str) -> Result:
    """wrk --latency output."""
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not rps:
        raise ValueError(f"no Requests/sec in wrk output:\n{out}")
    pct = dict(re.findall(r"^\s+(50|99)(?:\.000)?%\s+(\S+)", out, re.M))
    total = re.search(r"(\d+) requests in", out)
    errors = re.search(r"Socket errors: (.*)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    statuses = {"non-2xx/3xx": int(non2xx.group(1))} if non2xx else {}
    return Result(rps=float(rps.group(1)), p50_ms=duration_ms(pct["50"]),
                  p99_ms=duration_ms(pct["99"]), requests=int(total.group(1)) if total else 0,
                  errors=errors.group(1).strip() if errors else "", statuses=statuses)


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of unsorted values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil without floats
    return ordered[int(rank) - 1]


def parse_h2load(out: str, log: str) -> Result:
    """h2load's summary plus its --log-file (start µs, status, duration µs per request)."""
    rps = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", out)
    if not rps:
        raise ValueError(f"no req/s in h2load output:\n{out}")
    req = re.search(r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, "
                    r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
    codes = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    # requests that got no response (reset streams, a connection closed under them) are
    # logged too, with a status of -1 and a meaningless duration
    durations = [int(f[2]) / 1000 for f in (line.split("\t") for line in log.splitlines())
                 if len(f) >= 3 and int(f[1]) >= 100]
    errors = ""
    # h2load counts 4xx as failed: the 404 cell expects them
    failed = int(req.group(4)) - (int(codes.group(3)) if codes else 0) if req else 0
    if req and (failed or int(req.group(5)) or int(req.group(6))):
        errors = f"failed {req.group(4)}, errored {req.group(5)}, timeout {req.group(6)}"
    statuses = dict(zip(("2xx", "3xx", "4xx", "5xx"), map(int, codes.groups()), strict=True)) \
        if codes else {}
    return Result(rps=float(rps.group(1)), p50_ms=percentile(durations, 50),
                  p99_ms=percentile(durations, 99), requests=int(req.group(2)) if req else 0,
                  errors=errors, statuses=statuses)


def cell_key(file: str, conns: int, mode: str) -> str:
    return f"{file}/{conns}/{mode}"


def medians(runs: list[dict]) -> dict[tuple[str, str], dict[str, float]]:
    """(cell, server) -> median rps/p50/p99 over the rounds."""
    grouped: dict[tuple[str, str], list[dict]] = {}
    for run in runs:
        grouped.setdefault((run["cell"], run["server"]), []).append(run)
    return {k: {m: statistics.median(r[m] for r in v) for m in ("rps", "p50_ms", "p99_ms")}
            | {"rounds": len(v)} for k, v in grouped.items()}


def table(runs: list[dict], servers: list[str], reference: str) -> str:
    """A text table: per cell, each server's median req/s and p50/p99 (ms), and each
    server's req/s and p99 as ratios to `reference` (nginx)."""
    med = medians(runs)
    cells = list(dict.fromkeys(r["cell"] for r in runs))
    others = [s for s in servers if s != reference]
    short = {s: s.split()[0] for s in servers}
    head = f"{'':<18}" + "".join(f"{short[s]:>26}" for s in servers) + \
        "".join(f"{short[s] + '/' + short[reference]:>18}" for s in others)
    sub = f"{'file/conns/mode':<18}" + f"{'req/s   p50ms   p99ms':>26}" * len(servers) + \
        f"{'req/s   p99':>18}" * len(others)
    lines = [head, sub]
    for cell in cells:
        row = f"{cell:<18}"
        for s in servers:
            m = med.get((cell, s))
            row += f"{m['rps']:>10.0f} {m['p50_ms']:>7.2f} {m['p99_ms']:>7.2f}" if m \
                else f"{'-':>26}"
        ref = med.get((cell, reference))
        for s in others:
            m = med.get((cell, s))
            if m and ref and ref["rps"] and ref["p99_ms"]:
                row += f"{m['rps'] / ref['rps']:>11.2f}x {m['p99_ms'] / ref['p99_ms']:>5.2f}x"
            else:
                row += f"{'-':>18}"
        lines.append(row)
    return "\n".join(lines)


def idle_table(idle: dict[str, dict]) -> str:
    lines = [f"{'server':<28}{'answered':>9}{'held':>7}{'in s':>6}{'RSS MiB':>9}{'PSS MiB':>9}"
             f"{'procs':>6}"]
    for name, m in idle.items():
        lines.append(f"{name:<28}{m['answered']:>9}{m['held']:>7}{m.get('seconds', 0):>6.1f}"
                     f"{m['rss_kib'] / KIB:>9.1f}{m['pss_kib'] / KIB:>9.1f}{m['processes']:>6}")
    return "\n".join(lines)


def cpu_list(text: str) -> list[int]:
    """'0-2,5' -> [0, 1, 2, 5]"""
    cpus: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus


# ---------------------------------------------------------------- servers

@dataclass
class Server:
    name: str
    cmd: list[str]
    env: dict[str, str]
    port: int
    h2port: int
    log: Path  # access log (stdout), drained through a pipe
    err: Path
    proc: subprocess.Popen | None = None
    drain: subprocess.Popen | None = None

    def start(self, cpus: str, drain_cpus: str) -> None:
        with open(self.log, "wb") as log:
            self.drain = subprocess.Popen(["taskset", "-c", drain_cpus, "cat"],
                                          stdin=subprocess.PIPE, stdout=log)
        with open(self.err, "wb") as err:
            self.proc = subprocess.Popen(["taskset", "-c", cpus, *self.cmd],
                                         env={**os.environ, **self.env},
                                         stdout=self.drain.stdin, stderr=err,
                                         start_new_session=True)
        self.drain.stdin.close()
        end = time.monotonic() + 30
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                sys.exit(f"{self.name} exited with {self.proc.returncode}:\n"
                         f"{self.err.read_text()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/1k.bin")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        sys.exit(f"{self.name} did not answer within 30 s")

    def pids(self) -> list[int]:
        """The server's processes: its pid and every descendant."""
        children: dict[int, list[int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        todo, found = [self.proc.pid], []
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, []))
        return found

    def memory_kib(self) -> tuple[int, int, int]:
        """(RSS, PSS, process count) summed over the server's processes."""
        rss = pss = n = 0
        for pid in self.pids():
            try:
                text = Path(f"/proc/{pid}/smaps_rollup").read_text()
            except OSError:
                continue
            rss += int(re.search(r"^Rss:\s+(\d+)", text, re.M).group(1))
            pss += int(re.search(r"^Pss:\s+(\d+)", text, re.M).group(1))
            n += 1
        return rss, pss, n

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            # TERM: both Apache and nginx stop at once (graceful stops are the tests' business)
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.drain:
            self.drain.wait(timeout=30)


def find_prefix(explicit: str | None) -> Path:
    if explicit:
        return Path(explicit)
    found = sorted((p for p in (CACHE / "prefix").glob("*") if (p / "bin/httpd").is_file()),
                   key=lambda p: p.stat().st_mtime)
    if not found:
        sys.exit(f"no compiled httpd under {CACHE / 'prefix'}: hack/httpd-build makes it")
    return found[-1]


def make_docroot(docroot: Path) -> None:
    docroot.mkdir(parents=True)
    block = b"0123456789abcdef" * 64
    (docroot / "1k.bin").write_bytes(block)
    (docroot / "100k.bin").write_bytes(block * 100)
    (docroot / "10m.bin").write_bytes(block * 10 * 1024)
    (docroot / "dir").mkdir()
    (docroot / "dir" / "index.html").write_bytes(block[:1023] + b"\n")
    for p in [docroot, *docroot.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)


def apache_root(base: Path, name: str, modules: Path, mime_types: Path, libs: Path | None,
                docroot: Path, conf: Path) -> Path:
    """A ServerRoot laid out as in the image, for either Apache build."""
    root = base / name
    (root / "conf").mkdir(parents=True)
    (root / "modules").symlink_to(modules)
    if libs:
        (root / "lib").symlink_to(libs)
    shutil.copy(conf, root / "conf" / "httpd.conf")
    shutil.copy(mime_types, root / "conf" / "mime.types")
    shutil.copytree(IMAGE_DIR / "health", root / "health")
    (root / "conf.d").mkdir()
    (root / "htdocs").symlink_to(docroot)
    for d in ("run", "logs"):
        (root / d).mkdir()
    return root


def apache_cmd(binary: str, root: Path, workers: int) -> list[str]:
    """How the image starts httpd (its MPM sizes come from the environment: `mpm_env`)."""
    return [binary, "-f", str(root / "conf/httpd.conf"), "-C", f"Define HTTPD_PREFIX {root}", "-DFOREGROUND"]


def mpm_env(workers: int) -> dict[str, str]:
    """The MPM sizes the operator gives a pod whose CPU limit is `workers` (render/mpm.py)."""
    return {k: str(v) for k, v in mpm_sizing({"limits": {"cpu": str(workers)}}).items()}


def make_servers(base: Path, prefix: Path, conf: Path, docroot: Path, workers: int,
                 port_base: int, which: list[str],
                 variants: list[tuple[str, Path]] = ()) -> list[Server]:
    servers: list[Server] = []
    if "compiled" in which:
        root = apache_root(base, "compiled", prefix / "modules", prefix / "conf/mime.types",
                           prefix / "lib", docroot, conf)
        port = port_base + 1
        servers.append(Server("httpd (compiled)", apache_cmd(str(prefix / "bin/httpd"), root,
                                                             workers),
                              {"HTTPD_PORT": f"127.0.0.1:{port}", **mpm_env(workers),
                               "LD_LIBRARY_PATH": str(prefix / "lib")},
                              port, port, base / "compiled.log", base / "compiled.err"))
    if "debian" in which:
        root = apache_root(base, "debian", Path("/usr/lib/apache2/modules"),
                           Path("/etc/mime.types"), None, docroot, conf)
        port = port_base + 11
        servers.append(Server("apache2 (Debian)", apache_cmd("/usr/sbin/apache2", root, workers),
                              {"HTTPD_PORT": f"127.0.0.1:{port}", **mpm_env(workers)},
                              port, port, base / "debian.log", base / "debian.err"))
    for i, (label, path) in enumerate(variants):
        root = apache_root(base, f"variant{i}", prefix / "modules", prefix / "conf/mime.types",
                           prefix / "lib", docroot, path)
        port = port_base + 31 + 10 * i
        servers.append(Server(f"httpd-{label} (compiled)",
                              apache_cmd(str(prefix / "bin/httpd"), root, workers),
                              {"HTTPD_PORT": f"127.0.0.1:{port}", **mpm_env(workers),
                               "LD_LIBRARY_PATH": str(prefix / "lib")},
                              port, port, base / f"variant{i}.log", base / f"variant{i}.err"))
    if "nginx" in which:
        root = base / "nginx"
        root.mkdir()
        port, h2port = port_base + 21, port_base + 22
        (root / "nginx.conf").write_text(NGINX_CONF.format(
            root=root, port=port, h2port=h2port, docroot=docroot, workers=workers,
            # h2load does not reconnect after a GOAWAY: nginx's default 1000 requests per
            # connection would end its h2 clients early (an exact 1000 req/s in 1 s runs)
            keepalive_timeout=5, keepalive_requests=1000000))
        servers.append(Server("nginx (Debian)", ["nginx", "-c", str(root / "nginx.conf"),
                                                 "-e", "stderr"],
                              {}, port, h2port, base / "nginx.log", base / "nginx.err"))
    return servers


# ---------------------------------------------------------------- load

def run_load(server: Server, file: str, conns: int, mode: str, duration: int,
             client_cpus: str, threads: int, tmp: Path) -> Result:
    path, status = FILES[file]
    threads = max(1, min(threads, conns))
    pin = ["taskset", "-c", client_cpus]
    if mode == "h2":
        log = tmp / "h2load.log"
        cmd = [*pin, "h2load", f"-c{conns}", f"-t{threads}", "-m1", f"-D{duration}",
               f"--log-file={log}",
               f"http://127.0.0.1:{server.h2port}{path}"]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 120)
        if proc.returncode != 0 and "req/s" not in proc.stdout:
            raise RuntimeError(f"h2load failed: {proc.stdout}{proc.stderr}")
        result = parse_h2load(proc.stdout, log.read_text() if log.exists() else "")
        log.unlink(missing_ok=True)
        expected = "2xx" if status == 200 else "4xx"
        if result.requests and result.statuses.get(expected, 0) < result.requests:
            result.errors = (result.errors + f" statuses {result.statuses}").strip()
        return result
    cmd = [*pin, "wrk", f"-t{threads}", f"-c{conns}", f"-d{duration}s", "--latency",
           "--timeout", "10s"]
    if mode == "close":
        cmd += ["-H", "Connection: close"]
    proc = subprocess.run([*cmd, f"http://127.0.0.1:{server.port}{path}"],
                          capture_output=True, text=True, timeout=duration + 120)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed: {proc.stdout}{proc.stderr}")
    result = parse_wrk(proc.stdout)
    if status == 200 and result.statuses:
        result.errors = (result.errors + f" statuses {result.statuses}").strip()
    return result


def hold_idle(server: Server, n: int, settle_s: float = 1.0) -> dict:
    """Open n connections, make one request on each, keep them open idle and read the
    server's memory; connections the server closed or never answered are not counted."""
    request = b"GET /1k.bin HTTP/1.1\r\nHost: bench\r\n\r\n"
    sel = selectors.DefaultSelector()
    socks: list[socket.socket] = []
    pending: dict[socket.socket, bytes] = {}
    answered: set[socket.socket] = set()
    start = time.monotonic()
    try:
        for _ in range(n):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", server.port))
            socks.append(s)
            pending[s] = b""
            sel.register(s, selectors.EVENT_WRITE)
        end = time.monotonic() + 20
        while pending and time.monotonic() < end:
            for key, ev in sel.select(timeout=0.5):
                s = key.fileobj
                if ev & selectors.EVENT_WRITE:
                    try:
                        s.send(request)
                    except OSError:
                        sel.unregister(s)
                        pending.pop(s, None)
                        continue
                    sel.modify(s, selectors.EVENT_READ)
                    continue
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(s)
                    pending.pop(s, None)
                    continue
                pending[s] += data
                if len(pending[s]) >= 1024 and b"\r\n\r\n" in pending[s]:
                    head, _, body = pending[s].partition(b"\r\n\r\n")
                    if len(body) >= 1024:
                        answered.add(s)
                        sel.unregister(s)
                        pending.pop(s)
        took = time.monotonic() - start
        time.sleep(settle_s)  # let the server settle into its idle state (not a sync point)
        rss, pss, procs = server.memory_kib()
        # still open: no EOF waiting on the socket
        held = 0
        for s in answered:
            try:
                held += s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
            except BlockingIOError:
                held += 1
            except OSError:
                pass
        return {"requested": n, "answered": len(answered), "held": held, "seconds": took,
                "rss_kib": rss, "pss_kib": pss, "processes": procs}
    finally:
        sel.close()
        for s in socks:
            s.close()


# ---------------------------------------------------------------- main

def main() -> None:
    ncpu = len(os.sched_getaffinity(0))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=int, default=3, help="seconds per load run")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--files", default=",".join(FILES), help=f"subset of {','.join(FILES)}")
    ap.add_argument("--conns", default=",".join(map(str, CONNS)))
    ap.add_argument("--modes", default=",".join(MODES), help="ka (h1 keep-alive), close (h1, "
                    "new connection per request), h2 (h2c, keep-alive)")
    ap.add_argument("--servers", default="compiled,debian,nginx")
    ap.add_argument("--server-cpus", default="1" if ncpu > 1 else "0")
    ap.add_argument("--client-cpus", default="0")
    ap.add_argument("--workers", type=int, help="worker processes (default: one per server CPU)")
    ap.add_argument("--idle", type=int, default=10000,
                    help="idle keep-alive connections for the memory figure (0: skip)")
    ap.add_argument("--conf", default=str(IMAGE_DIR / "httpd.conf"),
                    help="the Apache configuration (default: the image's)")
    ap.add_argument("--variant", action="append", default=[], metavar="LABEL=CONF",
                    help="one more compiled httpd with another configuration, side by side "
                    "(repeatable): how a tuning change is measured")
    ap.add_argument("--prefix", help="compiled httpd prefix (default: newest in the cache)")
    ap.add_argument("--port-base", type=int, default=18100)
    ap.add_argument("--json", default="matrix.json", help="raw figures go here")
    args = ap.parse_args()

    files = args.files.split(",")
    conns = [int(c) for c in args.conns.split(",")]
    modes = args.modes.split(",")
    for f in files:
        if f not in FILES:
            sys.exit(f"--files: unknown {f!r} (one of {', '.join(FILES)})")
    for m in modes:
        if m not in MODES:
            sys.exit(f"--modes: unknown {m!r} (one of {', '.join(MODES)})")
    for tool in ("wrk", "h2load", "nginx", "taskset"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not installed (apt-get install wrk nghttp2-client nginx)")
    if not Path("/usr/sbin/apache2").exists():
        sys.exit("apache2 not installed (apt-get install apache2)")
    if os.geteuid() != 0:
        sys.exit("run as root: the servers start as root and drop to an unprivileged user")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    workers = args.workers or len(cpu_list(args.server_cpus))
    client_threads = len(cpu_list(args.client_cpus))
    prefix = find_prefix(args.prefix)

    base = Path(tempfile.mkdtemp(prefix="httpd-matrix-", dir="/tmp"))
    base.chmod(0o755)
    servers: list[Server] = []
    runs: list[dict] = []
    idle: dict[str, dict] = {}
    try:
        docroot = base / "docroot"
        make_docroot(docroot)
        servers = make_servers(base, prefix, Path(args.conf), docroot, workers,
                               args.port_base, args.servers.split(","),
                               [(v.split("=", 1)[0], Path(v.split("=", 1)[1]))
                                for v in args.variant])
        for s in servers:
            s.start(args.server_cpus, args.client_cpus)
            run_load(s, "1k", 50, "ka", 1, args.client_cpus, client_threads, base)  # warm-up
        names = [s.name for s in servers]
        cells = [(f, c, m) for f in files for c in conns for m in modes]
        print(f"{len(cells)} cells x {len(servers)} servers x {args.rounds} rounds, "
              f"{args.duration:g} s each; servers on CPUs {args.server_cpus} with {workers} "
              f"worker(s), load on CPUs {args.client_cpus}", flush=True)
        for r in range(args.rounds):
            for i, (f, c, m) in enumerate(cells):
                shift = (r + i) % len(servers)
                for s in servers[shift:] + servers[:shift]:
                    res = run_load(s, f, c, m, args.duration, args.client_cpus,
                                   client_threads, base)
                    runs.append({"round": r + 1, "cell": cell_key(f, c, m), "server": s.name,
                                 "file": f, "conns": c, "mode": m, **asdict(res)})
                    note = f"  ({res.errors})" if res.errors else ""
                    print(f"  round {r + 1} {cell_key(f, c, m):<16} {s.name:<18} "
                          f"{res.rps:9.0f} req/s  p50 {res.p50_ms:7.2f} ms  "
                          f"p99 {res.p99_ms:7.2f} ms{note}", flush=True)
        if args.idle:
            for s in servers:
                idle[s.name] = hold_idle(s, args.idle)
        print()
        reference = next((n for n in names if n.startswith("nginx")), names[-1])
        print(f"medians of {args.rounds} round(s), req/s and ms; ratios to {reference}")
        print(table(runs, names, reference))
        if idle:
            print(f"\nmemory holding {args.idle} idle keep-alive connections")
            print(idle_table(idle))
        Path(args.json).write_text(json.dumps({
            "args": vars(args), "workers": workers, "prefix": str(prefix),
            "servers": names, "runs": runs, "idle": idle,
            "medians": {f"{c}|{s}": v for (c, s), v in medians(runs).items()},
        }, indent=1))
        print(f"\nraw figures: {args.json}")
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
