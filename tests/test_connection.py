"""Logging in without the `kubernetes` package: kubeconfig rules as kubectl has them, rotated tokens,
exec plugins, the pod's service account, and the client sending (and refreshing) what they give.

connection.py re-implements what the official client did for us; a slip here locks the operator
out of a cluster only some users have (relative paths, merged KUBECONFIG, rotated or exec tokens).
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import http.server
import json
import os
import pathlib
import ssl
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from support import certificates

from httpd_operator import connection
from httpd_operator.connection import Cluster, ConfigError, from_kubeconfig, in_cluster, load_cluster
from httpd_operator.kube import ApiError, Kube
from httpd_operator.transport import Transport, tls_context


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def kubeconfig(path: pathlib.Path, users: dict[str, Any], clusters: dict[str, Any] | None = None,
               contexts: dict[str, Any] | None = None, current: str | None = "main") -> pathlib.Path:
    clusters = {"c": {"server": "https://api.example:6443/"}} if clusters is None else clusters
    contexts = {"main": {"cluster": "c", "user": "u"}} if contexts is None else contexts
    config: dict[str, Any] = {
        "clusters": [{"name": k, "cluster": v} for k, v in clusters.items()],
        "users": [{"name": k, "user": v} for k, v in users.items()],
        "contexts": [{"name": k, "context": v} for k, v in contexts.items()]}
    if current:
        config["current-context"] = current
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config))
    return path


# 1. kubeconfig

def test_paths_resolve_against_the_kubeconfig_directory_and_data_is_decoded(tmp_path: pathlib.Path) -> None:
    conf = kubeconfig(tmp_path / "conf" / "config", users={"u": {
        "client-certificate": "certs/client.crt", "client-key": "/abs/client.key", "tokenFile": "token",
        "client-certificate-data": b64("CERT PEM"), "client-key-data": b64("KEY PEM")}},
        clusters={"c": {"server": "https://api.example:6443/", "certificate-authority": "certs/ca.crt",
                        "certificate-authority-data": b64("CA PEM"), "insecure-skip-tls-verify": True}})
    cluster = load_cluster(str(conf))
    assert cluster.server == "https://api.example:6443"
    base = tmp_path / "conf"
    assert (cluster.ca_file, cluster.cert_file, cluster.token_file) == (
        str(base / "certs/ca.crt"), str(base / "certs/client.crt"), str(base / "token"))
    assert cluster.key_file == "/abs/client.key"
    assert (cluster.ca_data, cluster.cert_data, cluster.key_data) == ("CA PEM", "CERT PEM", "KEY PEM")
    assert cluster.insecure


def test_current_context_or_an_explicit_one_with_its_namespace(tmp_path: pathlib.Path) -> None:
    conf = kubeconfig(tmp_path / "config", users={"u": {"token": "abc"}},
                      clusters={"c": {"server": "https://one"}, "d": {"server": "https://two"}},
                      contexts={"main": {"cluster": "c", "user": "u"},
                                "other": {"cluster": "d", "user": "u", "namespace": "web"}})
    current = from_kubeconfig([conf])
    assert (current.server, current.namespace, current.insecure) == ("https://one", None, False)
    assert current.authorization() == "Bearer abc"
    other = load_cluster(str(conf), context="other")
    assert (other.server, other.namespace) == ("https://two", "web")
    basic = kubeconfig(tmp_path / "basic", users={"u": {"username": "alice", "password": "s3:cret"}})
    scheme, _, value = (load_cluster(str(basic)).authorization() or "").partition(" ")
    assert scheme == "Basic" and base64.b64decode(value).decode() == "alice:s3:cret"


@pytest.mark.parametrize(("context", "contexts", "missing"), [
    ("nope", {"main": {"cluster": "c", "user": "u"}}, "context named 'nope'"),
    (None, {"main": {"cluster": "c", "user": "ghost"}}, "user named 'ghost'"),
    (None, {"main": {"cluster": "gone", "user": "u"}}, "cluster named 'gone'"),
])
def test_a_missing_name_is_a_config_error_naming_it(tmp_path: pathlib.Path, context: str | None,
                                                     contexts: dict[str, Any], missing: str) -> None:
    conf = kubeconfig(tmp_path / "config", users={"u": {"token": "t"}}, contexts=contexts)
    with pytest.raises(ConfigError, match=missing):
        load_cluster(str(conf), context)


def test_no_current_context_and_no_kubeconfig_file_are_config_errors(tmp_path: pathlib.Path) -> None:
    with pytest.raises(ConfigError, match="current-context"):
        load_cluster(str(kubeconfig(tmp_path / "config", users={"u": {}}, current=None)))
    with pytest.raises(ConfigError, match="not found"):
        load_cluster(str(tmp_path / "absent"))


def test_auth_provider_needs_an_id_token_or_else_exec(tmp_path: pathlib.Path) -> None:
    oidc = {"auth-provider": {"name": "oidc", "config": {"id-token": "jwt"}}}
    assert load_cluster(str(kubeconfig(tmp_path / "a", users={"u": oidc}))).authorization() == "Bearer jwt"
    gcp = {"auth-provider": {"name": "gcp", "config": {"access-token": "x"}}}
    with pytest.raises(ConfigError, match="exec"):
        load_cluster(str(kubeconfig(tmp_path / "b", users={"u": gcp})))


def test_merged_kubeconfig_first_definition_wins(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = kubeconfig(tmp_path / "a" / "config", users={}, clusters={"c": {"server": "https://first"}},
                       contexts={}, current=None)
    second = kubeconfig(tmp_path / "b" / "config", users={"u": {"tokenFile": "token"}},
                        clusters={"c": {"server": "https://second"}}, current="main")
    third = kubeconfig(tmp_path / "c" / "config", users={}, clusters={}, contexts={}, current="unknown")
    files = [first, tmp_path / "missing", second, third]
    monkeypatch.setenv("KUBECONFIG", os.pathsep.join(map(str, files)))
    cluster = load_cluster()
    assert cluster.server == "https://first"  # first definition of "c"; current-context from the 1st file with one
    assert cluster.token_file == str(tmp_path / "b" / "token")  # relative to the file that defined the user


# 2. token files

@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """time.monotonic() as seen by connection.py: advance it with `clock[0] += seconds`."""
    now = [1000.0]
    monkeypatch.setattr("httpd_operator.connection.time.monotonic", lambda: now[0])
    return now


def test_a_token_file_is_reread_after_its_ttl_or_a_401(tmp_path: pathlib.Path, clock: list[float]) -> None:
    token = tmp_path / "token"
    token.write_text("old\n")
    cluster = Cluster(server="https://k", token="inline-is-ignored", token_file=str(token))
    assert cluster.authorization() == "Bearer old"
    token.write_text("new\n")
    clock[0] += connection.TOKEN_TTL - 1
    assert cluster.authorization() == "Bearer old"  # cached
    clock[0] += 1
    assert cluster.authorization() == "Bearer new"  # TTL passed
    token.write_text("newer")
    assert cluster.authorization() == "Bearer new"
    cluster.expire()
    assert cluster.authorization() == "Bearer newer"


# 3. exec plugins

def plugin(tmp_path: pathlib.Path, exit_code: int = 0, lifetime: float = 3600) -> tuple[pathlib.Path, pathlib.Path]:
    """An executable answering ExecCredential 't-<run>' (runs counted in a file); its env/argv in a file."""
    script, runs = tmp_path / "get-token", tmp_path / "runs"
    expires = f"{datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=lifetime):%Y-%m-%dT%H:%M:%SZ}"
    script.write_text(f"""#!{sys.executable}
