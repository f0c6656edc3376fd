"""The operator installed as users install it, on a real cluster with a node: the images `make
images` built (imported into the node, or pullable by it), `kubectl apply -k` of an overlay that
points at them (manifests/overlays/own-registry, the documented way), the same folder applied at
once as a GitOps tool does (server-side), and Helm's engine (helm-python-sdk: install, upgrade,
rollback, uninstall). The operator runs as a pod, as its ServiceAccount, from the shipped manifests.

HTTPD_OPERATOR_E2E_IMAGES: the four references `hack/images build` printed (operator, httpd,
exporter, git); HTTPD_OPERATOR_E2E_UPGRADE_IMAGE: the operator image under another reference, for the
Helm upgrade. `make e2e-local` sets both. The tests run in order and share one install; the
cluster's own CRDs and operator install are removed first and last (a fresh cluster's state).
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from e2e.cluster import (
    AUDIT_LOG,
    KUBECONFIG,
    KUSTOMIZE_KUBECTL,
    ROOT,
    TIMEOUT,
    Poller,
    audit_events,
    fetch,
    forward,
    http,
    kubectl,
    kubectl_json,
    pods,
    ready,
    site_status,
    wait,
)
from e2e.conftest import show
from httpd_operator.kube import Kube

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(6 * TIMEOUT)]

NS = "httpd-operator"  # the install's namespace (manifests/base/namespace.yaml)
OPERATOR = "app.kubernetes.io/name=httpd-operator"
SITE = "app.kubernetes.io/instance=web"
CRDS = ("httpdsites.httpd.dev", "clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev")
CHART = ROOT / "manifests" / "helm" / "httpd-operator"
WRITES = {"create", "update", "patch", "delete", "deletecollection"}


@dataclass
class Install:
    operator: str
    httpd: str
    exporter: str
    overlay: pathlib.Path
    sites: str = field(default_factory=lambda: f"install-{uuid.uuid4().hex[:6]}")
    claim_uid: str = ""
    figures: dict[str, float] = field(default_factory=dict)


def remove_installs() -> None:
    """No operator, no CRDs (and so no sites): what a fresh cluster has."""
    kubectl("delete", "-k", str(ROOT / "manifests"), "--ignore-not-found", "--wait=true", timeout=300,
            binary=KUSTOMIZE_KUBECTL, check=False)
    kubectl("delete", "namespace", NS, "--ignore-not-found", "--wait=true", timeout=300, check=False)
    kubectl("delete", "crd", *CRDS, "--ignore-not-found", "--wait=true", timeout=300, check=False)
    for kind in ("clusterrole", "clusterrolebinding"):
        kubectl("delete", kind, "httpd-operator", "--ignore-not-found", check=False)


@pytest.fixture(scope="module")
def install(cluster: Kube, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Install]:
    refs = os.environ.get("HTTPD_OPERATOR_E2E_IMAGES", "").split()
    if refs and len(refs) != 4:  # set, but not to what hack/images builds: an error, not a skip
        pytest.fail(f"HTTPD_OPERATOR_E2E_IMAGES names {len(refs)} images, not the four `hack/images build` prints")
    if not refs:
        pytest.skip("HTTPD_OPERATOR_E2E_IMAGES names no images: set it to the four references `hack/images "
                    "build` prints, pullable by the cluster (make e2e-local builds and imports them)")
    operator, httpd, exporter, git = refs
    overlay = tmp_path_factory.mktemp("overlay")
    text = (ROOT / "manifests" / "overlays" / "own-registry" / "kustomization.yaml").read_text()
    text = text.replace("  - ../../base", f"  - {os.path.relpath(ROOT / 'manifests' / 'base', overlay)}")
    name, _, tag = operator.rpartition(":")
    text = text.replace("registry.example.com/httpd-operator/httpd-operator", name).replace("newTag: 0.1.0",
                                                                                           f"newTag: {tag}")
    text = re.sub(r"registry\.example\.com/httpd-operator/httpd:\S+", httpd, text)
    text = re.sub(r"registry\.example\.com/httpd-operator/apache-exporter:\S+", exporter, text)
    text = re.sub(r"registry\.example\.com/httpd-operator/git-sync:\S+", git, text)
    (overlay / "kustomization.yaml").write_text(text)
    remove_installs()
    kubectl("create", "namespace", (state := Install(operator, httpd, exporter, overlay)).sites)
    try:
        yield state
    finally:
        show(state.sites)
        print(kubectl("-n", NS, "get", "all", "-o", "wide", check=False).stdout)
        print(kubectl("-n", NS, "logs", "-l", OPERATOR, "--tail=30", "--prefix", check=False).stdout)
        print("figures:", json.dumps(state.figures, indent=1))
        if figures := os.environ.get("HTTPD_OPERATOR_E2E_FIGURES"):  # make e2e-local prints them
            pathlib.Path(figures).write_text(json.dumps(state.figures, indent=1) + "\n")
        kubectl("delete", "namespace", state.sites, "--wait=false", check=False)
        remove_installs()


def apply_site(install: Install) -> None:
    site = {"apiVersion": "httpd.dev/v1alpha1", "kind": "HttpdSite",
            "metadata": {"name": "web", "namespace": install.sites},
            "spec": {"metrics": {"enabled": True}}}  # no image: the operator's default, from its settings
    kubectl("apply", "-f", "-", input=json.dumps(site))


def site_ready(install: Install) -> bool:
    status = site_status(install.sites)
    return status.get("phase") == "Ready" and status.get("observedGeneration") == kubectl_json(
        "-n", install.sites, "get", "hs", "web")["metadata"]["generation"]


def operator_pods() -> list[dict[str, Any]]:
    return [p for p in pods(NS, OPERATOR) if not p["metadata"].get("deletionTimestamp")]


def wait_for_operator(replicas: int = 2) -> None:
    wait(lambda: len([p for p in operator_pods() if ready(p)]) == replicas
         and kubectl_json("-n", NS, "get", "deploy", "httpd-operator")["status"].get("updatedReplicas") == replicas
         and len(operator_pods()) == replicas, f"{replicas} operator pods Ready")


def site_pods(install: Install) -> set[str]:
    """The site's pods once settled: the one replica, and no other pod still terminating."""
    def settled() -> set[str] | None:
        found = pods(install.sites, SITE)
        live = [p for p in found if not p["metadata"].get("deletionTimestamp") and ready(p)]
        return {p["metadata"]["uid"] for p in live} if len(found) == len(live) == 1 else None
    return wait(settled, "the site's pods settled", interval=0.5)


