"""Day two against the emulated API server, with the real operator: config, ingress, autoscaling,
backup; each created, updated and removed when the spec says so, refusals as conditions and events."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

from support import SERVICE_MONITOR_CRD, Api, eventually, site

from httpd_operator.render.backup import backup_labels
from httpd_operator.render.config import ANNOTATION_CHECKSUM

CPU = {"requests": {"cpu": "100m"}}


def template(api: Api, name: str = "web") -> dict[str, Any]:
    return (api.get("apps/v1/deployments", "ns", name) or {}).get("spec", {}).get("template", {})


def checksum(api: Api, name: str = "web") -> str | None:
    return (template(api, name).get("metadata") or {}).get("annotations", {}).get(ANNOTATION_CHECKSUM)


def ready(api: Api, name: str = "web") -> bool:
    return api.site_status("ns", name).get("phase") == "Ready"


async def test_config_rolls_pods_only_when_it_changes_and_goes_away_cleanly(api: Api, operator) -> None:
    await operator()
    await api.create_site(site("web", httpd={"config": "ServerTokens Prod\n", "modules": ["expires"]}))
    config_map = await eventually(lambda: api.get("v1/configmaps", "ns", "web"))
    assert config_map["data"]["50-site.conf"] == "ServerTokens Prod\n"
    assert "LoadModule expires_module modules/mod_expires.so" in config_map["data"]["00-modules.conf"]
    first = await eventually(lambda: checksum(api))
    mounts = template(api)["spec"]["containers"][0]["volumeMounts"]
    assert {"name": "config", "mountPath": "/usr/local/apache2/conf.d", "readOnly": True} in mounts
    await eventually(lambda: ready(api))

    # A change that is not config: the pods keep their checksum (no roll for that reason).
    await api.patch_site("ns", "web", {"spec": {"service": {"port": 8081}}})
    await eventually(lambda: api.get("v1/services", "ns", "web")["spec"]["ports"][0]["port"] == 8081)
    assert checksum(api) == first

    # Dropping the modules removes their file (not left behind by a merge patch) and rolls the pods.
    await api.patch_site("ns", "web", {"spec": {"httpd": {"modules": None, "config": "ServerTokens Minimal\n"}}})
    await eventually(lambda: api.get("v1/configmaps", "ns", "web")["data"] == {
        "50-site.conf": "ServerTokens Minimal\n"})
    await eventually(lambda: checksum(api) not in (None, first))

    # No config at all: the ConfigMap, its volume and the checksum go.
    await api.patch_site("ns", "web", {"spec": {"httpd": None}})
    await eventually(lambda: api.get("v1/configmaps", "ns", "web") is None)
    await eventually(lambda: checksum(api) is None)
    assert all(v["name"] != "config" for v in template(api)["spec"]["volumes"])
    await eventually(lambda: ready(api))


async def test_ingress_gives_the_url_and_is_removed_with_its_field(api: Api, operator) -> None:
    await operator()
    await api.create_site(site("web", ingress={"host": "www.example.com", "tlsSecretName": "www-tls"}))
    ingress = await eventually(lambda: api.get("networking.k8s.io/v1/ingresses", "ns", "web"))
    assert ingress["spec"]["tls"] == [{"secretName": "www-tls", "hosts": ["www.example.com"]}]
    await eventually(lambda: api.site_status("ns", "web").get("url") == "https://www.example.com/")
    await api.patch_site("ns", "web", {"spec": {"ingress": {"path": "/docs", "tlsSecretName": None}}})
    await eventually(lambda: api.site_status("ns", "web").get("url") == "http://www.example.com/docs")
    await api.patch_site("ns", "web", {"spec": {"ingress": None}})
    await eventually(lambda: api.get("networking.k8s.io/v1/ingresses", "ns", "web") is None)
    await eventually(lambda: api.site_status("ns", "web").get("url") == "http://web.ns.svc")


async def test_autoscaler_scales_the_site_and_refusals_are_reported(api: Api, operator) -> None:
    await operator()
    await api.create_site(site("web", resources=CPU, autoscaling={"minReplicas": 2, "maxReplicas": 5}))
    hpa = await eventually(lambda: api.get("autoscaling/v2/horizontalpodautoscalers", "ns", "web"))
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "httpd.dev/v1alpha1", "kind": "HttpdSite", "name": "web"}
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 80
    # What the autoscaler does: write the site's scale subresource; the operator follows.
    await api.request("PATCH", "/apis/httpd.dev/v1alpha1/namespaces/ns/httpdsites/web/scale",
                      {"spec": {"replicas": 4}})
    await eventually(lambda: api.get("apps/v1/deployments", "ns", "web")["spec"]["replicas"] == 4)
    await eventually(lambda: api.site_status("ns", "web").get("ready") == "4/4")

    # Without a CPU request the target means nothing: refused, with the field, and nothing removed.
    await api.patch_site("ns", "web", {"spec": {"resources": {"requests": None, "limits": {"memory": "64Mi"}}}})
    await eventually(lambda: api.site_status("ns", "web").get("phase") == "Failed")
    ready_condition = next(c for c in api.site_status("ns", "web")["conditions"] if c["type"] == "Ready")
    assert "spec.resources.requests.cpu" in ready_condition["message"]
    events = await eventually(lambda: [e for e in api.server.list("v1/events", "ns")
                                       if e["type"] == "Warning" and "requests.cpu" in e["message"]])
    assert events[0]["involvedObject"]["name"] == "web"
    assert api.get("autoscaling/v2/horizontalpodautoscalers", "ns", "web") is not None

    await api.patch_site("ns", "web", {"spec": {"resources": CPU, "autoscaling": None}})
    await eventually(lambda: api.get("autoscaling/v2/horizontalpodautoscalers", "ns", "web") is None)
    await eventually(lambda: ready(api))


async def test_backup_cron_job_and_the_last_archive_in_status(api: Api, operator) -> None:
    await operator()
    await api.create_site(site("web", backup={"schedule": "0 3 * * *", "keep": 5,
                                              "target": {"claimName": "backups"}}))
    cron = await eventually(lambda: api.get("batch/v1/cronjobs", "ns", "web"))
    pod = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert cron["spec"]["schedule"] == "0 3 * * *" and cron["spec"]["concurrencyPolicy"] == "Forbid"
    assert pod["volumes"][1] == {"name": "backup-target", "persistentVolumeClaim": {"claimName": "backups"}}
    assert pod["containers"][0]["volumeMounts"][0]["readOnly"] is True
    await eventually(lambda: api.site_status("ns", "web").get("backup", {}).get("keep") == 5)

    # What the CronJob controller and the kubelet would do: a Job runs, its pod ends with the report.
    labels = {**backup_labels("web"), "job-name": "web-29400000"}
    await api.request("POST", "/apis/batch/v1/namespaces/ns/jobs", {
        "metadata": {"name": "web-29400000", "labels": backup_labels("web")}, "spec": {"template": {}}})
    await api.request("POST", "/api/v1/namespaces/ns/pods", {"metadata": {"name": "web-29400000-x", "labels": labels},
                                                             "spec": {"containers": []}})
    await api.server.put_status("v1/pods", "ns", "web-29400000-x", {"containerStatuses": [{
        "name": "backup",
        "state": {"terminated": {"exitCode": 0, "message": "web/web-20261128T030000Z.tar.gz 4096\n"}}}]})
    await api.server.put_status("batch/v1/jobs", "ns", "web-29400000", {
        "succeeded": 1, "completionTime": "2026-11-28T03:00:07Z",
        "conditions": [{"type": "Complete", "status": "True"}]})
    backup = await eventually(lambda: api.site_status("ns", "web").get("backup", {}).get("lastArchive") and
                              api.site_status("ns", "web")["backup"])
    assert backup == {"schedule": "0 3 * * *", "claimName": "backups", "keep": 5, "suspended": False,
                      "lastSuccessfulTime": "2026-11-28T03:00:07Z", "lastJob": "web-29400000",
                      "lastArchive": "web/web-20261128T030000Z.tar.gz", "lastArchiveSize": 4096}
    condition = next(c for c in api.site_status("ns", "web")["conditions"] if c["type"] == "LastBackupSucceeded")
    assert condition["status"] == "True" and "web-20261128T030000Z.tar.gz" in condition["message"]

    # A failed run: a Warning event, and the last good archive is still reported.
    await api.request("POST", "/apis/batch/v1/namespaces/ns/jobs", {
        "metadata": {"name": "web-29401440", "labels": backup_labels("web")}, "spec": {"template": {}}})
    await api.server.put_status("batch/v1/jobs", "ns", "web-29401440", {
        "failed": 3, "startTime": "2026-11-29T03:00:00Z", "conditions": [{"type": "Failed", "status": "True"}]})
    await eventually(lambda: [e for e in api.server.list("v1/events", "ns")
                              if e["reason"] == "BackupFailed" and "web-29401440" in e["message"]])
    assert api.site_status("ns", "web")["backup"]["lastArchive"] == "web/web-20261128T030000Z.tar.gz"

    await api.patch_site("ns", "web", {"spec": {"backup": None}})
    await eventually(lambda: api.get("batch/v1/cronjobs", "ns", "web") is None)
    await eventually(lambda: "backup" not in api.site_status("ns", "web"))


async def test_restore_and_exporter_render_into_the_running_deployment(api: Api, operator) -> None:
    await operator()
    await api.create_site(site("web", volume={"restoreFrom": {"claimName": "backups",
                                                              "archive": "web/web-20261128T030000Z.tar.gz"}},
                               metrics={"enabled": True}))
    spec = await eventually(lambda: template(api).get("spec"))
    assert [c["name"] for c in spec["initContainers"]] == ["restore", "seed"]
    assert spec["initContainers"][0]["command"][-2:] == ["/restore-source/web/web-20261128T030000Z.tar.gz",
                                                         "/restore-target"]
    assert [c["name"] for c in spec["containers"]] == ["httpd", "exporter"]
    service = await eventually(lambda: api.get("v1/services", "ns", "web"))
    assert [p["name"] for p in service["spec"]["ports"]] == ["http", "metrics"]
    await eventually(lambda: ready(api))


async def test_backup_now_creates_a_job_from_the_cron_job(api: Api, operator) -> None:
    await operator()
    cli = [sys.executable, "-m", "httpd_operator", "backup", "now", "--kubeconfig", str(api.kubeconfig), "-n", "ns"]
    await api.create_site(site("plain"))
    refused = await asyncio.to_thread(subprocess.run, [*cli, "plain"], capture_output=True, text=True)
    assert refused.returncode == 1 and "spec.backup" in refused.stderr

    await api.create_site(site("web", backup={"target": {"claimName": "backups"}}))
    cron = await eventually(lambda: api.get("batch/v1/cronjobs", "ns", "web"))
    done = await asyncio.to_thread(subprocess.run, [*cli, "web"], capture_output=True, text=True, check=True)
    name = done.stdout.split()[0].removeprefix("job.batch/")
    job = api.get("batch/v1/jobs", "ns", name)
    assert name.startswith("web-manual-") and job["metadata"]["labels"] == backup_labels("web")
    assert job["spec"] == cron["spec"]["jobTemplate"]["spec"]
    assert job["metadata"]["ownerReferences"][0]["uid"] == cron["metadata"]["uid"]
    # The operator follows it like a scheduled run.
    await api.server.put_status("batch/v1/jobs", "ns", name, {
        "succeeded": 1, "completionTime": "2026-11-28T12:00:00Z",
        "conditions": [{"type": "Complete", "status": "True"}]})
    await eventually(lambda: api.site_status("ns", "web").get("backup", {}).get("lastJob") == name)


async def test_service_monitor_only_where_the_cluster_has_the_crd(api: Api, operator) -> None:
    first = await operator()
    await api.create_site(site("web", metrics={"enabled": True}))
    await eventually(lambda: ready(api))
    assert first.engine.settings.serves("ServiceMonitor") is False
    await operator.stop(first)

    api.server.register_crd(SERVICE_MONITOR_CRD)  # the Prometheus operator gets installed
    await operator()
    monitor = await eventually(lambda: api.get("monitoring.coreos.com/v1/servicemonitors", "ns", "web"))
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "interval": "30s"}]
    assert monitor["spec"]["selector"]["matchLabels"] == api.get("v1/services", "ns", "web")["spec"]["selector"]
    await api.patch_site("ns", "web", {"spec": {"metrics": {"enabled": False}}})
    await eventually(lambda: api.get("monitoring.coreos.com/v1/servicemonitors", "ns", "web") is None)
    await eventually(lambda: [p["name"] for p in api.get("v1/services", "ns", "web")["spec"]["ports"]] == ["http"])
