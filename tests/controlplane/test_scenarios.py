"""The foundation and volume scenarios, on both backends: the emulated API and the real one.

The real control plane runs no kubelet, so pods stay Pending and a site's phase stops at
Progressing there; everything else (claims Bound by the host-path provisioner, garbage
collection, schema validation and defaults, RBAC) is the real thing.
"""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import support
import yaml
from support import eventually

from httpd_operator.emulator import ApiServer
from httpd_operator.emulator import kubeconfig as emulated_kubeconfig
from httpd_operator.kube import Kube, load_configuration
from httpd_operator.settings import Settings

from .backends import Backend, EmulatedBackend, RealBackend, operator_identity, storage_class

ROOT = pathlib.Path(__file__).resolve().parents[2]
SETTLED_PHASE = {"emulator": "Ready", "real": "Progressing"}  # no pods run on the real one


async def poll(check: Any, timeout: float, what: str) -> Any:
    return await eventually(check, timeout, interval=0.1, what=what)


def site(name: str, **spec: Any) -> dict[str, Any]:
    return support.site(name, None, **spec)  # posted to the namespace's URL


@pytest.fixture(params=["emulator", "real"])
async def backend(request: pytest.FixtureRequest, tmp_path: pathlib.Path) -> AsyncIterator[Backend]:
    if request.param == "emulator":
        server = ApiServer(controllers=True)
        server.load_builtin()
        for path in sorted((ROOT / "crds").glob("*.yaml")):
            for doc in yaml.safe_load_all(path.read_text()):
                if doc.get("kind") == "CustomResourceDefinition":
                    server.register_crd(doc)
        async with server.running() as url:
            kubeconfig = tmp_path / "kubeconfig"
            kubeconfig.write_text(yaml.safe_dump(emulated_kubeconfig(url)))
            config = load_configuration(str(kubeconfig))
            admin = Kube(config)
            await admin.call("POST", "/apis/storage.k8s.io/v1/storageclasses", storage_class())
            backend: Backend = EmulatedBackend(server, "scenario", admin, config)
            try:
                yield backend
            finally:
                await backend.stop_operator()
                await admin.aclose()
    else:
        control_plane = request.getfixturevalue("control_plane")
        api_client = request.getfixturevalue("api_client")
        namespace = request.getfixturevalue("namespace")
        operator_config = await asyncio.to_thread(operator_identity, control_plane, api_client, tmp_path)
        admin = Kube(load_configuration(str(control_plane.kubeconfig)))
        backend = RealBackend(control_plane, namespace, admin, operator_config)
        try:
            yield backend
        finally:
            await backend.stop_operator()
            await admin.aclose()


async def settled(b: Backend, name: str, replicas: int | None = None) -> dict[str, Any] | None:
    """The site's status once it describes the current generation and its volume is Bound."""
    body = await b.get("HttpdSite", name)
    status = (body or {}).get("status") or {}
    if not body or status.get("observedGeneration") != body["metadata"]["generation"]:
        return None
    volume_phase = (status.get("volume") or {}).get("phase")
    if status.get("phase") != SETTLED_PHASE[b.name] or volume_phase not in ("Bound", "Ready"):
        return None
    deployment = await b.get("Deployment", name)
    if replicas is not None and (deployment or {}).get("spec", {}).get("replicas") != replicas:
        return None
    return status


async def test_create_reports_bound_claim_and_children(backend: Backend) -> None:
    await backend.start_operator()
    await backend.create(site("web", replicas=2))
    status = await poll(lambda: settled(backend, "web", replicas=2), backend.timeout, "web settled")
    assert status["volume"]["capacity"] == "1Gi" and status["volume"]["claimName"] == "web-htdocs"
    assert status["ready"] == "0/2" if backend.name == "real" else "2/2"
    claim = await backend.get("PersistentVolumeClaim", "web-htdocs")
    assert claim["status"]["phase"] == "Bound"
    assert "ownerReferences" not in claim["metadata"]
    volume = await backend.get_volume(claim["spec"]["volumeName"])
    await poll(lambda: _retained(backend, claim["spec"]["volumeName"]), backend.timeout, "volume protected")
    assert volume["spec"]["claimRef"]["name"] == "web-htdocs"
    service = await backend.get("Service", "web")
    assert service["spec"]["ports"][0]["port"] == 80