def test_one_kubectl_apply_k_installs_on_a_fresh_cluster(install: Install) -> None:
    started = time.monotonic()
    kubectl("apply", "-k", str(install.overlay), binary=KUSTOMIZE_KUBECTL)  # the first time, exit 0
    kubectl("-n", NS, "wait", "--for=condition=Available", "deploy/httpd-operator", f"--timeout={int(TIMEOUT)}s",
            timeout=TIMEOUT + 10)
    install.figures["apply -k to operator Available (s)"] = round(time.monotonic() - started, 1)
    kubectl("wait", "--for=condition=Established", "crd/httpdsites.httpd.dev", "--timeout=60s")
    apply_site(install)
    wait(lambda: site_ready(install), "the first site Ready", interval=0.5)
    install.figures["apply -k to first site Ready (s)"] = round(time.monotonic() - started, 1)


def test_the_operator_pod_runs_as_shipped(install: Install) -> None:
    wait_for_operator()
    for pod in operator_pods():
        name, spec = pod["metadata"]["name"], pod["spec"]
        (container,) = spec["containers"]
        assert spec["serviceAccountName"] == "httpd-operator"
        assert container["image"] == install.operator
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        (status,) = pod["status"]["containerStatuses"]
        assert status["restartCount"] == 0, f"{name} restarted"
        ids = kubectl("-n", NS, "exec", name, "--", "python3", "-c", "import os; print(os.getuid(), os.getgid())")
        assert ids.stdout.split() == ["10001", "10001"]
        write = kubectl("-n", NS, "exec", name, "--", "python3", "-c", "open('/probe', 'w')", check=False)
        assert write.returncode != 0 and "Read-only file system" in write.stderr
        token = kubectl("-n", NS, "exec", name, "--", "python3", "-c",
                        "print(len(open('/var/run/secrets/kubernetes.io/serviceaccount/token').read()))")
        assert int(token.stdout) > 100
        with forward(NS, f"pod/{name}", 8081) as (port,):  # what the kubelet's liveness probe asks
            assert http(port, "/healthz")[0] == 200
    with forward(NS, "svc/httpd-operator-metrics", 9090) as (port,):
        code, body, _ = http(port, "/metrics")
        assert code == 200 and b"httpd_operator_sites" in body
    if AUDIT_LOG:  # its requests are its ServiceAccount's, from its pod (our client's user agent names it)
        agents = tuple(f"({p['metadata']['name']})" for p in operator_pods())
        users = {e["user"].get("username") for e in audit_events() if e.get("userAgent", "").endswith(agents)}
        assert users == {"system:serviceaccount:httpd-operator:httpd-operator"}


