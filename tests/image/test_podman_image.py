"""The image built from images/httpd/Dockerfile with podman, offline (--pull=never
--network=none, base image from debootstrap), and run the ways the operator and users
run it: read-only root filesystem, bind mount, named volume. Ports are published on
127.0.0.1 only.

Marker ``podman``: the first test builds the image (several minutes, once per machine);
later sessions reuse it (its tag is a hash of its inputs).
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from httpd_operator.render.mpm import mpm_sizing

from .httpd_helpers import free_port, http_get, http_get_or_none, wait_for

pytestmark = [pytest.mark.podman, pytest.mark.timeout(2400)]  # first test may build
HTDOCS = "/usr/local/apache2/htdocs"
# --read-only with tmpfs where the pod has emptyDirs. ":U" makes the tmpfs the container
# user's (podman gives a tmpfs over an image directory that directory's mode, ignoring
# mode=; a Kubernetes emptyDir is world-writable).
READ_ONLY = ["--read-only", "--tmpfs", "/usr/local/apache2/run:rw,U",
             "--tmpfs", "/usr/local/apache2/logs:rw,U", "--tmpfs", "/tmp:rw,mode=1777"]


class Podman:
    def __init__(self, env: dict[str, str], image: str):
        self.env, self.image = env, image
        self.containers: list[str] = []
        self.volumes: list[str] = []

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run(["podman", *args], env=self.env, capture_output=True, text=True)
        if check and proc.returncode != 0:
            pytest.fail(f"podman {' '.join(args)} failed:\n{proc.stderr}")
        return proc

    def run(self, *args: str, container_port: int = 8080) -> tuple[str, int]:
        """Start a detached container published on 127.0.0.1; wait for /healthz."""
        port = free_port()
        name = f"httpd-test-{uuid.uuid4().hex[:8]}"
        self("run", "-d", "--name", name, "-p", f"127.0.0.1:{port}:{container_port}",
             *args, self.image)
        self.containers.append(name)

        def ready() -> bool:
            state = self("inspect", "--format", "{{.State.Running}}", name).stdout.strip()
            if state != "true":
                logs = self("logs", name, check=False)
                pytest.fail(f"container exited:\n{logs.stdout}{logs.stderr}")
            return http_get_or_none("127.0.0.1", port, "/healthz") == (200, b"ok\n")
        wait_for(f"container {name} to answer /healthz", ready, deadline_s=60)
        return name, port

    def volume(self) -> str:
        name = f"httpd-test-{uuid.uuid4().hex[:8]}"
        self("volume", "create", name)
        self.volumes.append(name)
        return name

    def cleanup(self) -> None:
        for c in self.containers:
            self("rm", "-f", "-t", "0", c, check=False)
        for v in self.volumes:
            self("volume", "rm", "-f", v, check=False)


@pytest.fixture
def podman(podman_env: dict[str, str], podman_image: str):
    p = Podman(podman_env, podman_image)
    yield p
    p.cleanup()


def test_image_metadata(podman: Podman):
    info = json.loads(podman("image", "inspect", podman.image).stdout)[0]
    config = info["Config"]
    assert config["User"] == "10001:10001"
    assert "HTTPD_PORT=8080" in config["Env"]
    assert config["Cmd"] == ["httpd", "-DFOREGROUND"]
    assert config["StopSignal"] == "SIGWINCH"
    assert "8080/tcp" in config["ExposedPorts"]


def test_runtime_image_is_slim(podman: Podman):
    # no compiler or build tools, no manual, no headers in the runtime stage
    out = podman("run", "--rm", podman.image, "sh", "-c",
                 "for t in gcc cc make ld; do command -v $t; done; "
                 "ls -d /usr/local/apache2/manual /usr/local/apache2/include "
                 "/usr/include/openssl 2>/dev/null; true").stdout
    assert out.strip() == ""


def test_read_only_root_as_non_root(podman: Podman):
    name, port = podman.run(*READ_ONLY)
    assert b"It works" in http_get("127.0.0.1", port, "/")[1]  # the image's seed page
    assert podman("exec", name, "id", "-u").stdout.strip() == "10001"
    # pid 1 in the container is httpd, and it runs as 10001 too
    status = podman("exec", name, "cat", "/proc/1/status").stdout
    assert "Name:\thttpd" in status
    uid_line = next(line for line in status.splitlines() if line.startswith("Uid:"))
    assert uid_line.split()[1:] == ["10001"] * 4
    # the root filesystem really is read-only, the emptyDir stand-ins are writable
    assert podman("exec", name, "touch", "/usr/local/apache2/x", check=False).returncode != 0
    assert podman("exec", name, "touch", "/usr/local/apache2/run/x").returncode == 0
    # server-status: refused to us (we come through the port mapping, not from inside)
    assert http_get("127.0.0.1", port, "/server-status")[0] == 403
    # stop sends SIGWINCH: httpd stops gracefully and exits 0
    podman("stop", "-t", "30", name)
    assert podman("inspect", "--format", "{{.State.ExitCode}}", name).stdout.strip() == "0"
    logs = podman("logs", name)
    assert "SIGWINCH" in logs.stdout + logs.stderr


def test_port_is_set_by_environment(podman: Podman):
    _, port = podman.run(*READ_ONLY, "-e", "HTTPD_PORT=9090", container_port=9090)
    assert http_get("127.0.0.1", port, "/healthz") == (200, b"ok\n")


def test_bind_mount_serves_files_written_on_the_host_later(podman: Podman):
    host_dir = Path(tempfile.mkdtemp(prefix="httpd-bind-", dir="/tmp"))
    try:
        host_dir.chmod(0o755)
        _, port = podman.run(*READ_ONLY, "-v", f"{host_dir}:{HTDOCS}:ro")
        assert http_get("127.0.0.1", port, "/later.html")[0] == 404
        body = f"from the host {uuid.uuid4()}\n".encode()
        (host_dir / "later.html").write_bytes(body)
        assert http_get("127.0.0.1", port, "/later.html") == (200, body)
    finally:
        subprocess.run(["rm", "-rf", str(host_dir)], check=True)


def test_named_volume_is_seeded_and_outlives_the_container(podman: Podman):
    vol = podman.volume()
    first, port = podman.run(*READ_ONLY, "-v", f"{vol}:{HTDOCS}")
    # first use: podman copied the image's htdocs into the empty volume
    assert b"It works" in http_get("127.0.0.1", port, "/")[1]
    body = f"kept {uuid.uuid4()}"
    podman("exec", first, "sh", "-c", f"echo '{body}' > {HTDOCS}/kept.html")
    assert http_get("127.0.0.1", port, "/kept.html") == (200, f"{body}\n".encode())
    podman("rm", "-f", "-t", "0", first)

    _, port = podman.run(*READ_ONLY, "-v", f"{vol}:{HTDOCS}")
    assert http_get("127.0.0.1", port, "/kept.html") == (200, f"{body}\n".encode())
    assert b"It works" in http_get("127.0.0.1", port, "/")[1]


def test_the_mpm_follows_the_sizing_the_operator_sets(podman: Podman):
    """The env the operator renders from spec.resources (render/mpm.py) decides httpd's processes."""
    env = mpm_sizing({"limits": {"cpu": "3", "memory": "96Mi"}})
    name, _ = podman.run(*READ_ONLY, *(a for k, v in env.items() for a in ("-e", f"{k}={v}")))
    count = ("grep -l '^Name:.httpd' /proc/[0-9]*/status | wc -l")

    def processes() -> int:
        return int(podman("exec", name, "sh", "-c", count).stdout.strip())
    # the parent and StartServers children (3 here; 1 by the image's defaults)
    wait_for("httpd to start 3 children", lambda: processes() == 1 + env["HTTPD_START_SERVERS"], deadline_s=30)
    default, _ = podman.run(*READ_ONLY)
    wait_for("httpd to start 1 child", lambda: int(podman("exec", default, "sh", "-c", count).stdout) == 2,
             deadline_s=30)
