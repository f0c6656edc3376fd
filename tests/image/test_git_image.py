"""The git writer's image (images/git), built by hack/images with podman, offline, and run as the
writer pod runs it: non-root, read-only root file system, the content volume and /tmp writable.
A `git daemon` on the host's loopback serves the repository (the container shares the host's
network here; in a cluster it is the writer's NetworkPolicy that lets it out).

Marker ``podman``: the first test builds the image (about a minute, then cached by its inputs).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from httpd_operator.render import render_body
from httpd_operator.settings import DOCUMENT_ROOT, Settings

from . import httpd_helpers as h
from .httpd_helpers import REPO

sys.path.insert(0, str(REPO / "tests"))
from test_git_sync import Upstream, serving  # noqa: E402

pytestmark = [pytest.mark.podman, pytest.mark.timeout(1200)]


@pytest.fixture(scope="session")
def git_image(podman_env: dict[str, str]) -> str:
    proc = subprocess.run(["bash", str(REPO / "hack" / "images"), "build", "git"], capture_output=True, text=True,
                          env=podman_env)
    if proc.returncode != 0:
        pytest.fail(f"hack/images build git failed:\n{proc.stderr[-4000:]}")
    return proc.stdout.strip().splitlines()[-1]


@pytest.fixture
def upstream(tmp_path: Path) -> Iterator[Upstream]:
    with serving(tmp_path) as up:
        yield up


def podman(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["podman", *args], env=env, capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        pytest.fail(f"podman {' '.join(args)} failed:\n{proc.stdout}{proc.stderr}")
    return proc


def run_sync(env: dict[str, str], image: str, volume: Path, repository: str, ref: str = "main"
             ) -> tuple[int, dict[str, object]]:
    name = f"git-sync-test-{uuid.uuid4().hex[:8]}"
    proc = podman(env, "run", "--rm", "--name", name, "--network=host", "--read-only",
                  "--tmpfs", "/tmp:rw,mode=1777", "--user", "10001:10001", "--cap-drop=ALL",
                  "--security-opt", "no-new-privileges", "-v", f"{volume}:/content",
                  "-e", f"GIT_SYNC_REPOSITORY={repository}", "-e", f"GIT_SYNC_REF={ref}", "-e", "GIT_SYNC_ONCE=1",
                  image, check=False)
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, proc.stdout + proc.stderr
    return proc.returncode, json.loads(lines[0])


def test_the_image_is_tagged_with_git_s_version_and_runs_as_non_root(podman_env: dict[str, str],
                                                                      git_image: str) -> None:
    assert not git_image.endswith(":latest") and git_image.rsplit(":", 1)[1][0].isdigit()
    config = json.loads(podman(podman_env, "image", "inspect", git_image).stdout)[0]["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["/usr/local/bin/git-sync"]
    version = podman(podman_env, "run", "--rm", "--read-only", "--entrypoint", "git", git_image, "--version").stdout
    assert version.split()[2] == git_image.rsplit(":", 1)[1]


def test_the_writer_syncs_a_push_into_the_volume_read_only_root(podman_env: dict[str, str], git_image: str,
                                                                upstream: Upstream, tmp_path: Path) -> None:
    volume = tmp_path / "volume"
    volume.mkdir()
    os.chown(volume, 10001, 10001)
    first = upstream.commit({"index.html": "one\n"})
    rc, record = run_sync(podman_env, git_image, volume, upstream.url)
    assert rc == 0 and record["revision"] == first and record["changed"] is True, record
    assert (volume / "current" / "index.html").read_text() == "one\n"
    assert (volume / "current" / "index.html").stat().st_uid == 10001
    second = upstream.commit({"index.html": "two\n"})
    rc, record = run_sync(podman_env, git_image, volume, upstream.url)
    assert rc == 0 and record["revision"] == second
    assert (volume / "current" / "index.html").read_text() == "two\n"
    rc, record = run_sync(podman_env, git_image, volume, upstream.url, ref="nope")
    assert rc == 1 and record["error"] == "UnknownRef" and record["revision"] == second


def test_the_httpd_image_serves_what_the_git_image_synced(podman_env: dict[str, str], git_image: str,
                                                          podman_image: str, upstream: Upstream,
                                                          tmp_path: Path) -> None:
    """The pod's two containers, as podman runs them: the writer fills the volume, httpd mounts it
    read-only with the operator's conf.d file and serves the current revision; a push switched in
    is served at once, by the same httpd."""
    volume, conf_d = tmp_path / "volume", tmp_path / "conf.d"
    volume.mkdir()
    conf_d.mkdir()
    os.chown(volume, 10001, 10001)
    body = {"apiVersion": "httpd.dev/v1alpha1", "kind": "HttpdSite", "metadata": {"name": "web", "namespace": "ns"},
            "spec": {"content": {"git": {"repository": upstream.url, "subPath": "public"}}}}
    config_map = next(o for o in render_body(body, Settings()).objects if o["kind"] == "ConfigMap")
    for name, text in config_map["data"].items():
        (conf_d / name).write_text(text)
    upstream.commit({"public/index.html": "one\n"})
    assert run_sync(podman_env, git_image, volume, upstream.url)[0] == 0
    port = h.free_port()
    name = f"httpd-git-{uuid.uuid4().hex[:8]}"
    podman(podman_env, "run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:8080", "--read-only",
           "--tmpfs", "/usr/local/apache2/run:rw,U", "--tmpfs", "/usr/local/apache2/logs:rw,U",
           "--tmpfs", "/tmp:rw,mode=1777", "-v", f"{volume}:{DOCUMENT_ROOT}:ro",
           "-v", f"{conf_d}:/usr/local/apache2/conf.d:ro", podman_image)
    try:
        h.wait_for("httpd to answer", lambda: h.http_get_or_none("127.0.0.1", port, "/index.html") is not None,
                   deadline_s=60)
        assert h.http_get("127.0.0.1", port, "/index.html") == (200, b"one\n")
        upstream.commit({"public/index.html": "two\n"})
        assert run_sync(podman_env, git_image, volume, upstream.url)[0] == 0
        assert h.http_get("127.0.0.1", port, "/index.html") == (200, b"two\n")
    finally:
        podman(podman_env, "rm", "-f", name, check=False)
