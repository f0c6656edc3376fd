"""End to end on a real cluster with nodes (kind, k3d, minikube...): `make e2e`; or on this
machine's own control plane and node (hack/control-plane, hack/node): `make e2e-local`.

Skipped unless HTTPD_OPERATOR_E2E_KUBECONFIG names a cluster that answers and has a Ready node
(tests/e2e/conftest.py). The operator runs from this process against that cluster (as
`httpd-operator run` would); the cluster must be able to pull the site image
(HTTPD_OPERATOR_E2E_IMAGE, default: the operator's default httpd image; with kind: `kind load
docker-image ...`; with hack/node: `hack/node import-image`). The CRDs are applied from crds/.
"""

from __future__ import annotations

import json

import pytest

from e2e.cluster import IMAGE, TIMEOUT, fetch, get, kubectl, wait
from e2e.cluster import site_status as status
from httpd_operator.runner import OperatorThread

# Each wait has TIMEOUT; the whole test makes several.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(4 * TIMEOUT)]


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
