"""Where the cluster is and how to prove who we are: a kubeconfig, or the pod's service account.

Read here rather than with the `kubernetes` package: the long-running operator never imports it
(22 MiB of generated models that it does not use; see `cli.py`). Supported: tokens (inline, file,
service account; files re-read as the kubelet rotates them), client certificates (files or
inline data), basic auth, CA files or data, insecure-skip-tls-verify, tls-server-name, proxy-url,
and exec credential plugins (EKS, GKE, OIDC helpers) whose token is cached until it expires. What
is read here becomes connections in `transport.py`.
"""

from __future__ import annotations

import asyncio
import base64
import datetime
import json
import os
import pathlib
import time
from dataclasses import dataclass, field
from typing import Any

import yaml

SERVICE_ACCOUNT = pathlib.Path("/var/run/secrets/kubernetes.io/serviceaccount")
TOKEN_TTL = 60.0  # seconds a token read from a file is trusted before the file is read again


class ConfigError(Exception):
    """No usable cluster configuration: the message says what is missing and where."""


@dataclass
class Cluster:
    """One API server and the credentials for it."""

    server: str
    ca_file: str | None = None
    ca_data: str | None = None  # PEM
    insecure: bool = False
    cert_file: str | None = None
    key_file: str | None = None
    cert_data: str | None = None  # PEM
    key_data: str | None = None  # PEM
    token: str | None = None
    token_file: str | None = None
    username: str | None = None
    password: str | None = None
    exec_plugin: dict[str, Any] | None = None
    namespace: str | None = None
    tls_server_name: str | None = None  # the name the server's certificate is checked against
    proxy_url: str | None = None  # the kubeconfig's proxy-url (transport.py: else the environment's)
    source: str = ""  # where this came from (the kubeconfig and context), for error messages
    _cached: tuple[str | None, float] = field(default=(None, 0.0), repr=False)

    def authorization(self) -> str | None:
        """The Authorization header now: a token file re-read when due; an exec plugin's token as
        `refresh` last renewed it (the client awaits `refresh` before every request)."""
        if self.token_file:
            if time.monotonic() >= self._cached[1]:
                self._cached = pathlib.Path(self.token_file).read_text().strip(), time.monotonic() + TOKEN_TTL
            return f"Bearer {self._cached[0]}" if self._cached[0] else None
        if self.exec_plugin:  # (a plugin may answer with a certificate only)
            return f"Bearer {self._cached[0]}" if self._cached[0] else None
        if self.token:
            return f"Bearer {self.token}"
        if self.username is not None:
            basic = base64.b64encode(f"{self.username}:{self.password or ''}".encode()).decode()
            return f"Basic {basic}"
        return None

    def expire(self) -> None:
        """Forget a cached token (the server answered 401): the next request reads a fresh one."""
        self._cached = (None, 0.0)

    async def refresh(self) -> None:
        """Renew a due exec-plugin token without blocking the event loop (`aws eks get-token` may
        take seconds: every watch and reconcile would wait); `authorization` then finds it fresh."""
        if self.exec_plugin and not self.token_file and time.monotonic() >= self._cached[1]:
            self._cached = self._from_status(await run_exec_plugin(self.exec_plugin))

    def _from_status(self, status: dict[str, Any]) -> tuple[str | None, float]:
        """The token of an ExecCredential status and until when it holds (its certificate kept)."""
        if status.get("clientCertificateData"):
            self.cert_data, self.key_data = status["clientCertificateData"], status.get("clientKeyData")
        until = time.monotonic() + 3600.0
        if status.get("expirationTimestamp"):
            expires = datetime.datetime.fromisoformat(status["expirationTimestamp"].replace("Z", "+00:00"))
            until = time.monotonic() + (expires - datetime.datetime.now(datetime.UTC)).total_seconds() - 10
        return status.get("token"), until


async def run_exec_plugin(spec: dict[str, Any]) -> dict[str, Any]:
    """An exec credential plugin's answer (client.authentication.k8s.io ExecCredential status), from
    a subprocess of the event loop: `aws eks get-token` may take seconds, and the loop keeps running."""
    env = {**os.environ, **{e["name"]: e["value"] for e in spec.get("env") or []}}
    command = [spec.get("command", ""), *(spec.get("args") or [])]
    try:
        process = await asyncio.create_subprocess_exec(*command, env=env, stdout=asyncio.subprocess.PIPE,
                                                       stderr=asyncio.subprocess.PIPE)
        try:
            out, err = await asyncio.wait_for(process.communicate(), timeout=60)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise ValueError("no answer within 60 s") from None
        if process.returncode:
            raise ValueError(f"exit status {process.returncode}: {err.decode(errors='replace').strip()}")
        return json.loads(out).get("status") or {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"exec credential plugin {command[0]!r} failed: {exc}") from None


def _data(item: dict[str, Any], key: str) -> str | None:
    value = item.get(f"{key}-data")
    return base64.b64decode(value).decode() if value else None