import json, os, pathlib, sys
runs = pathlib.Path({str(runs)!r})
n = int(runs.read_text()) + 1 if runs.exists() else 1
runs.write_text(str(n))
pathlib.Path({str(tmp_path / "seen")!r}).write_text(json.dumps([os.environ.get("PLUGIN_REGION"), sys.argv[1:]]))
print(json.dumps({{"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
                  "status": {{"token": f"t-{{n}}", "expirationTimestamp": {expires!r}}}}}))
sys.exit({exit_code})
""")
    script.chmod(0o755)
    return script, runs


def exec_spec(script: pathlib.Path) -> dict[str, Any]:
    return {"apiVersion": "client.authentication.k8s.io/v1", "command": str(script),
            "args": ["token", "--cluster", "prod"], "env": [{"name": "PLUGIN_REGION", "value": "eu-1"}]}


async def authorized(cluster: Cluster) -> str | None:
    """What the client sends: the plugin's token renewed if due, then the header."""
    await cluster.refresh()
    return cluster.authorization()


async def test_an_exec_plugin_token_is_cached_until_expired(tmp_path: pathlib.Path) -> None:
    script, runs = plugin(tmp_path)
    conf = kubeconfig(tmp_path / "config", users={"u": {"exec": exec_spec(script)}})
    cluster = load_cluster(str(conf))
    assert await authorized(cluster) == "Bearer t-1"
    assert await authorized(cluster) == "Bearer t-1"
    assert runs.read_text() == "1"
    assert json.loads((tmp_path / "seen").read_text()) == ["eu-1", ["token", "--cluster", "prod"]]
    cluster.expire()
    assert await authorized(cluster) == "Bearer t-2"


