"""Least privilege: the ClusterRole grants exactly the verbs and resources the operator uses."""

from __future__ import annotations

import asyncio
from typing import Any

import kmock
import yaml
from support import ROOT, SERVICE_MONITOR_CRD, Api, eventually, site

from httpd_operator.kinds import KINDS
from httpd_operator.render.backup import backup_labels
from httpd_operator.render.content import writer_labels
from httpd_operator.runner import OperatorThread
from httpd_operator.settings import Settings

# Granted but never seen as a request: the API server checks it when the operator sets
# blockOwnerDeletion on a child (OwnerReferencesPermissionEnforcement admission).
ADMISSION_ONLY = {("httpd.dev", "httpdsites/finalizers", "update")}


def granted() -> set[tuple[str, str, str]]:
    docs = yaml.safe_load_all((ROOT / "manifests" / "base" / "rbac.yaml").read_text())
    role = next(d for d in docs if d["kind"] == "ClusterRole")
    return {(group, resource, verb) for rule in role["rules"] for group in rule["apiGroups"]
            for resource in rule["resources"] for verb in rule["verbs"]}


def used(requests: list[Any]) -> set[tuple[str, str, str]]:
    out = set()
    for r in requests:
        agent = r.headers.get("User-Agent", "")
        if not ("kopf" in agent or agent.startswith("httpd-operator/")) or r.resource is None or not r.resource.plural:
            continue  # the test's own requests, and discovery
        method = r.method.value
        if method == "GET":
            verb = "watch" if r.params.get("watch") in ("true", "1") else ("get" if r.name else "list")
        else:
            verb = {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete"}[method]
        resource = r.resource.plural + (f"/{r.subresource}" if r.subresource else "")
        out.add((r.resource.group, resource, verb))
    return out


async def day_two(api: Api) -> None:
    """Each optional child created, changed and removed; a finished backup Job read back."""
    def child(resource: str) -> Any:
        return api.get(resource, "ns", "web")

    steps = [
        ("v1/configmaps", {"httpd": {"config": "ServerTokens Prod\n"}}, {"httpd": {"modules": ["expires"]}},
         {"httpd": None}),
        ("networking.k8s.io/v1/ingresses", {"ingress": {"host": "a.example.com"}}, {"ingress": {"path": "/x"}},
         {"ingress": None}),
        ("autoscaling/v2/horizontalpodautoscalers",
         {"resources": {"requests": {"cpu": "100m"}}, "autoscaling": {"maxReplicas": 3}},
         {"autoscaling": {"maxReplicas": 4}}, {"autoscaling": None}),
        # Nothing of a site changes its ServiceMonitor: drift (an edit by hand) makes the patch.
        ("monitoring.coreos.com/v1/servicemonitors", {"metrics": {"enabled": True}}, None, {"metrics": None}),
        ("batch/v1/cronjobs", {"backup": {"target": {"claimName": "backups"}}}, {"backup": {"keep": 3}}, None),
        # On by default: changed, then switched off by the site.
        ("networking.k8s.io/v1/networkpolicies", {"networkPolicy": {"enabled": True}},
         {"networkPolicy": {"egress": "DNSOnly"}}, {"networkPolicy": {"enabled": False}}),
    ]
    for resource, create, change, remove in steps:
        await api.patch_site("ns", "web", {"spec": create})
        first = await eventually(lambda r=resource: child(r))
        if change:
            await api.patch_site("ns", "web", {"spec": change})
            await eventually(lambda r=resource, v=first["metadata"]["resourceVersion"]:
                             (child(r) or {}).get("metadata", {}).get("resourceVersion") != v)
        else:
            group_version, plural = resource.rsplit("/", 1)
            await api.request("PATCH", f"/apis/{group_version}/namespaces/ns/{plural}/web",
                              {"spec": {"endpoints": [{"port": "other"}]}})
            await eventually(lambda r=resource, want=first["spec"]: child(r)["spec"] == want)
        if remove:
            await api.patch_site("ns", "web", {"spec": remove})
            await eventually(lambda r=resource: child(r) is None)
    job = {"metadata": {"name": "web-1", "labels": backup_labels("web")}, "spec": {"template": {}}}
    await api.request("POST", "/apis/batch/v1/namespaces/ns/jobs", job)
    await api.server.put_status("batch/v1/jobs", "ns", "web-1", {
        "succeeded": 1, "completionTime": "2026-11-28T03:00:07Z",
        "conditions": [{"type": "Complete", "status": "True"}]})
    await eventually(lambda: api.site_status("ns", "web").get("backup", {}).get("lastJob") == "web-1")
    await api.patch_site("ns", "web", {"spec": {"backup": None}})
    await eventually(lambda: child("batch/v1/cronjobs") is None)
    # Content from git: the writer made, its pod's log read into status, the writer removed.
    await api.patch_site("ns", "web", {"spec": {"content": {"git": {"repository": "https://example.com/a.git"}}}})
    await eventually(lambda: api.get("apps/v1/deployments", "ns", "web-content"))
    await api.request("POST", "/api/v1/namespaces/ns/pods", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-content-1", "labels": writer_labels("web")},
        "spec": {"containers": [{"name": "git-sync", "image": "x"}]}})
    api.server.set_log("ns", "web-content-1", '{"revision": "abc1234", "changed": true}\n')
    await eventually(lambda: api.site_status("ns", "web").get("content", {}).get("revision") == "abc1234")
    await api.patch_site("ns", "web", {"spec": {"content": None}})
    await eventually(lambda: api.get("apps/v1/deployments", "ns", "web-content") is None)


