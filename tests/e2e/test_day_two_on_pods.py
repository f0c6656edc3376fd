"""Day two on real pods: scaling and where replicas land, disruption budgets against the Eviction
API, an image upgrade and a graceful stop under traffic, backup and restore with the archive's
contents, modules and config in the running httpd. The operator runs from this process."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import threading
import time

import pytest

from e2e.cluster import (
    DOCROOT,
    IMAGE,
    KUBECONFIG,
    NODE_TMP,
    TIMEOUT,
    ServicePoller,
    claim,
    evict,
    forward,
    http,
    in_volume,
    kubectl,
    kubectl_json,
    sh,
    site,
    site_pods,
    site_status,
    wait,
    wait_ready,
)
from httpd_operator.kube import ApiError, Kube
from httpd_operator.runner import OperatorThread

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(4 * TIMEOUT)]
NEXT_IMAGE = os.environ.get("HTTPD_OPERATOR_E2E_IMAGE_NEXT", "")


def ready_pods(namespace: str, name: str = "web") -> list[dict]:
    return [p for p in site_pods(namespace, name)
            if p["status"].get("phase") == "Running"
            and all(c.get("ready") for c in p["status"].get("containerStatuses") or [{}])]


def local_node() -> None:
    if not NODE_TMP:
        pytest.skip("dials pod addresses directly (as kube-proxy would): needs this machine's own node")


def test_replicas_on_a_read_write_once_claim_all_run_on_the_claims_node(
        namespace: str, operator: OperatorThread) -> None:
    site(namespace, replicas=3)
    wait_ready(namespace)
    running = ready_pods(namespace)
    assert len(running) == 3
    assert len({p["spec"]["nodeName"] for p in running}) == 1
    affinity = running[0]["spec"]["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert affinity, "co-located by a required pod affinity"


def test_kubectl_scale_serves_from_n_pods(namespace: str, operator: OperatorThread) -> None:
    site(namespace)
    wait_ready(namespace)
    kubectl("-n", namespace, "scale", "hs/web", "--replicas=3")
    wait(lambda: len(ready_pods(namespace)) == 3 and site_status(namespace).get("readyReplicas") == 3, "3 pods")
    if NODE_TMP:  # each of them serves
        for pod in ready_pods(namespace):
            with socket.create_connection((pod["status"]["podIP"], 8080), timeout=5) as conn:
                conn.sendall(b"GET /index.html HTTP/1.0\r\n\r\n")
                assert conn.recv(12).startswith(b"HTTP/1.1 200")


def test_the_disruption_budget_refuses_an_eviction_that_would_break_it(
        namespace: str, operator: OperatorThread, cluster: Kube) -> None:
    site(namespace, replicas=2, disruptionBudget={"minAvailable": 1})
    wait_ready(namespace)
    wait(lambda: (kubectl_json("-n", namespace, "get", "pdb", "web").get("status") or {}).get(
        "disruptionsAllowed") == 1, "the budget allows one disruption")
    first, second = (p["metadata"]["name"] for p in ready_pods(namespace))


    evict(cluster, namespace, first)  # allowed: one of two may go
    with pytest.raises(ApiError) as refused:
        evict(cluster, namespace, second)  # the budget is spent until the replacement is ready
    assert refused.value.status == 429 and "disruption budget" in refused.value.message.lower()
    wait_ready(namespace)


def test_an_image_upgrade_under_traffic_fails_no_request(namespace: str, operator: OperatorThread) -> None:
    local_node()
    if not NEXT_IMAGE:
        pytest.skip("HTTPD_OPERATOR_E2E_IMAGE_NEXT names no second httpd image (make e2e-local sets it)")
    site(namespace, replicas=2)
    wait_ready(namespace)
    before = {p["metadata"]["uid"] for p in site_pods(namespace)}
    with ServicePoller(namespace) as poller:
        site(namespace, replicas=2, image=NEXT_IMAGE)
        wait(lambda: site_status(namespace).get("image") == NEXT_IMAGE and len(ready_pods(namespace)) == 2
             and not before & {p["metadata"]["uid"] for p in site_pods(namespace)}
             and site_status(namespace).get("updatedReplicas") == 2 and site_status(namespace).get("phase") == "Ready",
             "the new image rolled out")
    assert poller.ok > 20 and poller.failures == [], poller.failures[:5]
    assert {c["image"] for p in site_pods(namespace) for c in p["spec"]["containers"]} == {NEXT_IMAGE}


def test_a_slow_request_in_flight_completes_when_its_pod_is_deleted(namespace: str, operator: OperatorThread) -> None:
    local_node()
    site(namespace)
    wait_ready(namespace)
    size = 8 * 1024 * 1024
    sh(namespace, "deploy/web", f"head -c {size} /dev/urandom > {DOCROOT}/big.bin")
    digest = sh(namespace, "deploy/web", f"sha256sum {DOCROOT}/big.bin").stdout.split()[0]
    (pod,) = site_pods(namespace)
    received = hashlib.sha256()
    got = 0
    with socket.create_connection((pod["status"]["podIP"], 8080), timeout=30) as conn:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)  # the client, not the kernel, sets the pace
        conn.sendall(b"GET /big.bin HTTP/1.1\r\nHost: web\r\nConnection: close\r\n\r\n")
        head = b""
        while b"\r\n\r\n" not in head:
            head += conn.recv(1)
        assert head.startswith(b"HTTP/1.1 200"), head
        deleter = threading.Timer(1.0, lambda: kubectl("-n", namespace, "delete", "pod", pod["metadata"]["name"],
                                                       "--wait=false"))
        deleter.start()
        started = time.monotonic()
        while chunk := conn.recv(16384):  # about 1 MiB/s: 8 s, most of them after the delete
            received.update(chunk)
            got += len(chunk)
            time.sleep(0.015)  # pacing the reader (the throttled client), not a synchronisation
        deleter.join()
    assert got == size, f"{got} of {size} bytes after {time.monotonic() - started:.1f} s"
    assert received.hexdigest() == digest


def backup_now(namespace: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "httpd_operator", "backup", "now", "web", "-n", namespace,
                           "--kubeconfig", KUBECONFIG], capture_output=True, text=True, check=True, timeout=60)


def archives(namespace: str) -> list[str]:
    return in_volume(namespace, "backups", "ls /data/web 2>/dev/null || true").split()


def test_backup_now_writes_an_archive_of_the_files_and_prunes_to_keep_and_restore_serves_it(
        namespace: str, operator: OperatorThread) -> None:
    claim(namespace, "backups")
    site(namespace, backup={"schedule": "0 3 * * *", "keep": 1, "target": {"claimName": "backups"}})
    wait_ready(namespace)
    sh(namespace, "deploy/web", f"mkdir -p {DOCROOT}/docs && echo backed-up > {DOCROOT}/docs/a.txt")
    backup_now(namespace)
    first = wait(lambda: (b := site_status(namespace).get("backup") or {}).get("lastArchive") and b,
                 "status.backup names the archive")
    assert first["lastArchiveSize"] > 0
    listing = in_volume(namespace, "backups", f"tar tzf /data/{first['lastArchive']}").split()
    assert {"./docs/a.txt", "./index.html"} <= {f if f.startswith("./") else f"./{f}" for f in listing}, listing
    assert archives(namespace) == [first["lastArchive"].split("/")[-1]]

    backup_now(namespace)
    second = wait(lambda: (b := site_status(namespace).get("backup") or {}).get("lastArchive") != first[
        "lastArchive"] and b, "a second archive")
    wait(lambda: archives(namespace) == [second["lastArchive"].split("/")[-1]], "pruned to keep: 1")

    # Restore: a new site from that archive serves the backed-up files, once.
    site(namespace, "restored", volume={"restoreFrom": {"claimName": "backups", "archive": second["lastArchive"]}})
    wait_ready(namespace, "restored")
    with forward(namespace, "svc/restored", 80) as (port,):
        assert http(port, "/docs/a.txt")[:2] == (200, b"backed-up\n")
    sh(namespace, "deploy/restored", f"echo newer > {DOCROOT}/docs/a.txt")
    (old,) = [p["metadata"]["name"] for p in site_pods(namespace, "restored")]
    kubectl("-n", namespace, "delete", "pod", old, "--wait=false")
    wait(lambda: [p["metadata"]["name"] for p in ready_pods(namespace, "restored")] not in ([], [old]), "a new pod")
    with forward(namespace, "svc/restored", 80) as (port,):
        assert http(port, "/docs/a.txt")[:2] == (200, b"newer\n")  # not restored again over newer files


def test_a_module_from_the_spec_is_loaded_and_its_directive_takes_effect(
        namespace: str, operator: OperatorThread) -> None:
    site(namespace, httpd={"modules": ["expires"],
                           "config": 'ExpiresActive On\nExpiresDefault "access plus 1 hours"\n'})
    wait_ready(namespace)
    modules = sh(namespace, "deploy/web", "/usr/local/apache2/bin/httpd -M 2>&1").stdout
    assert "expires_module" in modules, modules
    with forward(namespace, "svc/web", 80) as (port,):
        code, _, headers = http(port, "/index.html")
    assert code == 200 and headers.get("Cache-Control") == "max-age=3600", json.dumps(headers)
    assert IMAGE in {c["image"] for c in site_pods(namespace)[0]["spec"]["containers"]}
