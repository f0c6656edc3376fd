"""Safe by default (issue 16): default resources and the site's NetworkPolicy, rendered."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
from test_render import body, objects, pod

from httpd_operator.errors import SpecError
from httpd_operator.render import render_body
from httpd_operator.settings import DEFAULT_RESOURCES, Settings


def httpd(objs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return pod(objs)["containers"][0]


# --- default resources ---

def test_a_site_without_resources_gets_the_documented_preset() -> None:
    assert httpd(objects())["resources"] == {"requests": {"cpu": "50m", "memory": "64Mi"},
                                             "limits": {"memory": "256Mi"}}
    assert DEFAULT_RESOURCES["limits"] == {"memory": "256Mi"}  # the figure the docs give


def test_resources_written_as_empty_still_mean_none() -> None:
    assert "resources" not in httpd(objects(resources={}))


def test_a_site_s_own_resources_replace_the_preset_whole() -> None:
    own = {"limits": {"cpu": "1"}}
    assert httpd(objects(resources=own))["resources"] == own


def test_the_preset_is_the_operator_s_setting() -> None:
    preset = {"requests": {"memory": "32Mi"}}
    assert httpd(objects(settings=Settings(default_resources=preset)))["resources"] == preset
    assert "resources" not in httpd(objects(settings=Settings(default_resources={})))


def test_the_preset_satisfies_autoscaling_s_cpu_request() -> None:
    objs = objects(autoscaling={"maxReplicas": 3})
    assert objs["HorizontalPodAutoscaler"]
    with pytest.raises(SpecError, match="spec.resources.requests.cpu"):
        render_body(body(autoscaling={"maxReplicas": 3}), Settings(default_resources={}))


def validate_all(objs: list[dict[str, Any]]) -> None:
    for obj in objs:
        for version in ("1.33.0", "1.37.0"):
            kubernetes_validate.validate(obj, version, strict=True)


def test_rendered_objects_with_the_preset_are_valid() -> None:
    validate_all(list(objects().values()))


# --- the site's NetworkPolicy ---

def policy(settings: Settings | None = None, **spec: Any) -> dict[str, Any]:
    return objects(settings=settings, **spec)["NetworkPolicy"]


def test_every_site_gets_a_network_policy_opening_the_http_port_only() -> None:
    objs = objects()
    np = objs["NetworkPolicy"]
    assert np["metadata"]["name"] == "web" and np["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    # It selects exactly the site's pods.
    assert np["spec"]["podSelector"]["matchLabels"].items() <= \
        objs["Deployment"]["spec"]["template"]["metadata"]["labels"].items()
    assert np["spec"]["podSelector"] == {"matchLabels": objs["Deployment"]["spec"]["selector"]["matchLabels"]}
    assert np["spec"]["policyTypes"] == ["Ingress"]  # egress open by default
    assert np["spec"]["ingress"] == [{"ports": [{"protocol": "TCP", "port": 8080}]}]  # from anywhere


def test_named_namespaces_and_peers_narrow_the_http_port() -> None:
    peer = {"podSelector": {"matchLabels": {"app": "gateway"}},
            "namespaceSelector": {"matchExpressions": [{"key": "team", "operator": "Exists"}]}}
    np = policy(port=9000, networkPolicy={"ingress": {"namespaces": ["front", "edge"], "peers": [peer]}})
    (http,) = np["spec"]["ingress"]
    assert http["ports"] == [{"protocol": "TCP", "port": 9000}]
    assert http["from"] == [{"namespaceSelector": {"matchExpressions": [
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["front", "edge"]}]}}, peer]


def test_metrics_port_only_from_the_monitoring_namespaces() -> None:
    scrape = {"ports": [{"protocol": "TCP", "port": 9117}], "from": [{"namespaceSelector": {"matchExpressions": [
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": ["monitoring"]}]}}]}
    assert policy(metrics={"enabled": True})["spec"]["ingress"][1] == scrape
    per_site = policy(metrics={"enabled": True}, networkPolicy={"metricsNamespaces": ["prom"]})
    assert per_site["spec"]["ingress"][1]["from"][0]["namespaceSelector"]["matchExpressions"][0]["values"] == ["prom"]
    setting = policy(Settings(metrics_namespaces=("obs",)), metrics={"enabled": True})
    assert setting["spec"]["ingress"][1]["from"][0]["namespaceSelector"]["matchExpressions"][0]["values"] == ["obs"]
    # [] closes the metrics port: only the http rule remains.
    assert len(policy(metrics={"enabled": True}, networkPolicy={"metricsNamespaces": []})["spec"]["ingress"]) == 1


def test_dns_only_egress() -> None:
    np = policy(networkPolicy={"egress": "DNSOnly"})
    assert np["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert np["spec"]["egress"] == [{"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]}]


def test_off_per_site_and_per_install() -> None:
    assert "NetworkPolicy" not in objects(networkPolicy={"enabled": False})
    assert "NetworkPolicy" not in objects(settings=Settings(network_policies=False))


def test_every_variant_of_the_policy_is_valid() -> None:
    validate_all([
        policy(metrics={"enabled": True}, networkPolicy={
            "egress": "DNSOnly", "ingress": {"namespaces": ["a"], "peers": [
                {"podSelector": {}}, {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
                {"namespaceSelector": {"matchLabels": {"x": "y"}}}]}}),
        policy(), policy(metrics={"enabled": True})])


@pytest.mark.parametrize(("network_policy", "field"), [
    ({"ingress": {"namespaces": ["Bad_NS"]}}, "spec.networkPolicy.ingress.namespaces[0]"),
    ({"ingress": {"namespaces": ["a" * 64]}}, "spec.networkPolicy.ingress.namespaces[0]"),
    ({"ingress": {"namespaces": "web"}}, "spec.networkPolicy.ingress.namespaces"),
    ({"metricsNamespaces": ["mon.itoring"]}, "spec.networkPolicy.metricsNamespaces[0]"),
    ({"ingress": {"peers": [{}]}}, "spec.networkPolicy.ingress.peers[0]"),
    ({"ingress": {"peers": [{"podselector": {}}]}}, "spec.networkPolicy.ingress.peers[0].podselector"),
    ({"ingress": {"peers": [{"podSelector": {"matchLabels": {"app": "a b"}}}]}},
     "spec.networkPolicy.ingress.peers[0].podSelector.matchLabels.app"),
    ({"ingress": {"peers": [{"podSelector": {"matchLabels": {"bad key!": "x"}}}]}},
     "spec.networkPolicy.ingress.peers[0].podSelector.matchLabels"),
    ({"ingress": {"peers": [{"podSelector": {"matchExpressions": [{"key": "a", "operator": "Like"}]}}]}},
     "spec.networkPolicy.ingress.peers[0].podSelector.matchExpressions[0].operator"),
    ({"ingress": {"peers": [{"namespaceSelector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}]}},
     "spec.networkPolicy.ingress.peers[0].namespaceSelector.matchExpressions[0].values"),
    ({"ingress": {"peers": [{"podSelector": {"app": "web"}}]}}, "spec.networkPolicy.ingress.peers[0].podSelector.app"),
    ({"ingress": {"peers": [{"ipBlock": {"cidr": "10.0.0.0/33"}}]}},
     "spec.networkPolicy.ingress.peers[0].ipBlock.cidr"),
    ({"ingress": {"peers": [{"ipBlock": {"cidr": "10.0.0.0/8", "except": ["11.0.0.0/16"]}}]}},
     "spec.networkPolicy.ingress.peers[0].ipBlock.except[0]"),
    ({"egress": "None"}, "spec.networkPolicy.egress"),
    ({"enabled": "yes"}, "spec.networkPolicy.enabled"),
])
def test_bad_network_policy_input_is_refused_naming_the_field(network_policy: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as caught:
        objects(networkPolicy=network_policy)
    assert caught.value.field == field, caught.value.message
