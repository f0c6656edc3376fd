"""The real kopf operator against the emulated API server, over HTTP."""

from __future__ import annotations

from conftest import SITES, Api, eventually, site

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
