#!/usr/bin/env python3
"""The operator benchmark against a real API server (the local 1.20 control plane).

    hack/control-plane start
    python bench/real_bench.py --sites 100

Creates N sites in a fresh namespace with the admin kubeconfig, runs `httpd-operator run` as its
own process with the operator ServiceAccount's token (the shipped RBAC), and prints the seconds
until every site's status describes its generation with the claim Bound (no kubelet: pods stay
Pending, so "settled" means phase Progressing), the operator's requests per site by verb from the
apiserver's audit log, the writes in an idle period afterwards, and the operator's peak RSS/CPU.
"""

from __future__ import annotations

import argparse
import collections
import pathlib
import subprocess
import sys
import tempfile
import time
import uuid

from httpd_operator.kube import ApiError, call_once, load_configuration, path

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from operator_bench import proc_stats  # noqa: E402
from real_cluster import audit, install, mark, operator_kubeconfig  # noqa: E402


def settled(site: dict) -> bool:
    status = site.get("status") or {}
    return status.get("observedGeneration") == site["metadata"]["generation"] and \
        (status.get("volume") or {}).get("phase") == "Bound" and status.get("phase") == "Progressing"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sites", type=int, default=100)
    parser.add_argument("--idle", type=float, default=10.0)
    parser.add_argument("--scratch", default="/tmp/httpd-operator-cp")
    args = parser.parse_args()
    scratch = pathlib.Path(args.scratch)
    admin_config = scratch / "kubeconfig"
    admin = load_configuration(str(admin_config))
    install(admin_config)
    folder = pathlib.Path(tempfile.mkdtemp())
    kubeconfig = operator_kubeconfig(admin, admin_config, folder)
    namespace = f"bench-{uuid.uuid4().hex[:6]}"
    call_once(admin, "POST", "/api/v1/namespaces", {"metadata": {"name": namespace}})
    log = scratch / "audit.log"
    since = mark(log)
    operator = subprocess.Popen([sys.executable, "-m", "httpd_operator", "run", "--all-namespaces", "--kubeconfig",
                                 str(kubeconfig)], stdout=subprocess.DEVNULL,
                                stderr=open(folder / "operator.log", "w"))  # noqa: SIM115
    try:
        time.sleep(2)  # let the operator list and watch before the clock starts (not a synchronisation)
        started = time.monotonic()
        for i in range(args.sites):
            call_once(admin, "POST", path("HttpdSite", namespace),
                      {"apiVersion": "httpd.dev/v1alpha1", "kind": "HttpdSite",
                       "metadata": {"name": f"site-{i:04d}"}, "spec": {"replicas": 1 + i % 3}})
        while True:
            items = call_once(admin, "GET", path("HttpdSite", namespace))["items"]
            done = sum(1 for s in items if settled(s))
            if done == args.sites:
                break
            if time.monotonic() - started > 600:
                raise SystemExit(f"only {done}/{args.sites} settled; see {folder}/operator.log")
            time.sleep(0.5)
        converged = time.monotonic() - started
        entries = audit(log, since)
        by_verb = collections.Counter(f"{e['verb']} {(e.get('objectRef') or {}).get('resource')}" for e in entries)
        writes_mark = mark(log)
        time.sleep(args.idle)  # the idle period being measured
        idle = [e for e in audit(log, writes_mark) if e["verb"] in ("create", "update", "patch", "delete")]
        rss, cpu = proc_stats(operator.pid)
    finally:
        operator.terminate()
        operator.wait(30)
        call_once(admin, "DELETE", f"/api/v1/namespaces/{namespace}")
        # Gone before the next run starts: an operator would otherwise meet this one's teardown.
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                call_once(admin, "GET", f"/api/v1/namespaces/{namespace}")
            except ApiError as exc:
                if exc.status == 404:
                    break
                raise
            time.sleep(1)  # polling the namespace's deletion, not a synchronisation
    n = args.sites
    total = sum(v for k, v in by_verb.items() if not k.startswith(("watch", "list")))
    print(f"== {n} sites against the real kube-apiserver 1.20.2 (audit log)")
    print(f"settled in {converged:.1f} s ({n / converged:.1f} sites/s)")
    print(f"operator requests (not counting list/watch): {total} ({total / n:.2f} per site)")
    for key, count in by_verb.most_common():
        print(f"  {key:<40} {count:>6}  {count / n:6.2f}/site")
    print(f"writes during {args.idle:.0f} s idle afterwards: {len(idle)}")
    print(f"operator peak RSS {rss:.0f} MiB, CPU {cpu:.1f} s")


if __name__ == "__main__":
    main()