def test_the_site_serves_its_seed_and_its_exporter_answers(install: Install) -> None:
    assert "<title>It works</title>" in fetch(install.sites, "/")
    pod = pods(install.sites, SITE)[0]
    assert {c["image"] for c in pod["spec"]["containers"]} == {install.httpd, install.exporter}

    def accesses(port: int) -> float | None:
        code, body, _ = http(port, "/metrics")
        assert code == 200
        assert re.search(rb"^apache_up 1$", body, re.M), body[:500]
        found = re.search(rb"^apache_accesses_total (\S+)$", body, re.M)
        return float(found.group(1)) if found else None

    with forward(install.sites, "svc/web", 80, 9117) as (web, metrics):
        before = accesses(metrics)
        assert before is not None
        for _ in range(5):
            assert http(web, "/")[0] == 200
        wait(lambda: (accesses(metrics) or 0) >= before + 5, "the request counter grows", interval=0.5)


def peers() -> list[str]:
    """The live operator pods announced in kopf's peering object, the one that acts (the highest
    priority) first."""
    status = kubectl_json("get", "clusterkopfpeering", "httpd-operator").get("status") or {}
    live = {p["metadata"]["name"] for p in operator_pods()}
    ranked = sorted(((v.get("priority", 0), k.split("@", 1)[1].split("/", 1)[0]) for k, v in status.items()
                     if isinstance(v, dict)), reverse=True)
    return [name for _, name in ranked if name in live]


def active_and_passive() -> tuple[str, str]:
    active, passive = wait(lambda: (found := peers()) and len(found) == 2 and found, "both replicas announced")
    return active, passive


def writes_by(pod: str, since: int) -> list[str]:
    return [f"{e['verb']} {e['objectRef'].get('resource')}/{e['objectRef'].get('name')}"
            for e in audit_events()[since:] if e["verb"] in WRITES and f"({pod})" in e.get("userAgent", "")]


def test_two_replicas_one_acts_and_the_other_takes_over(install: Install) -> None:
    wait_for_operator()
    active, passive = active_and_passive()
    mark = len(audit_events()) if AUDIT_LOG else 0
    kubectl("-n", install.sites, "patch", "hs", "web", "--type=merge", "-p",
            json.dumps({"spec": {"httpd": {"config": "ServerTokens Prod\n"}}}))
    wait(lambda: site_ready(install) and kubectl("-n", install.sites, "get", "configmap", "web", check=False
                                                  ).returncode == 0, "the active replica reconciled a change")
    if AUDIT_LOG:
        assert writes_by(active, mark), "the active replica's writes are in the audit log"
        assert writes_by(passive, mark) == [], "the passive replica wrote"

    kubectl("-n", NS, "delete", "pod", active, "--wait=false")
    started = time.monotonic()
    kubectl("-n", install.sites, "patch", "hs", "web", "--type=merge", "-p",
            json.dumps({"spec": {"httpd": {"config": "ServerTokens Prod\nHeader always set X-Takeover yes\n"}}}))
    wait(lambda: "X-Takeover" in json.dumps(kubectl_json("-n", install.sites, "get", "configmap", "web")["data"]),
         "the other replica reconciled the next change", interval=0.2)
    install.figures["failover: active pod deleted to a change reconciled (s)"] = round(time.monotonic() - started, 1)
    wait(lambda: site_ready(install), "the site Ready after the takeover")
    wait_for_operator()


def test_kubectl_delete_k_keeps_retained_data_and_a_reinstall_reattaches_it(install: Install) -> None:
    kubectl("-n", install.sites, "exec", "deploy/web", "-c", "httpd", "--", "sh", "-c",
            "echo kept-across-installs > /usr/local/apache2/htdocs/kept.txt")
    claim = kubectl_json("-n", install.sites, "get", "pvc", "web-htdocs")
    install.claim_uid = claim["metadata"]["uid"]
    volume = claim["spec"]["volumeName"]
    wait(lambda: kubectl_json("get", "pv", volume)["spec"]["persistentVolumeReclaimPolicy"] == "Retain",
         "the bound volume set to Retain")

    kubectl("delete", "-k", str(install.overlay), "--wait=true", timeout=300, binary=KUSTOMIZE_KUBECTL)
    assert kubectl("get", "crd", "httpdsites.httpd.dev", check=False).returncode != 0, "the CRD went"
    wait(lambda: kubectl("-n", install.sites, "get", "deploy", "web", check=False).returncode != 0,
         "the site's Deployment gone with the site")
    assert kubectl_json("-n", install.sites, "get", "pvc", "web-htdocs")["metadata"]["uid"] == claim["metadata"]["uid"]

    # Installed again as a GitOps tool applies a folder: everything at once, server-side.
    rendered = kubectl("kustomize", str(install.overlay), binary=KUSTOMIZE_KUBECTL).stdout
    kubectl("apply", "--server-side", "--field-manager=gitops", "-f", "-", input=rendered, binary=KUSTOMIZE_KUBECTL)
    kubectl("-n", NS, "wait", "--for=condition=Available", "deploy/httpd-operator", f"--timeout={int(TIMEOUT)}s",
            timeout=TIMEOUT + 10)
    kubectl("wait", "--for=condition=Established", "crd/httpdsites.httpd.dev", "--timeout=60s")
    apply_site(install)
    wait(lambda: site_ready(install), "the site Ready again")
    assert fetch(install.sites, "/kept.txt").strip() == "kept-across-installs"
    assert kubectl_json("-n", install.sites, "get", "pvc", "web-htdocs")["metadata"]["uid"] == claim["metadata"]["uid"]
    # Leave for Helm: the kustomize install goes (and with its CRD, the site; the claim stays).
    kubectl("delete", "-k", str(install.overlay), "--wait=true", timeout=300, binary=KUSTOMIZE_KUBECTL)


