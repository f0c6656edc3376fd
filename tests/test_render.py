"""The pure core: spec in, objects out."""

from __future__ import annotations

import functools
from typing import Any

import pytest
from support import site

from httpd_operator.errors import SpecError
from httpd_operator.render import render_body
from httpd_operator.settings import DEFAULT_IMAGE, Settings
from httpd_operator.spec import parse_site

body = functools.partial(site, uid="uid-1", generation=3)


def objects(name: str = "web", settings: Settings | None = None, **spec: Any) -> dict[str, dict[str, Any]]:
    rendered = render_body(body(name, **spec), settings or Settings())
    return {o["kind"]: o for o in rendered.objects}


def pod(objs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return objs["Deployment"]["spec"]["template"]["spec"]


def test_defaults_give_claim_deployment_service_with_common_labels() -> None:
    objs = objects()
    assert set(objs) == {"PersistentVolumeClaim", "Deployment", "Service", "NetworkPolicy"}
    for obj in objs.values():
        assert obj["metadata"]["labels"] == {
            "app.kubernetes.io/name": "httpd", "app.kubernetes.io/instance": "web",
            "app.kubernetes.io/managed-by": "httpd-operator", **(
                {"httpd.dev/site": "web"} if obj["kind"] == "PersistentVolumeClaim" else {})}
    assert objs["PersistentVolumeClaim"]["metadata"]["name"] == "web-htdocs"
    assert objs["PersistentVolumeClaim"]["spec"] == {"accessModes": ["ReadWriteOnce"],
                                                     "resources": {"requests": {"storage": "1Gi"}}}
    assert objs["Deployment"]["spec"]["replicas"] == 1
    assert pod(objs)["containers"][0]["image"] == DEFAULT_IMAGE
    assert objs["Service"]["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]


def test_retain_claim_has_no_owner_and_delete_claim_is_owned() -> None:
    assert "ownerReferences" not in objects()["PersistentVolumeClaim"]["metadata"]
    owned = objects(volume={"reclaimPolicy": "Delete"})["PersistentVolumeClaim"]["metadata"]["ownerReferences"]
    assert owned == [{"apiVersion": "httpd.dev/v1alpha1", "kind": "HttpdSite", "name": "web", "uid": "uid-1",
                      "controller": True, "blockOwnerDeletion": True}]
    for kind in ("Deployment", "Service"):
        assert objects()[kind]["metadata"]["ownerReferences"][0]["uid"] == "uid-1"


def test_container_is_hardened_and_writes_only_to_volumes() -> None:
    spec = pod(objects())
    container = spec["containers"][0]
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["runAsNonRoot"] is True and security["runAsUser"] != 0
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["seccompProfile"] == {"type": "RuntimeDefault"}
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert mounts == {"/usr/local/apache2/htdocs": "htdocs", "/usr/local/apache2/run": "run",
                      "/usr/local/apache2/logs": "logs", "/tmp": "tmp"}
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["htdocs"]["persistentVolumeClaim"] == {"claimName": "web-htdocs"}
    assert all("emptyDir" in volumes[n] for n in ("run", "logs", "tmp"))
    assert spec["automountServiceAccountToken"] is False


def test_a_terminating_pod_keeps_serving_while_it_leaves_the_services_endpoints() -> None:
    """Found on real pods (tests/e2e/test_day_two_on_pods.py): during a rolling update the
    terminating httpd refused connections the Service still sent it. It waits first, then stops
    gracefully within the grace period."""
    spec = pod(objects())
    (container,) = [c for c in spec["containers"] if c["name"] == "httpd"]
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep" and 0 < int(command[1]) < spec["terminationGracePeriodSeconds"] - 10


def test_port_replicas_image_and_scheduling_fields_reach_the_pod() -> None:
    objs = objects(replicas=4, port=9090, image="example/httpd:1", service={"type": "NodePort", "port": 8080},
                   resources={"limits": {"memory": "128Mi"}}, nodeSelector={"disk": "ssd"},
                   tolerations=[{"key": "k", "operator": "Exists"}], podAnnotations={"a": "b"},
                   affinity={"nodeAffinity": {"x": 1}})
    spec, container = pod(objs), pod(objs)["containers"][0]
    assert objs["Deployment"]["spec"]["replicas"] == 4
    assert container["ports"][0]["containerPort"] == 9090
    assert {"name": "HTTPD_PORT", "value": "9090"} in container["env"]
    assert container["image"] == "example/httpd:1"
    assert container["resources"] == {"limits": {"memory": "128Mi"}}
    assert spec["nodeSelector"] == {"disk": "ssd"}
    assert spec["tolerations"] == [{"key": "k", "operator": "Exists"}]
    assert objs["Deployment"]["spec"]["template"]["metadata"]["annotations"] == {"a": "b"}
    assert objs["Service"]["spec"]["type"] == "NodePort"
    assert objs["Service"]["spec"]["ports"][0]["port"] == 8080
    # The user's affinity is kept, and the co-location rule for the ReadWriteOnce claim is added.
    assert spec["affinity"]["nodeAffinity"] == {"x": 1}
    assert spec["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]


def test_default_image_is_the_operators_setting() -> None:
    assert pod(objects(settings=Settings(default_image="mirror/httpd:9")))["containers"][0]["image"] == "mirror/httpd:9"


def test_render_is_pure_and_does_not_mutate_its_input() -> None:
    raw = body(replicas=2, tolerations=[{"key": "k"}], affinity={"podAffinity": {}})
    snapshot = repr(raw)
    first = render_body(raw, Settings()).objects
    second = render_body(raw, Settings()).objects
    assert first == second
    assert repr(raw) == snapshot


@pytest.mark.parametrize(("spec", "field", "reason"), [
    ({"port": 80}, "spec.port", "InvalidSpec"),
    ({"port": -1}, "spec.port", "InvalidSpec"),
    ({"replicas": "two"}, "spec.replicas", "InvalidSpec"),
    ({"replicas": True}, "spec.replicas", "InvalidSpec"),
    ({"volume": {"size": "lots"}}, "spec.volume.size", "InvalidSpec"),
    ({"volume": {"size": "-1Gi"}}, "spec.volume.size", "InvalidSpec"),
    ({"volume": {"size": "0"}}, "spec.volume.size", "InvalidSpec"),
    ({"volume": {"accessModes": ["ReadWriteSometimes"]}}, "spec.volume.accessModes[0]", "InvalidSpec"),
    ({"volume": {"type": "Cloud"}}, "spec.volume.type", "InvalidSpec"),
    ({"service": {"type": "ExternalName"}}, "spec.service.type", "InvalidSpec"),
    ({"image": "bad image"}, "spec.image", "InvalidSpec"),
    ({"nodeSelector": {"a": 1}}, "spec.nodeSelector.a", "InvalidSpec"),
    ({"replicas": 2, "volume": {"accessModes": ["ReadWriteOncePod"]}}, "spec.replicas", "AccessModeConflict"),
])
def test_bad_specs_are_refused_naming_the_field(spec: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(SpecError) as exc:
        render_body(body(**spec), Settings())
    assert exc.value.field == field
    assert exc.value.reason == reason
    assert exc.value.message.startswith(field)


@pytest.mark.parametrize("name", ["x" * 64, "1site", "Web", "web_site", "a" * 253])
def test_names_too_long_or_invalid_for_children_are_refused(name: str) -> None:
    with pytest.raises(SpecError) as exc:
        parse_site(body(name), Settings())
    assert exc.value.field == "metadata.name"


def test_longest_valid_name_gives_valid_child_names() -> None:
    objs = objects("a" * 63)
    assert objs["Service"]["metadata"]["name"] == "a" * 63
    assert objs["PersistentVolumeClaim"]["metadata"]["name"] == "a" * 63 + "-htdocs"


def test_disruption_budget_only_with_several_replicas_and_in_the_served_version() -> None:
    assert "PodDisruptionBudget" not in objects(replicas=1)
    budget = objects(replicas=3, disruptionBudget={"minAvailable": "50%"})["PodDisruptionBudget"]
    assert budget["apiVersion"] == "policy/v1"
    assert budget["spec"] == {"minAvailable": "50%", "selector": {"matchLabels": {
        "app.kubernetes.io/name": "httpd", "app.kubernetes.io/instance": "web"}}}
    old = Settings(api_versions=(("PodDisruptionBudget", "policy/v1beta1"),))
    assert objects(settings=old, replicas=2)["PodDisruptionBudget"]["apiVersion"] == "policy/v1beta1"
    with pytest.raises(SpecError) as exc:
        objects(replicas=2, disruptionBudget={"minAvailable": "150%"})
    assert exc.value.field == "spec.disruptionBudget.minAvailable"
