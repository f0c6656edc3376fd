"""The restricted Pod Security profile, judged by a real admission controller: `make e2e-local`
restarts its control plane with the PodSecurityPolicy admission plugin
(HTTPD_OPERATOR_CP_ADMISSION_PLUGINS) and runs this suite alone with HTTPD_OPERATOR_E2E_PSP=1.
Every example site's pods are admitted under a policy equal to the restricted profile
(tests/e2e/psp/restricted.yaml) and run on the node, but for the HostPath one, which the server
refuses with its reason, and the NFS one, admitted but with no export to mount here."""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import pytest
import yaml

from e2e.cluster import IMAGE, ROOT, TIMEOUT, kubectl, kubectl_json, site_pods, wait
from httpd_operator.runner import OperatorThread

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(4 * TIMEOUT)]
EXAMPLES = ROOT / "examples"
NOT_RUNNABLE_HERE = {"docs": "its NFS server (nfs.example.internal) does not exist here"}


@pytest.fixture
def restricted(cluster: object) -> None:
    if not os.environ.get("HTTPD_OPERATOR_E2E_PSP"):
        pytest.skip("needs a control plane with the PodSecurityPolicy admission plugin (make e2e-local runs it; "
                    "HTTPD_OPERATOR_E2E_PSP=1 says the cluster has it)")
    kubectl("apply", "-f", str(ROOT / "tests" / "e2e" / "psp" / "restricted.yaml"))


def example_documents(namespace: str) -> list[dict]:
    docs = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                doc["metadata"]["namespace"] = namespace
                if doc["kind"] == "HttpdSite" and "image" in doc["spec"]:
                    doc["spec"]["image"] = IMAGE  # the image on the node
                docs.append(doc)
    return docs


def test_every_example_but_hostpath_is_admitted_under_the_restricted_profile(
        namespace: str, operator_with: Callable[..., OperatorThread], restricted: None) -> None:
    operator_with(allowed_host_paths=("/srv/www",))  # the operator renders it; the server must refuse it
    docs = example_documents(namespace)
    kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": docs}))
    sites = [d["metadata"]["name"] for d in docs if d["kind"] == "HttpdSite"]
    hostpath = {d["metadata"]["name"] for d in docs if d["kind"] == "HttpdSite"
                and (d["spec"].get("volume") or {}).get("type") == "HostPath"}
    assert hostpath == {"local"}
    verdicts: dict[str, str] = {}

    def admitted(name: str) -> bool:
        pods = site_pods(namespace, name)
        if pods and all(p["metadata"].get("annotations", {}).get("kubernetes.io/psp") == "restricted" for p in pods):
            if name in NOT_RUNNABLE_HERE:
                verdicts[name] = f"admitted ({NOT_RUNNABLE_HERE[name]})"
                return True
            if all(p["status"].get("phase") == "Running" for p in pods):
                verdicts[name] = "admitted and running"
                return True
        return False

    for name in sorted(set(sites) - hostpath):
        wait(lambda name=name: admitted(name), f"{name}'s pods admitted under the restricted policy")

    def refused() -> str | None:
        for rs in kubectl_json("-n", namespace, "get", "rs", "-l", "app.kubernetes.io/instance=local")["items"]:
            for condition in rs["status"].get("conditions") or []:
                if condition["type"] == "ReplicaFailure" and "hostPath" in condition["message"]:
                    return condition["message"]
        return None

    message = wait(refused, "the HostPath site's pods refused by the server")
    assert "hostPath volumes are not allowed to be used" in message, message
    assert site_pods(namespace, "local") == []
    verdicts["local"] = f"refused: {message}"
    print("restricted profile, per example site:", json.dumps(verdicts, indent=1))
