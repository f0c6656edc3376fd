"""The real kopf operator against the emulated API server, over HTTP."""

from __future__ import annotations

from support import SITES, Api, eventually, site

CLAIMS = "v1/persistentvolumeclaims"
DEPLOYMENTS = "apps/v1/deployments"
SERVICES = "v1/services"


def ready(api: Api, ns: str, name: str) -> bool:
    status = api.site_status(ns, name)
    return status.get("phase") == "Ready" and \
        status.get("observedGeneration") == api.get(SITES, ns, name)["metadata"]["generation"]


async def test_create_makes_claim_deployment_service_and_reports_ready(api: Api, operator) -> None:
    await operator()
    await api.create_site(site("web", replicas=2))
    await eventually(lambda: ready(api, "ns", "web"))
    claim = api.get(CLAIMS, "ns", "web-htdocs")
    deployment = api.get(DEPLOYMENTS, "ns", "web")
    service = api.get(SERVICES, "ns", "web")
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert "ownerReferences" not in claim["metadata"]  # Retain: the claim outlives the site
    assert deployment["spec"]["replicas"] == 2
    assert deployment["metadata"]["ownerReferences"][0]["kind"] == "HttpdSite"
    assert service["spec"]["ports"][0]["port"] == 80
    status = api.site_status("ns", "web")
    assert status["ready"] == "2/2"
    assert status["volume"]["phase"] == "Bound"
    assert status["volume"]["capacity"] == "1Gi"
    assert status["url"] == "http://web.ns.svc"
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["status"] == "True"
    assert conditions["VolumeReady"]["reason"] == "Bound"
    assert conditions["Available"]["status"] == "True"
    assert all(c["lastTransitionTime"] for c in status["conditions"])


async def test_update_patches_only_what_changed(api: Api, operator) -> None:
    await operator()
    await api.create_site(site("web"))
    await eventually(lambda: ready(api, "ns", "web"))
    before = len(api.writes())
    await api.patch_site("ns", "web", {"spec": {"replicas": 3, "image": "example/httpd:2",
                                                "volume": {"size": "2Gi"}}})
    await eventually(lambda: ready(api, "ns", "web") and api.site_status("ns", "web")["ready"] == "3/3")
    deployment = api.get(DEPLOYMENTS, "ns", "web")
    assert deployment["spec"]["replicas"] == 3
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "example/httpd:2"
    claim = api.get(CLAIMS, "ns", "web-htdocs")
    assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"
    await eventually(lambda: api.site_status("ns", "web")["volume"].get("capacity") == "2Gi")
    # The operator's writes after the edit: one patch per changed child, status, events; no creates,
    # no Service write (nothing about it changed), no delete.
    operator_writes = [w for w in api.writes()[before:] if "/httpdsites/web" not in w[1] or "/status" in w[1]]
    assert ("PATCH", "/apis/apps/v1/namespaces/ns/deployments/web") in operator_writes
    assert ("PATCH", "/api/v1/namespaces/ns/persistentvolumeclaims/web-htdocs") in operator_writes
    # The only new child: the disruption budget that 3 replicas now call for.
    created = [w for w in operator_writes if w[0] in ("POST", "DELETE") and "/events" not in w[1]]
    assert created == [("POST", "/apis/policy/v1/namespaces/ns/poddisruptionbudgets")]
    assert not [w for w in operator_writes if "/services/" in w[1]]


async def test_child_edited_or_deleted_by_hand_is_restored(api: Api, operator) -> None:
    await operator()
    await api.create_site(site("web"))
    await eventually(lambda: ready(api, "ns", "web"))
    await api.request("PATCH", "/apis/apps/v1/namespaces/ns/deployments/web",
                      {"metadata": {"annotations": {"other-tool/note": "kept"}}, "spec": {"replicas": 5}})
    await eventually(lambda: api.get(DEPLOYMENTS, "ns", "web")["spec"]["replicas"] == 1)
    assert api.get(DEPLOYMENTS, "ns", "web")["metadata"]["annotations"] == {"other-tool/note": "kept"}
    old_uid = api.get(SERVICES, "ns", "web")["metadata"]["uid"]
    await api.delete("/api/v1/namespaces/ns/services/web")
    await eventually(lambda: (api.get(SERVICES, "ns", "web") or {}).get("metadata", {}).get("uid")
                     not in (None, old_uid))