async def test_cluster_role_grants_exactly_what_the_operator_uses(api: Api) -> None:
    for crd in yaml.safe_load_all((ROOT / "crds" / "peering.yaml").read_text()):
        api.server.register_crd(crd)
    api.server.register_crd(SERVICE_MONITOR_CRD)
    # A create answered 409 AlreadyExists makes the operator read the object it collided with.
    for kind in (f"{k.api_version()}/{k.plural}" for k in KINDS.values() if k.child):
        api.server[f"create {kind}"][:1] << kmock.KubernetesError(status=409, reason="AlreadyExists")
    op = OperatorThread(Settings(content_poll=0.2), api.configuration(), peering="httpd-operator")
    await asyncio.to_thread(op.start)
    try:
        # A scenario that exercises every code path that talks to the API.
        await api.create_site(site("web"))
        await api.create_site(site("src", volume={"reclaimPolicy": "Delete", "accessModes": ["ReadWriteMany"]}))
        await api.create_site(site("share", volume={"type": "FromSite", "fromSite": "src"}))
        await api.create_site(site("bad", port=80))
        await api.create_site(site("docs", volume={"type": "NFS", "nfs": {"server": "nfs.local", "path": "/www"}}))
        await eventually(lambda: all(api.site_status("ns", n).get("phase") == "Ready"
                                     for n in ("web", "src", "share", "docs")))
        await api.patch_site("ns", "web", {"spec": {"replicas": 2, "volume": {"size": "2Gi"}}})
        await eventually(lambda: api.site_status("ns", "web").get("ready") == "2/2")
        await api.patch_site("ns", "web", {"spec": {"disruptionBudget": {"minAvailable": "50%"}}})
        await eventually(lambda: (api.get("policy/v1/poddisruptionbudgets", "ns", "web") or {}).get(
            "spec", {}).get("minAvailable") == "50%")
        await api.patch_site("ns", "web", {"spec": {"replicas": 1}})
        await eventually(lambda: api.get("policy/v1/poddisruptionbudgets", "ns", "web") is None)
        await api.request("PATCH", "/api/v1/namespaces/ns/services/web", {"spec": {"type": "NodePort"}})
        await eventually(lambda: api.get("v1/services", "ns", "web")["spec"]["type"] == "ClusterIP")
        await day_two(api)
        await eventually(lambda: op.engine.idle)
    finally:
        await asyncio.to_thread(op.stop)
    # A restarted operator did not create the claims: it reads their volumes before protecting them.
    op = OperatorThread(Settings(), api.configuration(), peering="httpd-operator")
    await asyncio.to_thread(op.start)
    try:
        await eventually(lambda: op.engine.reconciled >= 3 and op.engine.idle)
    finally:
        await asyncio.to_thread(op.stop)
    seen = used(api.server._requests)
    assert seen == granted() - ADMISSION_ONLY, (
        f"used but not granted: {sorted(seen - granted())}; granted but unused: {sorted(granted() - seen)}")
    # Deletes: optional children the spec no longer asks for, and the git writer's Deployment.
    # Never a claim, never user data.
    assert {(g, r) for g, r, verb in granted() if verb == "delete"} == \
        {(k.group, k.plural) for k in KINDS.values() if k.optional} | {("apps", "deployments")}


def test_every_kind_the_operator_watches_or_writes_is_granted() -> None:
    """From the table of kinds: a row added without its RBAC fails here, before any cluster."""
    grants = granted()
    for kind in KINDS.values():
        if kind.watch:
            assert {(kind.group, kind.plural, v) for v in ("list", "watch")} <= grants, kind.name
        if kind.child:
            assert {(kind.group, kind.plural, v) for v in ("get", "create", "patch")} <= grants, kind.name
