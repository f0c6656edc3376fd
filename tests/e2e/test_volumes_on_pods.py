"""Every volume idea on real pods: what a user would check (the bytes served, the files in the
volume, where the data went), with the operator run from this process (tests/e2e/conftest.py).
Rows that need this machine's own node (a host directory, the provisioner's files) skip elsewhere.
"""

from __future__ import annotations

import os
import pathlib
import tempfile
from collections.abc import Callable

import pytest

from e2e.cluster import (
    DOCROOT,
    NODE_TMP,
    TIMEOUT,
    claim,
    delete_site,
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
from httpd_operator.runner import OperatorThread

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(4 * TIMEOUT)]


def served(namespace: str, path: str, name: str = "web") -> tuple[int, bytes]:
    with forward(namespace, f"svc/{name}", 80) as (port,):
        code, body, _ = http(port, path)
        return code, body


def delete_pod_and_wait(namespace: str, name: str = "web") -> None:
    (old,) = [p["metadata"]["name"] for p in site_pods(namespace, name)]
    kubectl("-n", namespace, "delete", "pod", old, "--wait=false")
    wait(lambda: [p["metadata"]["name"] for p in site_pods(namespace, name)
                  if all(c.get("ready") for c in p["status"].get("containerStatuses") or [{}])] not in ([], [old]),
         "a new pod Ready")
    wait_ready(namespace, name)


def test_a_new_claim_is_seeded_once_and_never_overwritten(namespace: str, operator: OperatorThread) -> None:
    site(namespace)
    wait_ready(namespace)
    code, body = served(namespace, "/index.html")
    assert code == 200 and b"It works" in body
    sh(namespace, "deploy/web", f"echo mine > {DOCROOT}/index.html && echo extra > {DOCROOT}/extra.txt")
    delete_pod_and_wait(namespace)
    (pod,) = site_pods(namespace)
    (seed,) = [s for s in pod["status"]["initContainerStatuses"] if s["name"] == "seed"]
    assert seed["state"]["terminated"]["exitCode"] == 0  # the seed ran again in the new pod (cp -n)...
    assert served(namespace, "/index.html") == (200, b"mine\n")  # ...and overwrote nothing
    assert served(namespace, "/extra.txt") == (200, b"extra\n")


def test_seed_never_serves_the_new_claim_empty(namespace: str, operator: OperatorThread) -> None:
    site(namespace, volume={"seed": "Never"})
    wait_ready(namespace)
    assert served(namespace, "/index.html")[0] == 404
    assert "seed" not in {c["name"] for c in site_pods(namespace)[0]["spec"].get("initContainers") or []}


def test_an_existing_claim_is_served_and_left_untouched(namespace: str, operator: OperatorThread) -> None:
    claim(namespace, "content")
    in_volume(namespace, "content", "echo from-before > /data/hello.txt")
    site(namespace, volume={"type": "ExistingClaim", "claimName": "content"})
    wait_ready(namespace)
    assert served(namespace, "/hello.txt") == (200, b"from-before\n")
    uid = kubectl_json("-n", namespace, "get", "pvc", "content")["metadata"]["uid"]
    delete_site(namespace)
    assert kubectl_json("-n", namespace, "get", "pvc", "content")["metadata"]["uid"] == uid
    assert in_volume(namespace, "content", "cat /data/hello.txt") == "from-before\n"


@pytest.fixture
def host_dir() -> pathlib.Path:
    if not NODE_TMP:
        pytest.skip("needs this machine's own node (hack/node env): a directory made here must be on the node")
    # Not under /tmp: the node's /tmp is the controller-manager's (hack/node).
    root = pathlib.Path(tempfile.mkdtemp(prefix="httpd-operator-e2e-", dir="/var/tmp"))
    root.chmod(0o755)
    (root / "www").mkdir(mode=0o755)
    (root / "www" / "host.txt").write_text("from-the-host\n")
    (root / "www" / "host.txt").chmod(0o644)
    return root