async def test_retain_keeps_claim_and_recreated_site_reattaches_it(api: Api, operator) -> None:
    await operator()
    await api.create_site(site("web"))
    await eventually(lambda: ready(api, "ns", "web"))
    claim_uid = api.get(CLAIMS, "ns", "web-htdocs")["metadata"]["uid"]
    await api.delete("/apis/httpd.dev/v1alpha1/namespaces/ns/httpdsites/web")
    await eventually(lambda: api.get(DEPLOYMENTS, "ns", "web") is None and api.get(SERVICES, "ns", "web") is None)
    assert api.get(CLAIMS, "ns", "web-htdocs")["metadata"]["uid"] == claim_uid
    # The bound volume is protected too: its reclaim policy was set to Retain.
    volume = api.get(CLAIMS, "ns", "web-htdocs")["spec"]["volumeName"]
    assert api.get("v1/persistentvolumes", None, volume)["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    await api.create_site(site("web"))
    await eventually(lambda: ready(api, "ns", "web"))
    assert api.get(CLAIMS, "ns", "web-htdocs")["metadata"]["uid"] == claim_uid
    assert [w for w in api.writes() if w[0] == "DELETE" and "persistentvolumeclaims" in w[1]] == []


async def test_delete_policy_removes_claim_with_site(api: Api, operator) -> None:
    await operator()
    await api.create_site(site("web", volume={"reclaimPolicy": "Delete"}))
    await eventually(lambda: ready(api, "ns", "web"))
    claim = api.get(CLAIMS, "ns", "web-htdocs")
    assert claim["metadata"]["ownerReferences"][0]["name"] == "web"
    await api.delete("/apis/httpd.dev/v1alpha1/namespaces/ns/httpdsites/web")
    await eventually(lambda: api.get(CLAIMS, "ns", "web-htdocs") is None)


async def test_restart_on_converged_cluster_writes_nothing(api: Api, operator) -> None:
    first = await operator()
    for name in ("a", "b", "c"):
        await api.create_site(site(name, replicas=2))
    for name in ("a", "b", "c"):
        await eventually(lambda name=name: ready(api, "ns", name))
    await operator.stop(first)
    before = api.server.resource_version
    writes = len(api.writes())
    second = await operator()
    await eventually(lambda: second.engine.reconciled >= 3 and second.engine.idle)
    assert api.writes()[writes:] == []
    assert api.server.resource_version == before


async def test_invalid_spec_gives_condition_and_event_and_spares_others(api: Api, operator) -> None:
    op = await operator()
    await api.create_site(site("bad", port=80))
    await api.create_site(site("good"))
    await eventually(lambda: api.site_status("ns", "bad").get("phase") == "Failed")
    await eventually(lambda: ready(api, "ns", "good"))
    ready_cond = api.site_status("ns", "bad")["conditions"][0]
    assert (ready_cond["type"], ready_cond["status"], ready_cond["reason"]) == ("Ready", "False", "InvalidSpec")
    assert "spec.port" in ready_cond["message"]
    events = await eventually(lambda: [e for e in api.server.list("v1/events", "ns")
                                       if e["involvedObject"]["name"] == "bad" and e["type"] == "Warning"])
    assert events[0]["reason"] == "InvalidSpec" and "spec.port" in events[0]["message"]
    assert api.get(DEPLOYMENTS, "ns", "bad") is None and api.get(CLAIMS, "ns", "bad-htdocs") is None
    # No retry storm: the refusal is written once; later events about the site write nothing.
    await eventually(lambda: op.engine.idle)
    writes, done = len(api.writes()), op.engine.reconciled
    await api.request("PATCH", "/apis/httpd.dev/v1alpha1/namespaces/ns/httpdsites/bad",
                      {"metadata": {"labels": {"touched": "yes"}}})
    await eventually(lambda: op.engine.reconciled > done and op.engine.idle)
    assert [w for w in api.writes()[writes:] if "/status" in w[1] or "/events" in w[1]] == []


async def test_disruption_budget_follows_the_replica_count(api: Api, operator) -> None:
    await operator()
    await api.create_site(site("web", replicas=3))
    budget = await eventually(lambda: api.get("policy/v1/poddisruptionbudgets", "ns", "web"))
    assert budget["spec"]["minAvailable"] == 1
    assert budget["metadata"]["ownerReferences"][0]["name"] == "web"
    await api.patch_site("ns", "web", {"spec": {"replicas": 1}})
    await eventually(lambda: api.get("policy/v1/poddisruptionbudgets", "ns", "web") is None)
    await eventually(lambda: ready(api, "ns", "web"))
    await api.patch_site("ns", "web", {"spec": {"replicas": 2}})
    await eventually(lambda: api.get("policy/v1/poddisruptionbudgets", "ns", "web"))
