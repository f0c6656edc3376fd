"""Helpers for the image tests: paths, a free port, polling with deadlines, and a runner
for the compiled httpd laid out the way the image lays it out."""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import stat
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest
from support import wait_until

from httpd_operator.render.mpm import mpm_sizing

REPO = Path(__file__).resolve().parents[2]
IMAGE_DIR = REPO / "images" / "httpd"
MPM = {k: str(v) for k, v in mpm_sizing(None).items()}  # the image's defaults (its Dockerfile)
# the same default as hack/httpd-* (and hack/control-plane, for the parent directory)
CACHE = Path(
    os.environ.get("HTTPD_OPERATOR_CACHE_DIR")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "httpd-operator"
) / "httpd"
SRC_DIR = CACHE / "src"
RUN_USER, RUN_GROUP = "nobody", "nogroup"


def unavailable(reason: str, suite: str = "IMAGE") -> None:
    """Skip with the reason, or fail when HTTPD_OPERATOR_REQUIRE_<suite>=1 (CI, where a
    missing tool is an error, not a skip)."""
    var = f"HTTPD_OPERATOR_REQUIRE_{suite}"
    if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
        pytest.fail(f"{reason} ({var}=1)", pytrace=False)
    pytest.skip(reason)


def require_tools(*tools: str, suite: str = "IMAGE") -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        unavailable(f"{', '.join(missing)} not installed: run hack/httpd-deps", suite)


def ensure_sources(suite: str) -> None:
    """Make sure SRC_DIR holds the pinned tarballs: fetched from Debian's archive with
    hack/httpd-fetch-debian when missing (a no-op when they are there and verified)."""
    proc = subprocess.run(
        ["bash", str(REPO / "hack" / "httpd-fetch-debian"), str(SRC_DIR)],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        unavailable(f"httpd sources missing in {SRC_DIR} and hack/httpd-fetch-debian "
                    f"failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}", suite)


def free_port() -> int:
    """A port the kernel just handed out (never 8080, kubectl's default)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what: str, check: Callable[[], object], deadline_s: float = 30.0,
             interval_s: float = 0.05) -> object:
    return wait_until(check, deadline_s, what, interval_s)


def http_get(host: str, port: int, path: str, timeout: float = 10.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def http_get_or_none(host: str, port: int, path: str) -> tuple[int, bytes] | None:
    try:
        return http_get(host, port, path, timeout=2.0)
    except OSError:
        return None


def make_root(prefix: Path, conf_d: dict[str, str] | None = None) -> Path:
    """Lay the compiled server out as the image does, in a fresh directory readable by
    the run user (the cache under /root is not): the installed prefix plus the repo's
    config and health file, all read-only; run/ and logs/ (the pod's emptyDirs) and
    htdocs/ (the mounted volume, empty) writable by the run user. `conf_d`: the files of the
    site's ConfigMap, mounted read-only at conf.d as in the pod."""
    root = Path(tempfile.mkdtemp(prefix="httpd-test-", dir="/tmp"))
    root.chmod(0o755)
    for name in ("bin", "lib", "modules", "conf"):
        shutil.copytree(prefix / name, root / name, symlinks=True)
    shutil.copy(IMAGE_DIR / "httpd.conf", root / "conf" / "httpd.conf")
    shutil.copytree(IMAGE_DIR / "health", root / "health")
    (root / "conf.d").mkdir()
    for name, text in (conf_d or {}).items():  # a ConfigMap's files, as the pod mounts them
        (root / "conf.d" / name).write_text(text)
    # read-only for everybody but root (the copy is what the run user sees)
    for path in [root, *root.rglob("*")]:
        if not path.is_symlink():
            path.chmod(stat.S_IMODE(path.stat().st_mode) & ~0o222)
    for name in ("run", "logs", "htdocs"):
        (root / name).mkdir()
        shutil.chown(root / name, RUN_USER, RUN_GROUP)
    return root


def remove_root(root: Path) -> None:
    shutil.rmtree(root)  # root may unlink in read-only directories


def run_as(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    """Run a command as the unprivileged run user."""
    return subprocess.run(
        ["setpriv", f"--reuid={RUN_USER}", f"--regid={RUN_GROUP}", "--clear-groups", *cmd], **kw
    )


class Httpd:
    """The compiled httpd in the foreground as the run user, as the image's CMD runs it."""

    def __init__(self, root: Path, listen: str, netns: str | None = None):
        self.root, self.listen, self.netns = root, listen, netns
        self.proc: subprocess.Popen | None = None
        self.stderr_path = root.parent / f"{root.name}.stderr"
        self.stdout_path = root.parent / f"{root.name}.stdout"  # the access log

    def command(self, *args: str) -> list[str]:
        cmd = [
            "setpriv", f"--reuid={RUN_USER}", f"--regid={RUN_GROUP}", "--clear-groups",
            str(self.root / "bin" / "httpd"), "-f", str(self.root / "conf" / "httpd.conf"),
            "-C", f"Define HTTPD_PREFIX {self.root}", *args,
        ]
        return ["ip", "netns", "exec", self.netns, *cmd] if self.netns else cmd

    def env(self) -> dict[str, str]:
        # the copy's lib/ (the binaries' RUNPATH names the cache prefix, unreadable here)
        return {**os.environ, "HTTPD_PORT": self.listen, **MPM, "LD_LIBRARY_PATH": str(self.root / "lib")}

    def start(self) -> None:
        self.stderr = open(self.stderr_path, "wb")  # noqa: SIM115 (closed in stop)
        self.stdout = open(self.stdout_path, "wb")  # noqa: SIM115 (closed in stop)
        # ErrorLog /proc/self/fd/2 (CustomLog /proc/self/fd/1) reopens stderr (stdout), so
        # the run user must own them, as it does in a container (runc hands the process
        # stdio pipes owned by the process's user)
        shutil.chown(self.stderr_path, RUN_USER, RUN_GROUP)
        shutil.chown(self.stdout_path, RUN_USER, RUN_GROUP)
        # setpriv and `ip netns exec` exec httpd: the pid we get is httpd's parent
        self.proc = subprocess.Popen(
            self.command("-DFOREGROUND"), env=self.env(),
            stdout=self.stdout, stderr=self.stderr,
        )

    def stdout_text(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr_text(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, probe: Callable[[], bool]) -> None:
        def ready() -> bool:
            if not self.running():
                pytest.fail(f"httpd exited ({self.proc.returncode}):\n{self.stderr_text()}")
            return probe()
        wait_for("httpd to answer /healthz", ready)

    def stop(self) -> None:
        if self.running():
            self.proc.terminate()  # SIGTERM: immediate stop
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()
        self.stdout.close()
        self.stderr_path.unlink(missing_ok=True)
        self.stdout_path.unlink(missing_ok=True)
