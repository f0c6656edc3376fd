"""A site's content from git on real pods: a repository served by a `git daemon` of the suite's
own on this machine (the pods reach it over their node's bridge), the writer pod syncing it into
the claim, httpd serving it read-only; a push served within the interval; a bad ref reported
with the old revision still served. Needs this machine's own node (hack/node; make e2e-local)."""

from __future__ import annotations

import pathlib
import shutil
import socket
import subprocess
from collections.abc import Iterator

import pytest

from e2e.cluster import NODE_TMP, TIMEOUT, forward, http, kubectl, site, site_status, wait, wait_ready
from httpd_operator.runner import OperatorThread

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(4 * TIMEOUT)]
INTERVAL = 10  # the shortest the operator takes


def _bridge_address() -> str | None:
    """This machine's address on the first node's pod bridge (hack/node's hopnode0)."""
    out = subprocess.run(["ip", "-4", "-o", "addr", "show", "dev", "hopnode0"], capture_output=True, text=True)
    words = out.stdout.split()
    return words[words.index("inet") + 1].split("/")[0] if "inet" in words else None


def _git(cwd: pathlib.Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout.strip()


class Repository:
    """A bare repository served by git daemon, and a working copy to push to it from."""

    def __init__(self, root: pathlib.Path, address: str) -> None:
        self.bare, self.work = root / "site.git", root / "work"
        _git(root, "init", "-q", "--bare", "-b", "main", str(self.bare))
        _git(root, "init", "-q", "-b", "main", str(self.work))
        with socket.socket() as s:
            s.bind((address, 0))
            self.port = s.getsockname()[1]
        self.url = f"git://{address}:{self.port}/site.git"
        self.daemon = subprocess.Popen(["git", "daemon", "--reuseaddr", "--export-all", f"--base-path={root}",
                                        f"--listen={address}", f"--port={self.port}", str(root)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def commit(self, files: dict[str, str]) -> str:
        for name, text in files.items():
            (self.work / name).write_text(text)
        _git(self.work, "add", "-A")
        _git(self.work, "commit", "-q", "-m", "change")
        _git(self.work, "push", "-q", str(self.bare), "main")
        return _git(self.work, "rev-parse", "HEAD")

    def close(self) -> None:
        self.daemon.terminate()
        self.daemon.wait(10)


@pytest.fixture
def repository(tmp_path: pathlib.Path) -> Iterator[Repository]:
    address = _bridge_address()
    if not NODE_TMP or address is None or shutil.which("git") is None:
        pytest.skip("needs this machine's own node (hack/node) and git")
    repo = Repository(tmp_path, address)
    yield repo
    repo.close()


def served(namespace: str, path: str) -> tuple[int, bytes]:
    with forward(namespace, "svc/web", 80) as (port,):
        code, body, _ = http(port, path)
        return code, body


def synced(namespace: str) -> dict[str, str]:
    return next((c for c in site_status(namespace).get("conditions", []) if c["type"] == "ContentSynced"), {})


def test_a_repository_is_served_a_push_follows_and_a_bad_ref_keeps_the_old_revision(
        namespace: str, operator: OperatorThread, repository: Repository) -> None:
    first = repository.commit({"index.html": "first\n"})
    # On the node whose bridge the daemon listens on (hack/node's first node): a pod of the second
    # node does not reach the first bridge's address (seen: Unreachable).
    site(namespace, replicas=2, nodeSelector={"kubernetes.io/hostname": "localhost"},
         content={"git": {"repository": repository.url, "ref": "main", "interval": f"{INTERVAL}s"}})
    wait_ready(namespace)
    wait(lambda: served(namespace, "/index.html") == (200, b"first\n"), "the first revision served")
    wait(lambda: (site_status(namespace).get("content") or {}).get("revision") == first, "status.content.revision")
    assert synced(namespace).get("status") == "True"

    second = repository.commit({"index.html": "second\n", "new.html": "new\n"})
    wait(lambda: served(namespace, "/index.html") == (200, b"second\n"), "the push served", timeout=6 * INTERVAL)
    assert served(namespace, "/new.html") == (200, b"new\n")
    wait(lambda: (site_status(namespace).get("content") or {}).get("revision") == second, "the new revision reported")

    kubectl("-n", namespace, "patch", "hs", "web", "--type=merge",
            "-p", '{"spec":{"content":{"git":{"ref":"no-such-branch"}}}}')
    wait(lambda: synced(namespace).get("reason") == "UnknownRef", "ContentSynced=False UnknownRef",
         timeout=6 * INTERVAL)
    assert synced(namespace)["status"] == "False"
    assert served(namespace, "/index.html") == (200, b"second\n")  # the last good revision keeps serving