async def _retained(b: Backend, volume: str) -> bool:
    return (await b.get_volume(volume))["spec"]["persistentVolumeReclaimPolicy"] == "Retain"


async def test_update_patches_deployment_and_reports_a_refused_resize(backend: Backend) -> None:
    await backend.start_operator()
    await backend.create(site("web"))
    await poll(lambda: settled(backend, "web"), backend.timeout, "web settled")
    await backend.patch("HttpdSite", "web",
                        {"spec": {"replicas": 3, "image": "example/httpd:2", "volume": {"size": "2Gi"}}})
    await poll(lambda: settled(backend, "web", replicas=3), backend.timeout, "web updated")
    deployment = await backend.get("Deployment", "web")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "example/httpd:2"
    # The host-path class cannot expand claims: the server refuses, the site says so, the data stays.
    synced = await poll(lambda: _condition(backend, "web", "VolumeSynced", "False"), backend.timeout, "resize refused")
    assert synced["reason"] == "ResizeRefused" and "resize" in synced["message"]
    claim = await backend.get("PersistentVolumeClaim", "web-htdocs")
    assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"


async def _condition(b: Backend, name: str, type_: str, status: str) -> dict[str, Any] | None:
    for cond in (await b.status(name)).get("conditions", []):
        if cond["type"] == type_ and cond["status"] == status:
            return cond
    return None


async def test_drift_is_repaired(backend: Backend) -> None:
    await backend.start_operator()
    await backend.create(site("web"))
    await poll(lambda: settled(backend, "web"), backend.timeout, "web settled")
    await backend.patch("Deployment", "web", {"metadata": {"annotations": {"other-tool/note": "kept"}},
                                              "spec": {"replicas": 4}})
    old = (await backend.get("Service", "web"))["metadata"]["uid"]
    await backend.delete("Service", "web")

    async def repaired() -> bool:
        deployment, service = await backend.get("Deployment", "web"), await backend.get("Service", "web")
        return deployment["spec"]["replicas"] == 1 and service is not None and service["metadata"]["uid"] != old

    await poll(repaired, backend.timeout, "drift repaired")
    assert (await backend.get("Deployment", "web"))["metadata"]["annotations"]["other-tool/note"] == "kept"


async def test_retain_keeps_the_claim_and_a_new_site_reattaches_it(backend: Backend) -> None:
    await backend.start_operator()
    await backend.create(site("web"))
    await poll(lambda: settled(backend, "web"), backend.timeout, "web settled")
    claim_uid = (await backend.get("PersistentVolumeClaim", "web-htdocs"))["metadata"]["uid"]
    await backend.delete("HttpdSite", "web")

    async def collected() -> bool:  # garbage collection takes the owned children
        return await backend.get("Deployment", "web") is None and await backend.get("Service", "web") is None

    await poll(collected, backend.timeout, "owned children collected")
    assert (await backend.get("PersistentVolumeClaim", "web-htdocs"))["metadata"]["uid"] == claim_uid
    await backend.create(site("web"))
    await poll(lambda: settled(backend, "web"), backend.timeout, "web settled again")
    assert (await backend.get("PersistentVolumeClaim", "web-htdocs"))["metadata"]["uid"] == claim_uid


async def test_delete_policy_takes_the_claim_with_the_site(backend: Backend) -> None:
    await backend.start_operator()
    await backend.create(site("web", volume={"reclaimPolicy": "Delete"}))
    await poll(lambda: settled(backend, "web"), backend.timeout, "web settled")
    await backend.delete("HttpdSite", "web")

    async def gone() -> bool:
        claim = await backend.get("PersistentVolumeClaim", "web-htdocs")
        return claim is None or bool(claim["metadata"].get("deletionTimestamp"))

    await poll(gone, backend.timeout, "claim collected")


async def test_restart_on_a_converged_namespace_writes_nothing(backend: Backend) -> None:
    operator = await backend.start_operator()
    for name in ("a", "b"):
        await backend.create(site(name, replicas=2))
    for name in ("a", "b"):
        await poll(lambda name=name: settled(backend, name, replicas=2), backend.timeout, f"{name} settled")
    await restart_writes_nothing(backend, operator, sites=2)


