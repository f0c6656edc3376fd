"""How requests reach the API server: TLS, the proxy, and the aiohttp sessions built on them.

One transport for everything that talks to the cluster: the operator's client (`kube.py`), the CLI
commands (through the same client) and kopf (its login is handed a session built here), so that
`tls-server-name`, `proxy-url` and HTTPS_PROXY/HTTP_PROXY/NO_PROXY mean the same for all of them,
as they do for kubectl.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
import tempfile
import urllib.parse
from collections.abc import Mapping
from typing import Any

import aiohttp

from httpd_operator import __version__
from httpd_operator.connection import Cluster, ConfigError
from httpd_operator.names import is_ip

# With the host (a pod's name, in a cluster): the API server's audit log tells replicas apart.
USER_AGENT = f"httpd-operator/{__version__} ({socket.gethostname()})"
PROXY_SCHEMES = ("http", "https")  # aiohttp's; kubectl also knows socks5


class _Context(ssl.SSLContext):
    """A client context that names its peer `server_name` when set (the kubeconfig's
    tls-server-name, as Go's tls.Config.ServerName): sent as SNI and checked against the
    certificate whatever host the URL names. It lives in the context so that every session built
    on it gets it, kopf's too, directly or through a proxy's tunnel."""

    server_name: str | None = None

    def wrap_bio(self, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO, server_side: bool = False,
                 server_hostname: str | bytes | None = None, session: ssl.SSLSession | None = None) -> ssl.SSLObject:
        return super().wrap_bio(incoming, outgoing, server_side, self.server_name or server_hostname, session)

    def wrap_socket(self, sock: socket.socket, server_side: bool = False, do_handshake_on_connect: bool = True,
                    suppress_ragged_eofs: bool = True, server_hostname: str | bytes | None = None,
                    session: ssl.SSLSession | None = None) -> ssl.SSLSocket:
        return super().wrap_socket(sock, server_side, do_handshake_on_connect, suppress_ragged_eofs,
                                   self.server_name or server_hostname, session)


def tls_inputs(cluster: Cluster) -> tuple[Any, ...] | None:
    """What the TLS context is built from, files by their modification time: when it changes
    (a certificate an exec plugin or cert-manager rotated), the context must be rebuilt."""
    if not cluster.server.startswith("https:"):
        return None

    def stamp(name: str | None) -> float | None:
        try:
            return os.stat(name).st_mtime_ns if name else None
        except OSError:
            return None

    return (cluster.ca_file, stamp(cluster.ca_file), cluster.ca_data, cluster.insecure, cluster.tls_server_name,
            cluster.cert_file, stamp(cluster.cert_file), cluster.key_file, stamp(cluster.key_file),
            cluster.cert_data, cluster.key_data)


def tls_context(cluster: Cluster) -> ssl.SSLContext | None:
    """TLS settings for https servers (None for plain http, e.g. the emulator); as
    `ssl.create_default_context`, plus the client certificate and tls-server-name."""
    if not cluster.server.startswith("https:"):
        return None
    context = _Context(ssl.PROTOCOL_TLS_CLIENT)  # certificate and host name checked
    context.server_name = cluster.tls_server_name
    if cluster.ca_file or cluster.ca_data:
        context.load_verify_locations(cafile=cluster.ca_file, cadata=cluster.ca_data)
    else:
        context.load_default_certs(ssl.Purpose.SERVER_AUTH)
    if cluster.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cluster.cert_file or cluster.cert_data:
        with tempfile.TemporaryDirectory() as folder:  # ssl loads certificates from files only
            cert = cluster.cert_file or _private_file(folder, "cert.pem", cluster.cert_data or "")
            key = cluster.key_file or (_private_file(folder, "key.pem", cluster.key_data) if cluster.key_data else None)
            context.load_cert_chain(cert, key)
    return context


def _private_file(folder: str, name: str, text: str) -> str:
    target = os.path.join(folder, name)
    with open(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
        out.write(text)
    return target


def proxy_for(server: str, proxy_url: str | None = None, environ: Mapping[str, str] | None = None,
              source: str = "the kubeconfig") -> str | None:
    """The proxy to reach `server` through: the kubeconfig's proxy-url (for every request, as
    client-go), else HTTPS_PROXY or HTTP_PROXY by the server's scheme unless NO_PROXY exempts it
    (Go's rules: loopback is never proxied; `*`, names with their subdomains, `.sub` only, IPs,
    CIDRs, `:port`). None: straight there. `source` names the kubeconfig in errors."""
    if proxy_url:
        return _checked(proxy_url, f"{source}: proxy-url")
    env = os.environ if environ is None else environ
    url = urllib.parse.urlsplit(server)
    name = "HTTPS_PROXY" if url.scheme == "https" else "HTTP_PROXY"
    proxy = env.get(name) or env.get(name.lower())
    if not proxy or _exempt(url.hostname or "", url.port or (443 if url.scheme == "https" else 80),
                            env.get("NO_PROXY") or env.get("no_proxy") or ""):
        return None
    return _checked(proxy, f"${name}")


def _checked(proxy: str, origin: str) -> str:
    if "://" not in proxy:
        proxy = f"http://{proxy}"  # as Go reads "proxy:3128"
    scheme = urllib.parse.urlsplit(proxy).scheme
    if scheme not in PROXY_SCHEMES:
        raise ConfigError(f"{origin}: a {scheme} proxy is not supported (only {' and '.join(PROXY_SCHEMES)})")
    return proxy


def _exempt(host: str, port: int, no_proxy: str) -> bool:
    host = host.lower().rstrip(".")
    try:
        address: ipaddress.IPv4Address | ipaddress.IPv6Address | None = ipaddress.ip_address(host)
    except ValueError:
        address = None
    if host == "localhost" or (address is not None and address.is_loopback):
        return True
    for entry in (e.strip().lower() for e in no_proxy.split(",")):
        if entry == "*":
            return True
        if not entry:
            continue
        if "/" in entry:
            try:
                if address is not None and address in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                pass
            continue
        name, want = _host_port(entry)
        if want is not None and want != port:
            continue
        if address is not None or is_ip(name):
            if address is not None and is_ip(name) and ipaddress.ip_address(name) == address:
                return True
            continue
        name = name.removeprefix("*")
        if host.endswith(name if name.startswith(".") else f".{name}") or host == name:
            return True
    return False


def _host_port(entry: str) -> tuple[str, int | None]:
    """"host", "host:port", "[v6]:port" or a bare IPv6 address."""
    if entry.startswith("["):
        name, _, rest = entry[1:].partition("]")
        return name, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    name, colon, port = entry.rpartition(":")
    if colon and port.isdigit() and ":" not in name:
        return name, int(port)
    return entry, None


def unanswered(exc: BaseException) -> str:
    """Why a request got no answer, as a user would say it ("Connection refused")."""
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return f"TLS: {exc.certificate_error}"
    if isinstance(exc, aiohttp.ClientConnectorError) and exc.os_error.errno:
        return os.strerror(exc.os_error.errno)
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    return f"{type(exc).__name__}: {exc}"


class Transport:
    """The sessions to one cluster: one pooled for requests, one for watches (each holds its
    connection). A new TLS context (rotated credentials) retires both: new requests go on new
    connections, the old sessions are closed at the end."""

    def __init__(self, cluster: Cluster, timeout: float = 30.0, pool: int = 32) -> None:
        self.cluster, self.timeout, self.pool = cluster, timeout, pool
        self.proxy = proxy_for(cluster.server, cluster.proxy_url, source=cluster.source or "the kubeconfig")
        self.closed = False
        self._tls: ssl.SSLContext | None = None
        self._tls_inputs: tuple[Any, ...] | None | bool = False  # False: not built yet
        self._session: aiohttp.ClientSession | None = None
        self._watches: aiohttp.ClientSession | None = None
        self._retired: list[aiohttp.ClientSession] = []

    def tls(self) -> ssl.SSLContext | None:
        inputs = tls_inputs(self.cluster)
        if inputs != self._tls_inputs:
            self._tls, self._tls_inputs = tls_context(self.cluster), inputs
            self._retired += [s for s in (self._session, self._watches) if s is not None]
            self._session = self._watches = None
        return self._tls

    def session(self) -> aiohttp.ClientSession:
        tls = self.tls()
        if self._session is None or self._session.closed:
            self._session = self._new(tls, self.pool, aiohttp.ClientTimeout(total=self.timeout))
        return self._session

    def watches(self) -> aiohttp.ClientSession:
        tls = self.tls()
        if self._watches is None or self._watches.closed:
            self._watches = self._new(tls, 0, None)
        return self._watches

    def _new(self, tls: ssl.SSLContext | None, limit: int, timeout: aiohttp.ClientTimeout | None,
             headers: Mapping[str, str] | None = None) -> aiohttp.ClientSession:
        if self.closed:  # a late caller at shutdown must not open a session nobody closes
            raise ConnectionError("the client is closed")
        return aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=limit, ssl=tls or False),
                                     timeout=timeout or aiohttp.ClientTimeout(total=None),
                                     proxy=self.proxy, headers=headers)

    def for_kopf(self, headers: Mapping[str, str]) -> aiohttp.ClientSession:
        """A session of kopf's own (kopf closes it), on the same TLS and proxy."""
        return self._new(tls_context(self.cluster), 0, None, headers)

    async def aclose(self) -> None:
        self.closed = True
        for session in (self._session, self._watches, *self._retired):
            if session is not None:
                await session.close()
        self._session = self._watches = None
        self._retired = []


async def kopf_login(cluster: Cluster) -> Any:
    """What kopf's login handler answers: a session of this transport (kopf.AiohttpSession, which
    kopf supports for sessions it cannot build: its ConnectionInfo has no tls-server-name), with
    the credentials read afresh (kopf asks again after a 401)."""
    import kopf  # the operator's side only: CLI tools never load kopf

    cluster.expire()
    await cluster.refresh()
    headers = {"User-Agent": f"{USER_AGENT} kopf/{kopf.__version__}"}
    auth = cluster.authorization()
    if auth:
        headers["Authorization"] = auth
    session = Transport(cluster).for_kopf(headers)
    return kopf.AiohttpSession(server=cluster.server, default_namespace=cluster.namespace or "default",
                               aiohttp_session=session)