@pytest.fixture(scope="module")
def helm(install: Install) -> Any:
    try:
        import helm_python
    except Exception as exc:  # noqa: BLE001 - the reason is the skip message
        pytest.skip(f"helm-python-sdk not usable: {type(exc).__name__}: {exc}")
    return helm_python.Config(kubeconfig_path=KUBECONFIG, namespace=NS)


def helm_values(install: Install, operator: str) -> dict[str, Any]:
    repository, _, tag = operator.rpartition(":")
    return {"image": {"repository": repository, "tag": tag}, "defaultHttpdImage": install.httpd,
            "exporterImage": install.exporter}


def reconciles(port: int) -> float:
    code, body, _ = http(port, "/metrics")
    assert code == 200
    return sum(float(v) for v in re.findall(rb"^httpd_operator_reconciles_total\{[^}]*\} (\S+)$", body, re.M))


def rolled_out_and_reconciled(install: Install, operator: str) -> None:
    """Every operator pod runs `operator`, and the active one has reconciled the site since it
    started (its reconcile counter, on its own metrics port): the site has been looked at."""
    wait(lambda: {p["spec"]["containers"][0]["image"] for p in operator_pods()} == {operator}, f"pods of {operator}")
    wait_for_operator()
    active, _ = active_and_passive()
    with forward(NS, f"pod/{active}", 9090) as (port,):
        wait(lambda: reconciles(port) >= 1, f"{active} reconciled the site")


def test_helm_install_upgrade_rollback_and_uninstall(install: Install, helm: Any) -> None:
    upgrade = os.environ.get("HTTPD_OPERATOR_E2E_UPGRADE_IMAGE")
    if not upgrade:
        pytest.skip("HTTPD_OPERATOR_E2E_UPGRADE_IMAGE names no second operator image (make e2e-local sets it)")
    started = time.monotonic()
    helm.install(str(CHART), "httpd-operator", helm_values(install, install.operator), namespace=NS,
                 create_namespace=True, wait="watcher", timeout=int(TIMEOUT))
    install.figures["helm install to operator Available (s)"] = round(time.monotonic() - started, 1)
    apply_site(install)
    wait(lambda: site_ready(install), "the site Ready under the chart's operator")
    assert fetch(install.sites, "/kept.txt").strip() == "kept-across-installs"  # the same claim, again

    for step, image in (("upgrade", upgrade), ("rollback", install.operator)):
        before = site_pods(install)
        with forward(install.sites, "svc/web", 80) as (port,), Poller(port) as poller:
            if step == "upgrade":
                helm.upgrade(str(CHART), "httpd-operator", helm_values(install, upgrade), namespace=NS,
                             wait="watcher", timeout=int(TIMEOUT))
            else:
                helm.rollback("httpd-operator", version=1, wait="watcher", timeout=int(TIMEOUT))
            rolled_out_and_reconciled(install, image)
        install.figures[f"helm {step}: requests / failed"] = float(poller.ok)
        assert poller.ok > 10 and poller.failures == [], f"{step}: {poller.failures[:5]}"
        assert site_pods(install) == before, f"{step} rolled the site's pods (its pod template is unchanged)"

    helm.uninstall("httpd-operator", wait="watcher", timeout=int(TIMEOUT))
    wait(lambda: not operator_pods(), "the operator's pods gone")
    for crd in CRDS[:2]:  # Helm's rule: CRDs from crds/ stay, and with them every site
        assert kubectl("get", "crd", crd, check=False).returncode == 0, f"{crd} went with the release"
    assert kubectl_json("-n", install.sites, "get", "hs", "web")["metadata"]["name"] == "web"
    assert fetch(install.sites, "/kept.txt").strip() == "kept-across-installs"  # still served, no operator
    assert kubectl_json("-n", install.sites, "get", "pvc", "web-htdocs")["metadata"]["uid"] == install.claim_uid
