"""`httpd-operator demo`: the real operator against an in-process emulated API server.

For a newcomer with no cluster: the CRD and examples/ are loaded into kmock's emulator (with our
Kubernetes layer and stand-ins for the claim binder and the Deployment controller), the operator
runs exactly as it would against a cluster, over HTTP, and the objects and statuses it reached are
printed. No pods run: the API is emulated.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pathlib
import shutil
import sys
import tempfile
from typing import Any

import yaml

from httpd_operator import KIND, PLURAL, VERSION
from httpd_operator.kube import path
from httpd_operator.render.meta import LABEL_MANAGED_BY, MANAGED_BY
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

    docs = [{**d, "_file": f} for f in sorted(examples.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text())
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
                    body = {k: v for k, v in doc.items() if k != "_file"}
                    async with client.post(_collection(doc), json=body) as response:
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
    _report(server, sites, docs)
    return 0


def _report(server: Any, sites: list[str], docs: list[dict[str, Any]]) -> None:
    print(f"{'SITE':<14} {'PHASE':<12} {'READY':<6} {'VOLUME':<40} URL")
    for name in sites:
        status = (server.get(f"httpd.dev/{VERSION}/{PLURAL}", "default", name) or {}).get("status", {})
        print(f"{name:<14} {status.get('phase', '-'):<12} {status.get('ready', '-'):<6} "
              f"{status.get('volume', {}).get('summary', '-'):<40} {status.get('url', '-')}")
        for cond in status.get("conditions", []):
            if cond["status"] != "True":
                print(f"    {cond['type']}={cond['status']} {cond['reason']}: {cond['message']}")
                if cond["reason"] == "HostPathNotAllowed":
                    print(f"    Expected: {_example_of(docs, name)} shows this refusal (host paths only under "
                          "the operator's --allow-host-path prefixes).")
                    print(f"    To allow it: {_cli()} demo --allow-host-path {_host_dir(docs, name)}")
    made = [o for o in server.objects() if (o["metadata"].get("labels") or {}).get(LABEL_MANAGED_BY) == MANAGED_BY]
    print(f"\nObjects the operator made ({len(made)}; kind namespace/name):")
    for obj in sorted(made, key=lambda o: (ORDER.get(o["kind"], len(ORDER)), o["kind"], o["metadata"]["name"])):
        meta = obj["metadata"]
        owner = "owned by the site" if meta.get("ownerReferences") else "no owner (outlives the site)"
        where = f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]  # or cluster-scoped
        print(f"  {obj['kind']:<24} {where:<32} {owner}")
    print("\nNext, in this folder (no cluster needed):")
    print(f"  {_cli()} render -f {_relative(ROOT / 'examples' / 'site.yaml')}   # every object a site gets, as YAML")
    print(f"  {_cli()} --help")


ORDER = {k: i for i, k in enumerate(("PersistentVolumeClaim", "Deployment", "Service", "PodDisruptionBudget",
                                     "ConfigMap", "HorizontalPodAutoscaler", "Ingress", "CronJob"))}


def _example_of(docs: list[dict[str, Any]], name: str) -> str:
    return next((_relative(d["_file"]) for d in docs if d["metadata"].get("name") == name), "its example")


def _host_dir(docs: list[dict[str, Any]], name: str) -> str:
    doc = next((d for d in docs if d["kind"] == KIND and d["metadata"].get("name") == name), {})
    path = str((((doc.get("spec") or {}).get("volume") or {}).get("hostPath") or {}).get("path") or "/srv/www/x")
    return os.path.dirname(path.rstrip("/")) or "/"


def _relative(path: pathlib.Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


def _cli() -> str:
    """How to call this CLI from a fresh shell: its name if on PATH, else its path (.venv/bin/...)."""
    beside = pathlib.Path(sys.executable).parent / "httpd-operator"
    on_path = shutil.which("httpd-operator")
    if on_path and pathlib.Path(on_path).resolve() == beside.resolve():
        return "httpd-operator"
    return _relative(beside) if beside.exists() else f"{_relative(pathlib.Path(sys.executable))} -m httpd_operator"


def demo(examples: str | None, settings: Settings, timeout: float = 30.0) -> int:
    folder = pathlib.Path(examples) if examples else ROOT / "examples"
    if not folder.is_dir():
        print(f"no examples folder at {folder}", file=sys.stderr)
        return 2
    # The table says what the operator did; its log lines (a refusal, kopf's note that signals
    # are not its own in a thread) would say it twice.
    for name in ("kopf", "httpd_operator"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return asyncio.run(_run(folder, settings, timeout))
