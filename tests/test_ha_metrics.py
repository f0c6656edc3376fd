"""Several operator replicas with one active (kopf peering), and the operator's metrics."""

from __future__ import annotations

import asyncio
import socket
import urllib.request

import yaml
from support import ROOT, Api, eventually, site

from httpd_operator.runner import OperatorThread
from httpd_operator.settings import Settings


def phase(api: Api, name: str) -> str | None:
    return api.site_status("ns", name).get("phase")


async def test_two_replicas_one_acts_and_the_other_takes_over(api: Api) -> None:
    for crd in yaml.safe_load_all((ROOT / "crds" / "peering.yaml").read_text()):
        api.server.register_crd(crd)
    # No peering object beforehand: the operator makes it (an apply of the manifests cannot).
    high = OperatorThread(Settings(), api.configuration(), peering="httpd-operator", priority=200)
    low = OperatorThread(Settings(), api.configuration(), peering="httpd-operator", priority=100)
    await asyncio.to_thread(high.start)
    # The active replica has announced itself in the peering object before the second one starts.
    await eventually(lambda: any(p.get("priority") == 200 for p in (api.get(
        "kopf.dev/v1/clusterkopfpeerings", None, "httpd-operator").get("status") or {}).values()))
    await asyncio.to_thread(low.start)
    try:
        await api.create_site(site("first"))
        await eventually(lambda: phase(api, "first") == "Ready")
        await eventually(lambda: high.engine.idle)
        assert high.engine.reconciled > 0
        assert low.engine.reconciled == 0  # paused while a higher-priority peer is alive
        await asyncio.to_thread(high.stop)
        await api.create_site(site("second"))
        await eventually(lambda: phase(api, "second") == "Ready", timeout=60)
        assert low.engine.reconciled > 0
    finally:
        for op in (high, low):
            if not op.stop_flag.is_set():
                await asyncio.to_thread(op.stop)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
            if line and not line.startswith("#")}


async def test_metrics_endpoint_counts_reconciles_phases_and_api_errors(api: Api, operator) -> None:
    import kmock
    op = await operator()
    port = free_port()
    server = op.metrics.serve(port, addr="127.0.0.1")
    try:
        before = await asyncio.to_thread(scrape, port)
        assert before['httpd_operator_sites{phase="Ready"}'] == 0
        api.server["post v1/persistentvolumeclaims"][:1] << kmock.KubernetesError(status=503, reason="Unavailable")
        await api.create_site(site("web"))
        await api.create_site(site("bad", port=80))
        await eventually(lambda: phase(api, "web") == "Ready" and phase(api, "bad") == "Failed")
        await eventually(lambda: op.engine.idle)
        after = await asyncio.to_thread(scrape, port)
        assert after['httpd_operator_sites{phase="Ready"}'] == 1
        assert after['httpd_operator_sites{phase="Failed"}'] == 1
        assert after['httpd_operator_reconciles_total{result="changed"}'] >= 2
        assert after['httpd_operator_api_errors_total{status="503"}'] == 1
        assert after["httpd_operator_reconcile_duration_seconds_count"] >= 3
    finally:
        server.shutdown()
        server.server_close()
