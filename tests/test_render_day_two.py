"""The day-two renderers, pure: what each field adds, and that an absent field adds nothing."""

from __future__ import annotations

import functools
from typing import Any

import kubernetes_validate
import pytest
from support import site

from httpd_operator.errors import SpecError
from httpd_operator.render import render_body
from httpd_operator.render.config import ANNOTATION_CHECKSUM
from httpd_operator.render.ingress import ingress_url
from httpd_operator.render.meta import selector_labels
from httpd_operator.settings import Settings
from httpd_operator.spec import parse_site

CPU = {"requests": {"cpu": "100m"}}


body = functools.partial(site, uid="uid-web", generation=1)


def objects(settings: Settings = Settings(), **spec: Any) -> dict[str, dict[str, Any]]:  # noqa: B008
    return {o["kind"]: o for o in render_body(body(**spec), settings).objects}


def pod(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]


def test_an_empty_spec_gets_only_the_base_objects() -> None:
    assert set(objects()) == {"PersistentVolumeClaim", "Deployment", "Service", "NetworkPolicy"}
    deployment = objects()["Deployment"]
    assert "annotations" not in deployment["spec"]["template"]["metadata"]
    assert [c["name"] for c in pod(deployment)["containers"]] == ["httpd"]


def test_config_checksum_follows_the_config_only() -> None:
    def checksum(**spec: Any) -> str:
        return objects(**spec)["Deployment"]["spec"]["template"]["metadata"]["annotations"][ANNOTATION_CHECKSUM]

    one = checksum(httpd={"config": "ServerTokens Prod\n"})
    assert one == checksum(httpd={"config": "ServerTokens Prod\n"}, replicas=3, service={"port": 81})
    assert one != checksum(httpd={"config": "ServerTokens Full\n"})
    assert one != checksum(httpd={"config": "ServerTokens Prod\n", "modules": ["expires"]})
    # user pod annotations and the checksum live side by side
    notes = objects(httpd={"config": "x"}, podAnnotations={"team": "a"})["Deployment"]["spec"]["template"]
    assert set(notes["metadata"]["annotations"]) == {"team", ANNOTATION_CHECKSUM}


def test_modules_are_normalised_and_deduplicated() -> None:
    site = parse_site(body(httpd={"modules": ["mod_expires", "expires_module", "expires", "mod_proxy.so"]}),
                      Settings())
    assert site.httpd.modules == ("expires", "proxy")