async def test_an_exec_token_is_renewed_before_its_expiration(tmp_path: pathlib.Path, clock: list[float]) -> None:
    script, _ = plugin(tmp_path, lifetime=120)
    cluster = Cluster(server="https://k", exec_plugin=exec_spec(script))
    assert await authorized(cluster) == "Bearer t-1"
    clock[0] += 60
    assert await authorized(cluster) == "Bearer t-1"
    clock[0] += 60  # at expiry (renewed some seconds earlier)
    assert await authorized(cluster) == "Bearer t-2"


async def test_a_failing_exec_plugin_is_a_config_error_naming_it(tmp_path: pathlib.Path) -> None:
    script, _ = plugin(tmp_path, exit_code=1)
    with pytest.raises(ConfigError, match="get-token"):
        await authorized(Cluster(server="https://k", exec_plugin=exec_spec(script)))
    with pytest.raises(ConfigError, match="no-such-plugin"):
        await authorized(Cluster(server="https://k", exec_plugin={"command": "no-such-plugin"}))


# 4. in the cluster

@pytest.fixture
def pod(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text("sa-token\n")
    (account / "namespace").write_text("operators\n")
    (account / "ca.crt").write_text("")
    monkeypatch.setattr(connection, "SERVICE_ACCOUNT", account)
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    return account


def test_in_cluster_uses_the_service_account(pod: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = in_cluster()
    assert (cluster.server, cluster.namespace, cluster.ca_file) == (
        "https://10.96.0.1:443", "operators", str(pod / "ca.crt"))
    assert cluster.authorization() == "Bearer sa-token"
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    assert in_cluster().server == "https://[fd00::1]:443"
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST")
    with pytest.raises(ConfigError, match="not running in a pod"):
        in_cluster()


def test_without_any_kubeconfig_load_cluster_is_in_cluster(pod: pathlib.Path, tmp_path: pathlib.Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert load_cluster().server == "https://10.96.0.1:443"


# 5. the client sends what the cluster says

@pytest.fixture
def server() -> Iterator[tuple[str, list[tuple[str, str, str]]]]:
    """Accepts only 'Bearer good'; records (path, Authorization, User-Agent) of each request."""
    seen: list[tuple[str, str, str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            auth = self.headers.get("Authorization", "")
            seen.append((self.path, auth, self.headers.get("User-Agent", "")))
            ok = auth == "Bearer good"
            body = json.dumps({"kind": "PodList", "items": []} if ok else {"kind": "Status", "message": "nope"})
            self.send_response(200 if ok else 401)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", seen
    httpd.shutdown()
    httpd.server_close()


async def test_a_401_makes_the_next_call_read_the_rotated_token(
        tmp_path: pathlib.Path, server: tuple[str, list[tuple[str, str, str]]]) -> None:
    url, seen = server
    token = tmp_path / "token"
    token.write_text("stale")
    async with Kube(Cluster(server=url, token_file=str(token)), timeout=5) as kube:
        with pytest.raises(ApiError) as exc:
            await kube.call("GET", "/api/v1/pods")
        assert (exc.value.status, exc.value.message) == (401, "nope")
        token.write_text("good")  # well within TOKEN_TTL: only the 401 makes it re-read
        assert await kube.call("GET", "/api/v1/pods") == {"kind": "PodList", "items": []}
    assert [auth for _, auth, _ in seen] == ["Bearer stale", "Bearer good"]
    assert all(agent.startswith("httpd-operator/") for _, _, agent in seen)


async def test_async_call_sends_the_token_and_encodes_the_query(
        tmp_path: pathlib.Path, server: tuple[str, list[tuple[str, str, str]]]) -> None:
    url, seen = server
    kube = Kube(Cluster(server=url, token="good"), timeout=5)
    try:
        answer = await kube.call("GET", "/api/v1/namespaces/web/pods", query={"labelSelector": "a=b,c"})
    finally:
        await kube.aclose()
    assert answer == {"kind": "PodList", "items": []}
    [(path, auth, agent)] = seen
    route, _, query = path.partition("?")
    assert route == "/api/v1/namespaces/web/pods" and "a=b" not in query  # encoded, not raw
    assert urllib.parse.parse_qs(query) == {"labelSelector": ["a=b,c"]}
    assert auth == "Bearer good" and agent.startswith("httpd-operator/")


# 6. TLS

def test_tls_settings() -> None:
    assert tls_context(Cluster(server="http://127.0.0.1:8080")) is None
    strict = tls_context(Cluster(server="https://k"))
    assert strict is not None and strict.check_hostname and strict.verify_mode == ssl.CERT_REQUIRED
    loose = tls_context(Cluster(server="https://k", insecure=True))
    assert loose is not None and not loose.check_hostname and loose.verify_mode == ssl.CERT_NONE


def self_signed(folder: pathlib.Path, name: str) -> tuple[str, str]:
    return tuple(path.read_text() for path in certificates.self_signed(folder, name))  # type: ignore[return-value]


def test_inline_client_certificate_and_ca(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cert, key = self_signed(tmp_path, "client")
    _, other_key = self_signed(tmp_path, "other")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    context = tls_context(Cluster(server="https://k", ca_data=cert, cert_data=cert, key_data=key))
    assert context is not None
    assert [c["subject"] for c in context.get_ca_certs()] == [((("commonName", "client"),),)]
    with pytest.raises(ssl.SSLError):  # the key really is loaded: a wrong one is refused
        tls_context(Cluster(server="https://k", insecure=True, cert_data=cert, key_data=other_key))
    assert list(scratch.iterdir()) == []  # the private key did not stay on disk


def test_the_tls_context_is_rebuilt_when_its_certificate_changes(tmp_path: pathlib.Path) -> None:
    """A client certificate rotated on disk (or by an exec plugin) is loaded for the next
    connection, not cached for ever."""
    cert, key = self_signed(tmp_path, "client")
    cert_file, key_file = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert_file.write_text(cert)
    key_file.write_text(key)
    transport = Transport(Cluster(server="https://k", insecure=True, cert_file=str(cert_file), key_file=str(key_file)))
    first = transport.tls()
    assert transport.tls() is first  # nothing changed: the same context
    cert, key = self_signed(tmp_path, "rotated")
    cert_file.write_text(cert)
    key_file.write_text(key)
    os.utime(cert_file, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))  # a new mtime, however coarse the clock
    assert transport.tls() is not first
    transport.cluster.cert_data, transport.cluster.cert_file = cert, None  # an exec plugin's certificate instead
    transport.cluster.key_data, transport.cluster.key_file = key, None
    second = transport.tls()
    assert second is not first and transport.tls() is second


async def test_an_exec_plugin_runs_beside_the_event_loop_not_on_it(
        tmp_path: pathlib.Path, server: tuple[str, list[tuple[str, str, str]]]) -> None:
    """A slow plugin (`aws eks get-token` takes seconds) must not freeze every watch and reconcile."""
    url, seen = server
    script = tmp_path / "slow-token"
    script.write_text(f"""#!{sys.executable}
import json, time
time.sleep(0.5)  # a slow plugin
print(json.dumps({{"kind": "ExecCredential", "status": {{"token": "good"}}}}))
""")
    script.chmod(0o755)
    kube = Kube(Cluster(server=url, exec_plugin={"command": str(script)}), timeout=5)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)  # the loop's heartbeat, counted

    beat = asyncio.create_task(ticker())
    try:
        await kube.call("GET", "/api/v1/pods")
    finally:
        beat.cancel()
        await kube.aclose()
    assert ticks >= 10  # the loop kept running while the plugin did
    assert [auth for _, auth, _ in seen] == ["Bearer good"]
    bad = Kube(Cluster(server=url, exec_plugin={"command": str(tmp_path / "missing")}), timeout=5)
    with pytest.raises(ApiError) as exc:
        await bad.call("GET", "/api/v1/pods")
    await bad.aclose()
    assert exc.value.status == 0 and "missing" in exc.value.message
