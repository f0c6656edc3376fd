"""The one transport: proxies chosen as kubectl chooses them, and, over real sockets, the
emulator served over TLS under a name that is not its address, reached through a CONNECT proxy
by the operator's client, the CLI and kopf's login session alike."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import pathlib
import ssl
import sys
from collections.abc import AsyncIterator
from typing import Any

import aiohttp.web
import pytest
import yaml
from support import CRD, ROOT, eventually, site
from support.certificates import self_signed

from httpd_operator.connection import ConfigError, load_cluster
from httpd_operator.emulator import ApiServer
from httpd_operator.kube import ApiError, Kube, call_once, oneshot, path
from httpd_operator.runner import OperatorThread
from httpd_operator.settings import Settings
from httpd_operator.transport import kopf_login, proxy_for

# 1. which proxy, if any (Go's http.ProxyFromEnvironment, and the kubeconfig's proxy-url)


@pytest.mark.parametrize(("server", "env", "proxy"), [
    ("https://api.example:6443", {"HTTPS_PROXY": "http://p:3128"}, "http://p:3128"),
    ("https://api.example:6443", {"https_proxy": "p:3128"}, "http://p:3128"),  # lower case; no scheme: http
    ("https://api.example:6443", {"HTTP_PROXY": "http://p:3128"}, None),  # by the server's scheme
    ("http://api.example:8080", {"HTTP_PROXY": "http://p:3128"}, "http://p:3128"),
    ("https://127.0.0.1:6443", {"HTTPS_PROXY": "http://p:3128"}, None),  # loopback: never
    ("https://localhost:6443", {"HTTPS_PROXY": "http://p:3128"}, None),
    ("https://[::1]:6443", {"HTTPS_PROXY": "http://p:3128"}, None),
    ("https://api.example:6443", {"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "*"}, None),
    ("https://api.example:6443", {"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "x, xample"}, "http://p:3128"),  # labels
    ("https://api.example:6443", {"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "other,api.example"}, None),
    ("https://k.api.example:6443", {"HTTPS_PROXY": "http://p:3128", "no_proxy": "api.example"}, None),  # subdomains
    ("https://api.example:6443", {"HTTPS_PROXY": "http://p:3128", "NO_PROXY": ".api.example"}, "http://p:3128"),
    ("https://k.api.example:6443", {"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "*.api.example"}, None),
    ("https://api.example:6443", {"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "api.example:443"}, "http://p:3128"),
    ("https://api.example:6443", {"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "api.example:6443"}, None),
    ("https://10.96.0.1:443", {"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "10.0.0.0/8"}, None),
    ("https://10.96.0.1:443", {"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "10.96.0.1"}, None),
    ("https://10.96.0.1:443", {"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "10.96.0.2,192.168.0.0/16"},
     "http://p:3128"),
    ("https://[fd00::1]:443", {"HTTPS_PROXY": "http://p:3128", "NO_PROXY": "fd00::/8"}, None),
])
def test_the_proxy_from_the_environment_as_kubectl_reads_it(server: str, env: dict[str, str],
                                                            proxy: str | None) -> None:
    assert proxy_for(server, environ=env) == proxy


def test_the_kubeconfigs_proxy_url_wins_for_every_server() -> None:
    env = {"HTTPS_PROXY": "http://env:3128", "NO_PROXY": "*"}
    assert proxy_for("https://127.0.0.1:6443", "http://cfg:8080", env) == "http://cfg:8080"
    with pytest.raises(ConfigError, match="^kubeconfig k, context c: proxy-url: a socks5 proxy is not supported"):
        proxy_for("https://k", "socks5://cfg:1080", env, source="kubeconfig k, context c")
    with pytest.raises(ConfigError, match=r"\$HTTPS_PROXY: a socks5 proxy"):
        proxy_for("https://k", None, {"HTTPS_PROXY": "socks5://env:1080"})


def test_the_kubeconfig_names_the_proxy_and_the_tls_server_name(tmp_path: pathlib.Path) -> None:
    config = tmp_path / "config"
    config.write_text(yaml.safe_dump(kubeconfig("https://10.0.0.1:6443", proxy="http://p:3128", name="kube.test")))
    cluster = load_cluster(str(config))
    assert (cluster.proxy_url, cluster.tls_server_name) == ("http://p:3128", "kube.test")


# 2. over real sockets


def kubeconfig(server: str, ca: str | None = None, proxy: str | None = None, name: str | None = None) -> dict[str, Any]:
    cluster: dict[str, Any] = {"server": server}
    if ca:
        cluster["certificate-authority-data"] = base64.b64encode(ca.encode()).decode()
    if proxy:
        cluster["proxy-url"] = proxy
    if name:
        cluster["tls-server-name"] = name
    return {"apiVersion": "v1", "kind": "Config", "current-context": "c",
            "clusters": [{"name": "c", "cluster": cluster}], "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u", "namespace": "ns"}}]}


@contextlib.asynccontextmanager
async def served_over_tls(server: ApiServer, cert: pathlib.Path, key: pathlib.Path) -> AsyncIterator[str]:
    """The emulator behind TLS (aiohttp's low-level server; kmock serves plain HTTP only)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    async with server:
        runner = aiohttp.web.ServerRunner(aiohttp.web.Server(server))
        await runner.setup()
        tls = aiohttp.web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
        await tls.start()
        try:
            yield f"https://127.0.0.1:{runner.addresses[0][1]}"
        finally:
            server.close_watches()
            await runner.cleanup()


class ConnectProxy:
    """An HTTP CONNECT proxy that records each tunnel's target, then relays bytes both ways. It
    alone knows where `aliases` are: a client that does not go through it cannot reach them."""

    def __init__(self, aliases: dict[str, str]) -> None:
        self.aliases = aliases
        self.targets: list[str] = []
        self.heads: list[str] = []  # each CONNECT request's head, headers and all
        self.url = ""
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> ConnectProxy:
        self._server = await asyncio.start_server(self._tunnel, "127.0.0.1", 0)
        self.url = f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _tunnel(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode()
        method, target, _ = head.split(" ", 2)
        if method != "CONNECT":
            writer.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
            writer.close()
            return
        self.targets.append(target)
        self.heads.append(head)
        host, _, port = target.rpartition(":")
        up_reader, up_writer = await asyncio.open_connection(self.aliases.get(host, host), int(port))
        writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()


@pytest.fixture
async def tls_api(tmp_path: pathlib.Path) -> AsyncIterator[tuple[ApiServer, str, str]]:
    """The emulator over TLS as "kube.test" on 127.0.0.1: (server, url, the CA's PEM)."""
    cert, key = self_signed(tmp_path, "kube.test")
    server = ApiServer(controllers=True)
    server.load_builtin()
    server.register_crd(CRD)
    async with served_over_tls(server, cert, key) as url:
        yield server, url, cert.read_text()


async def test_tls_server_name_is_what_the_certificate_is_checked_against(
        tls_api: tuple[ApiServer, str, str], tmp_path: pathlib.Path) -> None:
    _, url, ca = tls_api
    config = tmp_path / "config"
    config.write_text(yaml.safe_dump(kubeconfig(url, ca)))
    async with Kube(load_cluster(str(config)), timeout=5) as kube:
        with pytest.raises(ApiError) as refused:  # the certificate names kube.test, not 127.0.0.1
            await kube.list("Service", "ns")
    assert refused.value.status == 0 and "127.0.0.1" in refused.value.message, refused.value.message
    config.write_text(yaml.safe_dump(kubeconfig(url, ca, name="kube.test")))
    async with Kube(load_cluster(str(config)), timeout=5) as kube:
        assert await kube.list("Service", "ns") == []


def behind_the_proxy(url: str) -> tuple[str, str, dict[str, str]]:
    """The server under a name only the proxy resolves: (its URL, the CONNECT target, the alias)."""
    address = f"kube.invalid:{url.rsplit(':', 1)[1]}"
    return f"https://{address}", address, {"kube.invalid": "127.0.0.1"}


async def test_the_client_the_cli_and_kopf_go_through_the_proxy(
        tls_api: tuple[ApiServer, str, str], tmp_path: pathlib.Path) -> None:
    _, direct, ca = tls_api
    url, address, aliases = behind_the_proxy(direct)
    async with ConnectProxy(aliases) as proxy:
        config = tmp_path / "config"
        config.write_text(yaml.safe_dump(kubeconfig(url, ca, proxy=proxy.url, name="kube.test")))
        cluster = load_cluster(str(config))

        async with Kube(cluster, timeout=5) as kube:  # the operator's client
            await kube.create(site("web"))
            assert [s["metadata"]["name"] for s in await kube.list("HttpdSite", "ns")] == ["web"]
        assert proxy.targets == [address]  # one tunnel, pooled: its target the server's address

        listed = await asyncio.create_subprocess_exec(  # the CLI, in a process of its own
            sys.executable, "-m", "httpd_operator", "volumes", "list", "-A", "--kubeconfig", str(config),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await listed.communicate()
        assert listed.returncode == 0 and out.startswith(b"NAMESPACE"), err
        assert proxy.targets == [address] * 2

        login = await kopf_login(cluster)  # what kopf's session is
        async with login.aiohttp_session as session, session.get(f"{url}{path('HttpdSite', 'ns', 'web')}") as response:
            assert response.status == 200 and (await response.json())["metadata"]["name"] == "web"
            assert response.request_info.headers["Authorization"] == "Bearer t"
        assert proxy.targets == [address] * 3
        assert (login.server, login.default_namespace) == (url, "ns")


async def test_the_operator_and_kopfs_peering_work_through_the_proxy(
        tls_api: tuple[ApiServer, str, str], tmp_path: pathlib.Path) -> None:
    """The whole operator (its informers and writes, and kopf's peering through the session its
    login is given) on a server only the proxy reaches, checked under its tls-server-name."""
    server, direct, ca = tls_api
    for crd in yaml.safe_load_all((ROOT / "crds" / "peering.yaml").read_text()):
        server.register_crd(crd)
    url, address, aliases = behind_the_proxy(direct)
    async with ConnectProxy(aliases) as proxy:
        config = _write(tmp_path, kubeconfig(url, ca, proxy=proxy.url, name="kube.test"))
        operator = OperatorThread(Settings(), load_cluster(str(config)), peering="httpd-operator", priority=1)
        await asyncio.to_thread(operator.start)
        try:
            await asyncio.to_thread(call_once, load_cluster(str(config)), "POST", path("HttpdSite", "ns"), site("web"))
            await eventually(lambda: server.get("apps/v1/deployments", "ns", "web"), what="the site's Deployment")
            await eventually(lambda: any("kopf/" in r.headers.get("User-Agent", "") and r.method.value == "PATCH"
                                         and "clusterkopfpeerings" in r.url.path for r in server._requests),
                             what="kopf announcing itself in the peering object")
        finally:
            await asyncio.to_thread(operator.stop)
    assert proxy.targets and set(proxy.targets) == {address}


async def test_credentials_in_the_proxy_url_are_sent_to_the_proxy_only(
        tls_api: tuple[ApiServer, str, str], tmp_path: pathlib.Path) -> None:
    server, direct, ca = tls_api
    url, address, aliases = behind_the_proxy(direct)
    async with ConnectProxy(aliases) as proxy:
        user = proxy.url.replace("http://", "http://alice:s3cret@")
        cluster = load_cluster(str(_write(tmp_path, kubeconfig(url, ca, proxy=user, name="kube.test"))))
        async with Kube(cluster, timeout=5) as kube:
            assert await kube.list("Service", "ns") == []
    basic = base64.b64encode(b"alice:s3cret").decode()
    assert f"Proxy-Authorization: Basic {basic}" in proxy.heads[0].splitlines()
    assert all("Proxy-Authorization" not in str(r.headers) for r in server._requests)  # not to the server


def test_oneshot_opens_and_closes_a_client_around_its_work(tmp_path: pathlib.Path) -> None:
    seen: list[Kube] = []

    async def work(kube: Kube) -> int:
        seen.append(kube)
        with pytest.raises(ApiError):  # nothing listens there
            await kube.call("GET", "/api/v1/namespaces")
        return 7

    cluster = load_cluster(str(_write(tmp_path, kubeconfig("http://127.0.0.1:9"))))
    assert oneshot(cluster, work) == 7
    assert seen[0].transport.closed


def _write(folder: pathlib.Path, config: dict[str, Any]) -> pathlib.Path:
    target = folder / "config"
    target.write_text(yaml.safe_dump(config))
    return target