def test_probes_default_to_healthz_and_can_be_overridden() -> None:
    httpd = pod(objects()["Deployment"])["containers"][0]
    assert httpd["readinessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert (httpd["readinessProbe"]["failureThreshold"], httpd["livenessProbe"]["failureThreshold"]) == (3, 6)
    custom = pod(objects(probes={"readiness": {"path": "/ready", "periodSeconds": 2, "initialDelaySeconds": 5},
                                 "liveness": {"timeoutSeconds": 4}})["Deployment"])["containers"][0]
    assert custom["readinessProbe"] == {"httpGet": {"path": "/ready", "port": "http"}, "periodSeconds": 2,
                                        "timeoutSeconds": 1, "failureThreshold": 3, "initialDelaySeconds": 5}
    assert custom["livenessProbe"]["timeoutSeconds"] == 4 and custom["livenessProbe"]["httpGet"]["path"] == "/healthz"


@pytest.mark.parametrize("version", ["autoscaling/v2", "autoscaling/v2beta2"])
def test_autoscaler_targets_the_site_in_the_served_version(version: str) -> None:
    settings = Settings(api_versions=(("HorizontalPodAutoscaler", version),))
    hpa = objects(settings, resources=CPU, autoscaling={"minReplicas": 2, "maxReplicas": 5})["HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == version
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "httpd.dev/v1alpha1", "kind": "HttpdSite", "name": "web"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 5)


def test_replicas_stay_within_the_autoscaling_bounds() -> None:
    assert parse_site(body(resources=CPU, autoscaling={"minReplicas": 3, "maxReplicas": 5}), Settings()).replicas == 3
    assert parse_site(body(resources=CPU, replicas=9, autoscaling={"maxReplicas": 5}), Settings()).replicas == 5
    assert parse_site(body(resources=CPU, replicas=4, autoscaling={"maxReplicas": 5}), Settings()).replicas == 4


def test_autoscaling_needs_a_cpu_request() -> None:
    with pytest.raises(SpecError) as exc:
        objects(autoscaling={"maxReplicas": 3}, resources={"limits": {"memory": "64Mi"}})
    assert exc.value.field == "spec.resources.requests.cpu"


def test_ingress_and_its_url() -> None:
    ingress = objects(ingress={"host": "www.example.com", "path": "/docs", "className": "nginx",
                               "tlsSecretName": "tls", "annotations": {"a/b": "c"}})["Ingress"]
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["metadata"]["annotations"] == {"a/b": "c"}
    rule = ingress["spec"]["rules"][0]
    assert rule["host"] == "www.example.com"
    assert rule["http"]["paths"][0]["backend"] == {"service": {"name": "web", "port": {"name": "http"}}}
    site = parse_site(body(ingress={"host": "www.example.com", "path": "/docs", "tlsSecretName": "tls"}), Settings())
    assert ingress_url(site, None) == "https://www.example.com/docs"
    hostless = parse_site(body(ingress={}), Settings())
    assert ingress_url(hostless, None) is None
    published = {"status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}}}
    assert ingress_url(hostless, published) == "http://203.0.113.7/"


def test_backup_pods_are_never_selected_by_the_site() -> None:
    cron = objects(backup={"target": {"claimName": "backups"}})["CronJob"]
    labels = cron["spec"]["jobTemplate"]["spec"]["template"]["metadata"]["labels"]
    assert not selector_labels("web").items() <= labels.items()  # the Service must not route to them
    job_pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert job_pod["restartPolicy"] == "Never" and job_pod["securityContext"]["runAsNonRoot"] is True
    assert job_pod["affinity"]["podAffinity"]  # beside the site's pods: its ReadWriteOnce claim is there


def test_restore_runs_before_the_seed_and_reads_the_archive_read_only() -> None:
    spec = pod(objects(volume={"restoreFrom": {"claimName": "backups", "archive": "web/a.tar.gz"}})["Deployment"])
    assert [c["name"] for c in spec["initContainers"]] == ["restore", "seed"]
    assert {"name": "restore-source", "persistentVolumeClaim": {"claimName": "backups", "readOnly": True}} \
        in spec["volumes"]
    assert {"name": "restore-source", "mountPath": "/restore-source", "readOnly": True} \
        in spec["initContainers"][0]["volumeMounts"]


def test_exporter_sidecar_never_gates_readiness() -> None:
    rendered = objects(metrics={"enabled": True})
    exporter = pod(rendered["Deployment"])["containers"][1]
    assert exporter["name"] == "exporter" and "readinessProbe" not in exporter
    assert "--scrape_uri=http://127.0.0.1:8080/server-status?auto" in exporter["args"]
    assert rendered["Service"]["spec"]["ports"][1] == {"name": "metrics", "port": 9117, "targetPort": "metrics",
                                                       "protocol": "TCP"}
    assert "ServiceMonitor" not in rendered  # the cluster has no such CRD unless discovered
    monitored = objects(Settings(api_versions=(("ServiceMonitor", "monitoring.coreos.com/v1"),)),
                        metrics={"enabled": True})
    assert monitored["ServiceMonitor"]["spec"]["endpoints"] == [{"port": "metrics", "interval": "30s"}]


def test_everything_at_once_is_valid_for_kubernetes() -> None:
    everything = objects(resources=CPU, httpd={"config": "ServerTokens Prod\n", "modules": ["expires"]},
                         probes={"readiness": {"path": "/ready"}}, autoscaling={"maxReplicas": 4},
                         ingress={"host": "a.example.com", "tlsSecretName": "t"},
                         backup={"target": {"claimName": "backups"}}, metrics={"enabled": True},
                         volume={"restoreFrom": {"claimName": "backups", "archive": "web/a.tar.gz"}})
    assert set(everything) == {"PersistentVolumeClaim", "ConfigMap", "Deployment", "Service",
                               "HorizontalPodAutoscaler", "Ingress", "CronJob", "NetworkPolicy"}
    for obj in everything.values():
        kubernetes_validate.validate(obj, "1.33.0", strict=True)