def test_a_host_path_inside_the_allow_list_is_served_and_one_outside_is_refused(
        namespace: str, operator_with: Callable[..., OperatorThread], host_dir: pathlib.Path) -> None:
    operator_with(allowed_host_paths=(str(host_dir),))
    site(namespace, volume={"type": "HostPath", "hostPath": {"path": str(host_dir / "www"), "type": "Directory"}})
    wait_ready(namespace)
    assert served(namespace, "/host.txt") == (200, b"from-the-host\n")
    site(namespace, "outside", volume={"type": "HostPath", "hostPath": {"path": "/etc", "type": "Directory"}})
    wait(lambda: site_status(namespace, "outside").get("phase") == "Failed", "the site outside refused")
    (ready,) = [c for c in site_status(namespace, "outside")["conditions"] if c["type"] == "Ready"]
    assert ready["reason"] == "HostPathNotAllowed"
    assert kubectl("-n", namespace, "get", "deploy", "outside", check=False).returncode != 0, "no pod for it"


def test_an_ephemeral_volume_is_seeded_in_each_new_pod_and_goes_with_it(
        namespace: str, operator: OperatorThread) -> None:
    site(namespace, volume={"type": "Ephemeral"})
    wait_ready(namespace)
    volume = site_status(namespace)["volume"]
    assert volume["persistent"] is False and "deleted with each pod" in volume["message"]
    sh(namespace, "deploy/web", f"echo gone-soon > {DOCROOT}/scratch.txt")
    assert served(namespace, "/scratch.txt") == (200, b"gone-soon\n")
    delete_pod_and_wait(namespace)
    assert served(namespace, "/scratch.txt")[0] == 404
    assert b"It works" in served(namespace, "/index.html")[1]  # seeded again


def test_from_site_serves_the_other_sites_files_and_read_only_cannot_write(
        namespace: str, operator: OperatorThread) -> None:
    site(namespace, "blog")
    site(namespace, "preview", volume={"type": "FromSite", "fromSite": "blog", "readOnly": True})
    wait_ready(namespace, "blog")
    wait_ready(namespace, "preview")
    sh(namespace, "deploy/blog", f"echo post-1 > {DOCROOT}/post.txt")
    assert served(namespace, "/post.txt", "preview") == (200, b"post-1\n")
    write = sh(namespace, "deploy/preview", f"echo x > {DOCROOT}/nope.txt", check=False)
    assert write.returncode != 0 and "Read-only file system" in write.stderr


def test_two_sites_on_one_claim_at_different_sub_paths_see_only_their_own(
        namespace: str, operator: OperatorThread) -> None:
    claim(namespace, "shared")
    in_volume(namespace, "shared", "mkdir -p /data/a /data/b && echo a > /data/a/mine.txt && echo b > /data/b/mine.txt"
              " && echo b-only > /data/b/other.txt")
    for name in ("a", "b"):
        site(namespace, name, volume={"type": "ExistingClaim", "claimName": "shared", "subPath": name, "seed": "Never"})
    for name in ("a", "b"):
        wait_ready(namespace, name)
    assert served(namespace, "/mine.txt", "a") == (200, b"a\n")
    assert served(namespace, "/mine.txt", "b") == (200, b"b\n")
    assert served(namespace, "/other.txt", "a")[0] == 404


def test_retain_a_re_created_site_re_attaches_the_same_claim_and_files(
        namespace: str, operator: OperatorThread) -> None:
    site(namespace)
    wait_ready(namespace)
    sh(namespace, "deploy/web", f"echo kept > {DOCROOT}/kept.txt")
    uid = kubectl_json("-n", namespace, "get", "pvc", "web-htdocs")["metadata"]["uid"]
    delete_site(namespace)
    site(namespace)
    wait_ready(namespace)
    assert kubectl_json("-n", namespace, "get", "pvc", "web-htdocs")["metadata"]["uid"] == uid
    assert served(namespace, "/kept.txt") == (200, b"kept\n")