async def restart_writes_nothing(backend: Backend, operator: Any, sites: int) -> None:
    """Once idle, a restarted operator's first pass over converged sites writes nothing."""
    await poll(_async(lambda: operator.engine.idle), backend.timeout, "idle")
    await backend.stop_operator()
    mark = backend.mark()
    operator = await backend.start_operator()
    await poll(_async(lambda: operator.engine.reconciled >= sites and operator.engine.idle), backend.timeout,
               "the restarted operator's first pass")
    assert backend.operator_writes(mark) == []


def _async(fn: Any) -> Any:
    async def check() -> Any:
        return fn()
    return check


async def test_invalid_spec_gives_condition_and_event_and_no_children(backend: Backend) -> None:
    await backend.start_operator(Settings())
    await backend.create(site("local", volume={"type": "HostPath", "hostPath": {"path": "/srv/www"}}))
    await backend.create(site("good"))
    ready = await poll(lambda: _condition(backend, "local", "Ready", "False"), backend.timeout, "refusal")
    assert ready["reason"] == "HostPathNotAllowed" and "spec.volume.hostPath.path" in ready["message"]
    events = await poll(lambda: _warnings(backend, "local"), backend.timeout, "a Warning event")
    assert events[0]["reason"] == "HostPathNotAllowed"
    assert await backend.get("Deployment", "local") is None
    await poll(lambda: settled(backend, "good"), backend.timeout, "the valid site settles")


async def _warnings(b: Backend, name: str) -> list[dict[str, Any]]:
    return [e for e in await b.events(name) if e["type"] == "Warning"]


async def test_the_schema_rejects_what_it_can_on_the_real_server_only(backend: Backend) -> None:
    """The real API server validates against the CRD schema; the emulator does not (the operator
    refuses such sites itself, see tests/test_operator_emulated.py)."""
    error = await backend.try_create(site("neg", port=-1))
    if backend.name == "real":
        assert error is not None and error.status == 422 and "spec.port" in error.message
        defaulted = await backend.create(site("defaults"))
        assert defaulted["spec"]["replicas"] == 1 and defaulted["spec"]["volume"]["reclaimPolicy"] == "Retain"
    else:
        assert error is None


async def test_disruption_budget_in_the_version_the_server_serves(backend: Backend) -> None:
    await backend.start_operator()
    await backend.create(site("web", replicas=2))
    budget = await poll(lambda: backend.get("PodDisruptionBudget", "web"), backend.timeout, "a budget")
    assert budget["apiVersion"] == backend.policy and budget["spec"]["minAvailable"] == 1
    await backend.patch("HttpdSite", "web", {"spec": {"replicas": 1}})

    async def removed() -> bool:
        return await backend.get("PodDisruptionBudget", "web") is None

    await poll(removed, backend.timeout, "the budget removed at one replica")


DAY_TWO = {"resources": {"requests": {"cpu": "100m"}}, "httpd": {"config": "ServerTokens Prod\n"},
           "autoscaling": {"minReplicas": 1, "maxReplicas": 3}, "ingress": {"host": "www.example.com"},
           "backup": {"schedule": "0 3 * * *", "target": {"claimName": "backups"}}}
OPTIONAL = ("ConfigMap", "Ingress", "HorizontalPodAutoscaler", "CronJob")


async def test_day_two_children_in_served_versions_converge_and_go(backend: Backend) -> None:
    """HPA and CronJob in the versions the server serves (autoscaling/v2beta2 and batch/v1beta1 on
    1.20); the server's defaults on them never make the operator write again; each goes with its field."""
    operator = await backend.start_operator()
    await backend.create(site("web", **DAY_TWO))
    for kind in OPTIONAL:
        child = await poll(lambda kind=kind: backend.get(kind, "web"), backend.timeout, kind)
        assert child["metadata"]["ownerReferences"][0]["name"] == "web"
    assert (await backend.get("HorizontalPodAutoscaler", "web"))["apiVersion"] == backend.autoscaling
    assert (await backend.get("CronJob", "web"))["apiVersion"] == backend.batch
    status = await poll(lambda: settled(backend, "web"), backend.timeout, "web settled")
    assert status["url"] == "http://www.example.com/" and status["backup"]["schedule"] == "0 3 * * *"
    await restart_writes_nothing(backend, operator, sites=1)
    await backend.patch("HttpdSite", "web", {"spec": {key: None for key in ("httpd", "autoscaling", "ingress",
                                                                             "backup")}})

    async def removed() -> bool:
        return all([await backend.get(kind, "web") is None for kind in OPTIONAL])

    await poll(removed, backend.timeout, "the optional children removed")
