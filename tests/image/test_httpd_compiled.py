"""The httpd that images/httpd/build-httpd.sh compiles, run with the image's own
configuration the way the image runs it: unprivileged, its install read-only, content in
a separate directory that stands in for the mounted volume.

Marker ``image``: the first test compiles httpd into the cache (a few minutes, once per
machine); later sessions reuse it.
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import uuid
from pathlib import Path

import pytest

from .httpd_helpers import (
    Httpd,
    free_port,
    http_get,
    http_get_or_none,
    make_root,
    remove_root,
    require_tools,
    run_as,
    unavailable,
    wait_for,
)

pytestmark = [pytest.mark.image, pytest.mark.timeout(1800)]  # first test may compile


@pytest.fixture
def root(httpd_prefix: Path):
    root = make_root(httpd_prefix)
    yield root
    remove_root(root)


@pytest.fixture
def server(root: Path):
    port = free_port()
    srv = Httpd(root, f"127.0.0.1:{port}")
    srv.port = port
    srv.start()
    yield srv
    srv.stop()


def healthy(port: int, host: str = "127.0.0.1") -> bool:
    return http_get_or_none(host, port, "/healthz") == (200, b"ok\n")


def test_build_has_what_the_image_promises(httpd_prefix: Path):
    modules = {p.name for p in (httpd_prefix / "modules").iterdir()}
    for mod in ("mod_mpm_event.so", "mod_mpm_worker.so", "mod_mpm_prefork.so", "mod_ssl.so",
                "mod_http2.so", "mod_rewrite.so", "mod_headers.so", "mod_status.so"):
        assert mod in modules
    # apr and apr-util compiled too, and httpd linked against those, not Debian's
    assert list((httpd_prefix / "lib").glob("libapr-1.so.*"))
    assert list((httpd_prefix / "lib").glob("libaprutil-1.so.*"))
    httpd = str(httpd_prefix / "bin" / "httpd")
    dynamic = subprocess.run(["readelf", "-d", httpd], check=True, capture_output=True,
                             text=True).stdout
    assert f"[{httpd_prefix}/lib]" in dynamic  # RUNPATH to our apr
    assert "BIND_NOW" in dynamic  # full RELRO
    header = subprocess.run(["readelf", "-h", httpd], check=True, capture_output=True,
                            text=True).stdout
    assert "DYN" in header  # position independent executable
    sections = subprocess.run(["readelf", "-S", httpd], check=True, capture_output=True,
                              text=True).stdout
    assert ".symtab" not in sections  # stripped
    # trimmed: no manual, headers or build kit in what the image copies
    for gone in ("manual", "include", "build", "build-1", "man"):
        assert not (httpd_prefix / gone).exists()


def test_image_config_passes_httpd_t(root: Path):
    srv = Httpd(root, "127.0.0.1:18081")
    proc = subprocess.run(srv.command("-t"), env=srv.env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "Syntax OK" in proc.stderr
    # the event MPM is the one the configuration loads
    proc = subprocess.run(srv.command("-V"), env=srv.env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "Server MPM:     event" in proc.stdout


def test_install_is_read_only_for_the_run_user(root: Path):
    # every directory but the three the pod mounts writable is closed to the run user
    writable = {root / "run", root / "logs", root / "htdocs"}
    dirs = [root, *(p for p in root.rglob("*") if p.is_dir() and not p.is_symlink())]
    closed = [d for d in dirs if d not in writable]
    assert len(closed) > 5
    for d in closed:
        assert run_as(["test", "-w", str(d)]).returncode != 0, f"{d} is writable"
    for d in writable:
        assert run_as(["test", "-w", str(d)]).returncode == 0, f"{d} is not writable"


def test_serves_a_file_written_after_start(server: Httpd):
    server.wait_ready(lambda: healthy(server.port))
    # the server runs as the unprivileged user, not root
    status = Path(f"/proc/{server.proc.pid}/status").read_text()
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert uid_line.split()[1] != "0"
    # an empty volume: nothing to serve yet, yet /healthz answered above
    assert http_get("127.0.0.1", server.port, "/page.html")[0] == 404
    body = f"written after start {uuid.uuid4()}\n".encode()
    (server.root / "htdocs" / "page.html").write_bytes(body)
    assert http_get("127.0.0.1", server.port, "/page.html") == (200, body)
    # PidFile is in run/ (the pod's emptyDir), written by the server as the run user
    assert (server.root / "run" / "httpd.pid").read_text().strip() == str(server.proc.pid)


def test_http2_cleartext(server: Httpd):
    require_tools("curl")
    server.wait_ready(lambda: healthy(server.port))
    out = subprocess.run(
        ["curl", "-sS", "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_version}",
         f"http://127.0.0.1:{server.port}/healthz"],
        check=True, capture_output=True, text=True,
    ).stdout
    assert out == "2"


def test_graceful_stop_on_sigwinch_completes_the_request_in_flight(server: Httpd):
    server.wait_ready(lambda: healthy(server.port))
    # a file far larger than the socket buffers, so its transfer is still going on while
    # the client does not read
    data = os.urandom(1 << 20) * 48
    (server.root / "htdocs" / "big.bin").write_bytes(data)

    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    client.settimeout(60)
    client.connect(("127.0.0.1", server.port))
    client.sendall(b"GET /big.bin HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = client.recv(65536)
        assert chunk, "connection closed before the response headers"
        received += chunk
    head, _, body_start = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")

    os.kill(server.proc.pid, signal.SIGWINCH)

    # the graceful stop has begun once the listeners are closed ...
    def refused() -> bool:
        try:
            socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
            return False
        except ConnectionRefusedError:
            return True
    wait_for("httpd to stop accepting connections", refused)
    # ... and httpd still waits for our request
    assert server.running()

    chunks = [body_start]
    while chunk := client.recv(1 << 20):
        chunks.append(chunk)
    client.close()
    body = b"".join(chunks)
    assert len(body) == len(data)
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()

    assert server.proc.wait(timeout=60) == 0
    assert "SIGWINCH" in server.stderr_text()


def test_every_access_log_line_reaches_stdout_on_a_graceful_stop(server: Httpd):
    """The access log is written per request, not buffered: each line is on stdout as soon
    as its request is done, and the last ones (a request finishing after SIGWINCH) too."""
    server.wait_ready(lambda: healthy(server.port))
    tag = uuid.uuid4().hex
    (server.root / "htdocs" / "big.bin").write_bytes(os.urandom(1 << 20) * 32)
    (server.root / "htdocs" / "small.txt").write_bytes(b"x" * 100)
    paths = [f"/small.txt?{tag}-{i}" for i in range(300)]
    for path in paths:
        assert http_get("127.0.0.1", server.port, path)[0] == 200
    # on stdout already, while the server runs (no buffer holds them back)
    wait_for("the access log lines on stdout",
             lambda: all(f"GET {p} HTTP/1.1" in server.stdout_text() for p in paths))

    # one request still in flight when the stop begins
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    client.settimeout(60)
    client.connect(("127.0.0.1", server.port))
    last = f"/big.bin?{tag}-last"
    client.sendall(f"GET {last} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
                   .encode())
    received = len(client.recv(65536))  # the response has begun
    assert received
    os.kill(server.proc.pid, signal.SIGWINCH)
    while chunk := client.recv(1 << 20):
        received += len(chunk)
    client.close()
    assert received > 32 << 20  # the whole body, and headers
    assert server.proc.wait(timeout=60) == 0
    log = server.stdout_text()
    assert all(f"GET {p} HTTP/1.1" in log for p in paths)
    assert f'"GET {last} HTTP/1.1" 200 {32 << 20}' in log, log[-2000:]
    assert log.endswith("\n")


@pytest.fixture
def netns_pair():
    """Two network namespaces joined by a veth pair: "srv" 10.213.77.1, "cli" 10.213.77.2.
    The client is then another host as far as httpd can tell: its address is neither in
    127.0.0.0/8 nor the address it connected to, which is what `Require local` checks.
    (A second loopback address or the machine's own address would still count as local.)
    All traffic stays inside the two namespaces this fixture makes and removes."""
    require_tools("ip")
    tag = f"{os.getpid() % 100000}"
    srv, cli = f"httpdt-srv-{tag}", f"httpdt-cli-{tag}"
    vs, vc = f"hts{tag}", f"htc{tag}"
    made: list[str] = []

    def ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True)

    try:
        for ns in (srv, cli):
            try:
                ip("netns", "add", ns)
            except subprocess.CalledProcessError as e:
                unavailable(f"cannot create network namespaces: {e.stderr.decode().strip()}")
            made.append(ns)
        ip("link", "add", vs, "type", "veth", "peer", "name", vc)
        ip("link", "set", vs, "netns", srv)
        ip("link", "set", vc, "netns", cli)
        for ns, dev, addr in ((srv, vs, "10.213.77.1/30"), (cli, vc, "10.213.77.2/30")):
            ip("-n", ns, "addr", "add", addr, "dev", dev)
            ip("-n", ns, "link", "set", dev, "up")
            ip("-n", ns, "link", "set", "lo", "up")
        yield srv, cli
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def curl_in(ns: str, url: str) -> tuple[int, str] | None:
    proc = subprocess.run(
        ["ip", "netns", "exec", ns, "curl", "-sS", "-m", "5", "-w", "\n%{http_code}", url],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        return None
    body, _, code = proc.stdout.rpartition("\n")
    return int(code), body


def test_server_status_answers_local_clients_only(root: Path, netns_pair):
    require_tools("curl")
    srv_ns, cli_ns = netns_pair
    port = free_port()
    server = Httpd(root, str(port), netns=srv_ns)  # all addresses of the server's namespace
    server.start()
    try:
        server.wait_ready(lambda: curl_in(srv_ns, f"http://127.0.0.1:{port}/healthz")
                          == (200, "ok\n"))
        # from the server's own host: allowed, and it is mod_status answering
        code, body = curl_in(srv_ns, f"http://127.0.0.1:{port}/server-status?auto")
        assert code == 200
        assert "ServerMPM: event" in body
        # from the other host: the network path works (healthz), server-status is refused
        assert curl_in(cli_ns, f"http://10.213.77.1:{port}/healthz") == (200, "ok\n")
        code, _ = curl_in(cli_ns, f"http://10.213.77.1:{port}/server-status")
        assert code == 403
    finally:
        server.stop()