def test_reclaim_policy_delete_removes_the_claim_with_the_site_and_only_then(
        namespace: str, operator: OperatorThread) -> None:
    site(namespace, volume={"reclaimPolicy": "Delete"})
    wait_ready(namespace)
    assert kubectl("-n", namespace, "get", "pvc", "web-htdocs", check=False).returncode == 0
    kubectl("-n", namespace, "delete", "hs", "web")
    wait(lambda: kubectl("-n", namespace, "get", "pvc", "web-htdocs", check=False).returncode != 0,
         "the claim gone with the site")


def test_a_bound_volume_is_set_to_retain_and_outlives_its_claim_deleted_by_hand(
        namespace: str, operator: OperatorThread) -> None:
    site(namespace)
    wait_ready(namespace)
    sh(namespace, "deploy/web", f"echo precious > {DOCROOT}/precious.txt")
    name = kubectl_json("-n", namespace, "get", "pvc", "web-htdocs")["spec"]["volumeName"]
    wait(lambda: kubectl_json("get", "pv", name)["spec"]["persistentVolumeReclaimPolicy"] == "Retain",
         "the volume set to Retain")
    delete_site(namespace)
    kubectl("-n", namespace, "delete", "pvc", "web-htdocs", "--wait=true")
    pv = wait(lambda: (v := kubectl_json("get", "pv", name))["status"]["phase"] == "Released" and v, "Released")
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    if NODE_TMP and (path := pv["spec"].get("hostPath", {}).get("path", "")).startswith("/tmp/"):
        assert (pathlib.Path(NODE_TMP) / path[len("/tmp/"):] / "precious.txt").read_text() == "precious\n"
    kubectl("delete", "pv", name, "--wait=false", check=False)  # the test's own: nobody will re-use it


def test_growth_on_a_class_that_cannot_expand_and_shrink_are_reported_with_the_data_intact(
        namespace: str, operator: OperatorThread) -> None:
    site(namespace, volume={"size": "1Gi"})
    wait_ready(namespace)
    sh(namespace, "deploy/web", f"echo intact > {DOCROOT}/intact.txt")

    def synced() -> dict[str, str] | None:
        found = [c for c in site_status(namespace).get("conditions") or [] if c["type"] == "VolumeSynced"]
        return found[0] if found and found[0]["status"] == "False" else None

    site(namespace, volume={"size": "2Gi"})
    grown = wait(synced, "VolumeSynced=False for a growth the class refuses")
    assert "expan" in grown["message"].lower() or "resize" in grown["message"].lower(), grown
    site(namespace, volume={"size": "512Mi"})
    shrunk = wait(lambda: (c := synced()) and c["reason"] == "ShrinkRefused" and c, "ShrinkRefused")
    assert "512Mi" in shrunk["message"] or "shrink" in shrunk["message"].lower()
    requested = kubectl_json("-n", namespace, "get", "pvc", "web-htdocs")["spec"]["resources"]["requests"]
    assert requested["storage"] == "1Gi"
    assert served(namespace, "/intact.txt") == (200, b"intact\n")


def test_nfs_export_served(namespace: str, operator: OperatorThread) -> None:
    """A real NFS export needs the kernel's NFS client on the node (the kubelet mounts it)."""
    filesystems = pathlib.Path("/proc/filesystems").read_text().split()
    if "nfs" not in filesystems and "nfs4" not in filesystems:
        modules = pathlib.Path("/lib/modules", os.uname().release)
        pytest.skip("no NFS client in this kernel: /proc/filesystems lists no nfs, and "
                    f"{'no module tree ' + str(modules) if not modules.exists() else 'its nfs module is not loaded'}"
                    " (this sandbox has no modprobe and cannot load modules): the kubelet could not mount an export")
    pytest.skip("an NFS client exists, but no export is served by this suite yet (nfs-ganesha needs a network "
                "namespace of the test's own)")