def _file(item: dict[str, Any], key: str, base: pathlib.Path) -> str | None:
    value = item.get(key)
    return str(base / os.path.expanduser(value)) if value else None  # relative to the kubeconfig


def _named(configs: list[tuple[pathlib.Path, dict[str, Any]]], section: str, name: str
           ) -> tuple[pathlib.Path, dict[str, Any]]:
    for path, config in configs:  # the first file that defines a name wins, as kubectl does
        for entry in config.get(section) or []:
            if entry.get("name") == name:
                return path.parent, entry.get(section[:-1]) or {}
    raise ConfigError(f"kubeconfig {', '.join(str(p) for p, _ in configs)}: no {section[:-1]} named {name!r}")


def _read_kubeconfig(path: pathlib.Path) -> dict[str, Any]:
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        from httpd_operator.inputs import located

        raise ConfigError(located(str(path), exc)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: {getattr(exc, 'strerror', None) or exc}") from None
    if config is not None and not isinstance(config, dict):
        raise ConfigError(f"{path}: not a kubeconfig (expected an object with clusters, users, contexts)")
    return config or {}


def from_kubeconfig(paths: list[pathlib.Path], context: str | None = None, origin: str = "") -> Cluster:
    """The cluster of `context` (default: the current one) in the kubeconfig files `paths`,
    merged as kubectl merges them; `origin` says where the paths came from, for errors."""
    configs = [(p, _read_kubeconfig(p)) for p in paths if p.exists()]
    if not configs:
        raise ConfigError(f"kubeconfig not found: {', '.join(map(str, paths))}{f' (from {origin})' if origin else ''}")
    files = ", ".join(str(p) for p, _ in configs)
    context = context or next((c["current-context"] for _, c in configs if c.get("current-context")), None)
    if not context:
        raise ConfigError(f"kubeconfig {files}: no current-context, and no --context given")
    try:
        return _cluster(configs, context, f"kubeconfig {files}, context {context}")
    except (KeyError, TypeError, AttributeError) as exc:  # a hand-edited file of the wrong shape
        raise ConfigError(f"kubeconfig {files}: malformed ({type(exc).__name__}: {exc})") from None


def _cluster(configs: list[tuple[pathlib.Path, dict[str, Any]]], context: str, source: str) -> Cluster:
    _, ctx = _named(configs, "contexts", context)
    base, cluster = _named(configs, "clusters", ctx.get("cluster", ""))
    user_base, user = _named(configs, "users", ctx["user"]) if ctx.get("user") else (base, {})
    provider = (user.get("auth-provider") or {})
    if provider and not (provider.get("config") or {}).get("id-token"):
        raise ConfigError(f"{source}: auth-provider {provider.get('name')!r} is not supported; "
                          "use an exec credential plugin")
    if not cluster.get("server"):
        raise ConfigError(f"{source}: cluster {ctx.get('cluster')!r} has no server")
    return Cluster(
        server=cluster["server"].rstrip("/"),
        ca_file=_file(cluster, "certificate-authority", base), ca_data=_data(cluster, "certificate-authority"),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        cert_file=_file(user, "client-certificate", user_base), cert_data=_data(user, "client-certificate"),
        key_file=_file(user, "client-key", user_base), key_data=_data(user, "client-key"),
        token=user.get("token") or (provider.get("config") or {}).get("id-token"),
        token_file=_file(user, "tokenFile", user_base),
        username=user.get("username"), password=user.get("password"), exec_plugin=user.get("exec"),
        namespace=ctx.get("namespace"), tls_server_name=cluster.get("tls-server-name"),
        proxy_url=cluster.get("proxy-url"), source=source)


def in_cluster() -> Cluster:
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    token = SERVICE_ACCOUNT / "token"
    if not host or not token.exists():
        raise ConfigError("no kubeconfig (tried --kubeconfig: not given, $KUBECONFIG: unset, "
                          f"{pathlib.Path('~/.kube/config').expanduser()}: not found) and not running in a pod "
                          "(no KUBERNETES_SERVICE_HOST and service account token)")
    namespace = SERVICE_ACCOUNT / "namespace"
    return Cluster(server=f"https://{host}:{port}" if ":" not in host else f"https://[{host}]:{port}",
                   ca_file=str(SERVICE_ACCOUNT / "ca.crt"), token_file=str(token),
                   namespace=namespace.read_text().strip() if namespace.exists() else None,
                   source="the pod's service account")


def load_cluster(kubeconfig: str | None = None, context: str | None = None) -> Cluster:
    """A kubeconfig if given or found (as kubectl finds one), else the in-cluster service account."""
    if kubeconfig:
        return from_kubeconfig([pathlib.Path(kubeconfig).expanduser()], context, "--kubeconfig")
    if os.environ.get("KUBECONFIG"):
        return from_kubeconfig([pathlib.Path(p).expanduser() for p in os.environ["KUBECONFIG"].split(os.pathsep)
                                if p], context, "$KUBECONFIG")
    default = pathlib.Path("~/.kube/config").expanduser()
    if default.exists():
        return from_kubeconfig([default], context)
    return in_cluster()
