"""End to end on a real cluster with nodes (kind, k3d, minikube...): `make e2e`; or on this
machine's own control plane and node (hack/control-plane, hack/node): `make e2e-local`.

Skipped unless HTTPD_OPERATOR_E2E_KUBECONFIG names a cluster that answers and has a Ready node.
The operator runs from this process against that cluster (as `httpd-operator run` would); the
cluster must be able to pull the site image (HTTPD_OPERATOR_E2E_IMAGE, default: the operator's
default httpd image; with kind: `kind load docker-image ...`; with hack/node: `hack/node
import-image`). The CRDs are applied from crds/. HTTPD_OPERATOR_E2E_KUBECTL names the kubectl
(default: the one on PATH; `hack/node env` gives the 1.20 one built with the control plane).
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from polling import wait_until

from httpd_operator.kube import ApiError, Kube, load_configuration
from httpd_operator.runner import OperatorThread
from httpd_operator.settings import DEFAULT_IMAGE, Settings

ROOT = pathlib.Path(__file__).resolve().parents[2]
KUBECONFIG = os.environ.get("HTTPD_OPERATOR_E2E_KUBECONFIG", "")
IMAGE = os.environ.get("HTTPD_OPERATOR_E2E_IMAGE", DEFAULT_IMAGE)
KUBECTL = os.environ.get("HTTPD_OPERATOR_E2E_KUBECTL", "kubectl")
TIMEOUT = float(os.environ.get("HTTPD_OPERATOR_E2E_TIMEOUT", "300"))
# Each wait has TIMEOUT; the whole test makes several.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(4 * TIMEOUT)]


def kubectl(*args: str, check: bool = True, timeout: float = 120, input: str | None = None,
            ) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run([KUBECTL, "--kubeconfig", KUBECONFIG, *args], capture_output=True, text=True,
                              check=check, timeout=timeout, input=input)
    except subprocess.CalledProcessError as exc:
        raise AssertionError(f"kubectl {' '.join(args)} failed ({exc.returncode}): {exc.stderr.strip()}") from exc


def wait(check: Any, what: str, timeout: float = TIMEOUT) -> Any:
    return wait_until(check, timeout, what, interval=1)


@pytest.fixture(scope="module")
def cluster() -> Kube:
    if not KUBECONFIG:
        pytest.skip("no cluster for the e2e suite: set HTTPD_OPERATOR_E2E_KUBECONFIG (make e2e KUBECONFIG=...)")
    kube = Kube(load_configuration(KUBECONFIG))
    try:
        nodes = kube._call("GET", "/api/v1/nodes")["items"]
    except ApiError as exc:
        pytest.skip(f"the cluster in {KUBECONFIG} does not answer: {exc}")
    if not any(c["type"] == "Ready" and c["status"] == "True" for n in nodes for c in n["status"]["conditions"]):
        pytest.skip(f"the cluster in {KUBECONFIG} has no Ready node: pods cannot run there")
    kubectl("apply", "-f", str(ROOT / "crds" / "httpdsites.yaml"), "-f", str(ROOT / "crds" / "peering.yaml"))
    return kube


@pytest.fixture
def namespace(cluster: Kube) -> Iterator[str]:
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        # Shown by pytest when the test failed: what the cluster made of the site.
        print(kubectl("-n", name, "get", "hs,deploy,rs,pods,pvc,svc,events", "-o", "wide", check=False).stdout)
        print(kubectl("-n", name, "describe", "pods", check=False).stdout)
        for pod in kubectl("-n", name, "get", "pods", "-o", "name", check=False).stdout.split():
            print(kubectl("-n", name, "logs", pod, "--all-containers", "--prefix", "--tail=20", check=False).stdout)
        kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def operator(namespace: str) -> Iterator[OperatorThread]:
    thread = OperatorThread(Settings(default_image=IMAGE), load_configuration(KUBECONFIG), (namespace,))
    thread.start()
    try:
        yield thread
    finally:
        thread.stop()


def get(namespace: str, path: str) -> tuple[str, dict[str, str]]:
    """GET through the Service, with kubectl port-forward (no cluster DNS or ingress needed); like
    the Service, port-forward picks a ready pod. Returns the body and the headers."""
    proc = subprocess.Popen([KUBECTL, "--kubeconfig", KUBECONFIG, "-n", namespace, "port-forward", "svc/web",
                             ":80"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        port = re.search(r"127\.0\.0\.1:(\d+)", line)
        assert port, f"port-forward said {line!r}"
        with urllib.request.urlopen(f"http://127.0.0.1:{port.group(1)}{path}", timeout=10) as response:
            return response.read().decode(), dict(response.headers)
    finally:
        proc.terminate()
        proc.wait(10)


def fetch(namespace: str, path: str) -> str:
    return get(namespace, path)[0]


def status(namespace: str) -> dict[str, Any]:
    out = kubectl("-n", namespace, "get", "hs", "web", "-o", "json", check=False)
    return (json.loads(out.stdout) if out.returncode == 0 else {}).get("status") or {}


def test_site_serves_its_volume_which_outlives_pods_and_the_site(namespace: str, operator: OperatorThread) -> None:
    site = f"""apiVersion: httpd.dev/v1alpha1
