"""`httpd-operator demo`: the real operator against an in-process emulated API server.

For a newcomer with no cluster: the CRD and examples/ are loaded into kmock's emulator (with our
Kubernetes layer and stand-ins for the claim binder and the Deployment controller), the operator
runs exactly as it would against a cluster, over HTTP, and the objects and statuses it reached are
printed. No pods run: the API is emulated.
"""

from __future__ import annotations

import asyncio
import pathlib
import sys
import tempfile
from typing import Any

import yaml

from httpd_operator import KIND, PLURAL, VERSION
from httpd_operator.kube import path
from httpd_operator.settings import Settings

ROOT = pathlib.Path(__file__).resolve().parents[2]
SETTLED = {"Ready", "Failed"}


def _kubeconfig(url: str, folder: str) -> str:
    from httpd_operator.emulator import kubeconfig

    path = pathlib.Path(folder) / "kubeconfig"
    path.write_text(yaml.safe_dump(kubeconfig(url)))
    return str(path)


def _collection(doc: dict[str, Any]) -> str:
    return path(doc["kind"], doc["metadata"].get("namespace", "default"), api_version=doc["apiVersion"])


def _settled(status: dict[str, Any]) -> bool:
    phase = status.get("phase")
    if phase in SETTLED:
        return True
    ready = next((c for c in status.get("conditions", []) if c["type"] == "Ready"), {})
    return phase == "Pending" and ready.get("reason", "").startswith("SourceSite")


async def _run(examples: pathlib.Path, settings: Settings, timeout: float) -> int:
    from httpd_operator.emulator import ApiServer
    from httpd_operator.kube import load_configuration
    from httpd_operator.runner import OperatorThread

    docs = [d for f in sorted(examples.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text())
            if isinstance(d, dict)]
    server = ApiServer(controllers=True)
    server.load_builtin()
    server.register_crd(yaml.safe_load((ROOT / "crds" / "httpdsites.yaml").read_text()))
    print("httpd-operator demo: the Kubernetes API here is EMULATED (kmock + httpd_operator.emulator),")
    print("in this process; no cluster, no pods, no httpd runs. Claims are bound and Deployments")
    print("report ready by stand-ins for the real controllers.\n")
    async with server.running() as url, asyncio.timeout(timeout + 30):
        with tempfile.TemporaryDirectory() as folder:
            operator = OperatorThread(settings, load_configuration(_kubeconfig(url, folder)))
            await asyncio.to_thread(operator.start)
            try:
                client = server.servers[0].client
                for doc in docs:
                    doc.setdefault("metadata", {}).setdefault("namespace", "default")
                    async with client.post(_collection(doc), json=doc) as response:
                        if response.status >= 300:
                            print(f"  ! {doc['kind']} {doc['metadata']['name']}: {await response.text()}")
                sites = [d["metadata"]["name"] for d in docs if d["kind"] == KIND]
                loop = asyncio.get_running_loop()
                deadline = loop.time() + timeout
                while loop.time() < deadline:
                    statuses = [(server.get(f"httpd.dev/{VERSION}/{PLURAL}", "default", n) or {}).get("status", {})
                                for n in sites]
                    if all(_settled(s) for s in statuses) and operator.engine.idle:
                        break
                    await asyncio.sleep(0.05)
            finally:
                await asyncio.to_thread(operator.stop)
    _report(server, sites)
    return 0


def _report(server: Any, sites: list[str]) -> None:
    print(f"{'SITE':<14} {'PHASE':<12} {'READY':<6} {'VOLUME':<40} URL")
    for name in sites:
        status = (server.get(f"httpd.dev/{VERSION}/{PLURAL}", "default", name) or {}).get("status", {})
        print(f"{name:<14} {status.get('phase', '-'):<12} {status.get('ready', '-'):<6} "
              f"{status.get('volume', {}).get('summary', '-'):<40} {status.get('url', '-')}")
        for cond in status.get("conditions", []):
            if cond["status"] != "True":
                print(f"    {cond['type']}={cond['status']} {cond['reason']}: {cond['message']}")
    print("\nObjects the operator made (kind namespace/name):")
    for resource in ("v1/persistentvolumeclaims", "apps/v1/deployments", "v1/services"):
        for obj in server.list(resource):
            meta = obj["metadata"]
            owner = "owned by the site" if meta.get("ownerReferences") else "no owner (outlives the site)"
            print(f"  {obj['kind']:<22} {meta['namespace']}/{meta['name']:<24} {owner}")
    print("\nPrint any site's objects offline with: httpd-operator render -f examples/site.yaml")


def demo(examples: str | None, settings: Settings, timeout: float = 30.0) -> int:
    folder = pathlib.Path(examples) if examples else ROOT / "examples"
    if not folder.is_dir():
        print(f"no examples folder at {folder}", file=sys.stderr)
        return 2
    return asyncio.run(_run(folder, settings, timeout))