kind: HttpdSite
metadata: {{name: web, namespace: {namespace}}}
spec: {{image: {IMAGE}}}
"""
    kubectl("apply", "-f", "-", input=site)
    wait(lambda: status(namespace).get("volume", {}).get("phase") == "Bound", "the claim Bound")
    wait(lambda: status(namespace).get("phase") == "Ready", "the rollout")
    assert "<html" in fetch(namespace, "/").lower()  # the image's seed content
    kubectl("-n", namespace, "exec", "deploy/web", "-c", "httpd", "--", "sh", "-c",
            "echo kept-across-pods > /usr/local/apache2/htdocs/e2e.txt")
    assert fetch(namespace, "/e2e.txt").strip() == "kept-across-pods"
    pods = kubectl("-n", namespace, "get", "pods", "-l", "app.kubernetes.io/instance=web", "-o", "name")
    pod = pods.stdout.split()[0]
    kubectl("-n", namespace, "delete", pod)
    wait(lambda: status(namespace).get("phase") == "Ready" and pod not in kubectl(
        "-n", namespace, "get", "pods", "-o", "name").stdout, "a new pod")
    assert fetch(namespace, "/e2e.txt").strip() == "kept-across-pods"
    claim_uid = kubectl("-n", namespace, "get", "pvc", "web-htdocs", "-o", "jsonpath={.metadata.uid}").stdout
    kubectl("-n", namespace, "delete", "hs", "web")
    wait(lambda: kubectl("-n", namespace, "get", "deploy", "web", check=False).returncode != 0, "the Deployment gone")
    assert kubectl("-n", namespace, "get", "pvc", "web-htdocs", "-o", "jsonpath={.metadata.uid}").stdout == claim_uid


def test_a_config_httpd_rejects_never_takes_the_site_down(namespace: str, operator: OperatorThread) -> None:
    """spec.httpd.config rolls the pods; a config httpd refuses leaves the old pod serving."""
    def apply(config: str) -> None:
        body = {"apiVersion": "httpd.dev/v1alpha1", "kind": "HttpdSite",
                "metadata": {"name": "web", "namespace": namespace},
                "spec": {"image": IMAGE, "httpd": {"config": config}}}
        kubectl("apply", "-f", "-", input=json.dumps(body))

    def header() -> str | None:
        return get(namespace, "/healthz")[1].get("X-Config")

    def header_once_settled() -> str | None:
        try:  # port-forward may still pick a pod the finished rollout is terminating: it then
            return header()  # prints nothing and exits, or the connection drops
        except (OSError, AssertionError):
            return None

    apply("Header always set X-Config one\n")
    wait(lambda: status(namespace).get("phase") == "Ready", "the first rollout")
    assert header() == "one"
    apply("</IfModule>\n")  # a syntax error httpd reports at start
    def readiness() -> list[bool]:
        out = kubectl("-n", namespace, "get", "pods", "-l", "app.kubernetes.io/instance=web", "-o", "json")
        return sorted(all(c.get("ready") for c in (p["status"].get("containerStatuses") or [{}]))
                      for p in json.loads(out.stdout)["items"])

    wait(lambda: readiness() == [False, True], "a new pod that never becomes ready beside the old one")
    for _ in range(5):  # the old pod keeps serving the old config all along
        assert header() == "one"
    assert status(namespace).get("phase") != "Ready"
    apply("Header always set X-Config two\n")
    wait(lambda: status(namespace).get("phase") == "Ready" and status(namespace).get("updatedReplicas") == 1,
         "the fixed config rolled out")
    wait(lambda: header_once_settled() == "two", "the new config served")
