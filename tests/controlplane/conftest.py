"""Fixtures for tests against a real Kubernetes 1.20.2 control plane (hack/control-plane).

The binaries are built once per machine (5 minutes on 2 idle cores, 20 on busy ones) and cached
under ``${XDG_CACHE_HOME:-~/.cache}/httpd-operator/kubernetes-1.20.2/bin``. The build runs when the
session is about to run its first control-plane test (in ``pytest_collection_finish``, so that a
per-test timeout does not cut it short); the control plane is started by the session fixture.

* Build or start failure: the tests are skipped with the reason, or, when
  ``HTTPD_OPERATOR_REQUIRE_CONTROLPLANE=1`` (CI), they error.
* A control plane that was already running is reused and left running; one started by the
  session is stopped at its end unless ``HTTPD_OPERATOR_KEEP_CONTROLPLANE=1``.
* ``HTTPD_OPERATOR_CP_DIR`` selects the scratch directory (default /tmp/httpd-operator-cp).
* ``HTTPD_OPERATOR_SKIP_CONTROLPLANE=1`` skips them without building (ignored when required).

Fixtures: ``control_plane`` (session; a ControlPlane), ``kubeconfig`` (path), ``api_client``
(kubernetes.client.ApiClient as the admin user, in system:masters), ``audit_log`` (an AuditLog),
``namespace`` (a fresh namespace per test, deleted afterwards).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support import wait_until

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SCRIPT = REPO / "hack" / "control-plane"
BUILD_TIMEOUT = float(os.environ.get("HTTPD_OPERATOR_CP_BUILD_TIMEOUT", "3600"))
START_TIMEOUT = 300.0

_BUILD_RESULT = pytest.StashKey[tuple[bool, str]]()


def _truthy(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def _require() -> bool:
    return _truthy("HTTPD_OPERATOR_REQUIRE_CONTROLPLANE")


def _unavailable(reason: str) -> None:
    """Skip, or fail (an ERROR in setup) when CI requires the control plane."""
    if _require():
        pytest.fail(f"{reason} (HTTPD_OPERATOR_REQUIRE_CONTROLPLANE=1)", pytrace=False)
    pytest.skip(reason)


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _run(args: list[str], timeout: float, log: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if log is None:
        return subprocess.run(
            ["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout, env=env,
            stdin=subprocess.DEVNULL,
        )
    with log.open("w") as out:
        proc = subprocess.run(
            ["bash", str(SCRIPT), *args], stdout=subprocess.PIPE, stderr=out, text=True,
            timeout=timeout, env=env, stdin=subprocess.DEVNULL,
        )
    proc.stderr = log.read_text(errors="replace")
    return proc


def _cache_dir() -> Path:
    return Path(
        os.environ.get("HTTPD_OPERATOR_CACHE_DIR")
        or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "httpd-operator"
    )


def _is_controlplane_item(item: pytest.Item) -> bool:
    return HERE in Path(str(item.path)).resolve().parents


# --------------------------------------------------------------------------------------------
# Hooks
# --------------------------------------------------------------------------------------------


# The official client (the fixtures' admin ApiClient, as users' tools) leaves its pooled sockets
# to the real apiserver for the garbage collector; with warnings as errors, their ResourceWarnings
# would fail whichever test the collector happens to run in. Shown, not raised, here only.
UNCLOSED_BY_THE_CLIENT = pytest.mark.filterwarnings("default::pytest.PytestUnraisableExceptionWarning",
                                                    "default:unclosed <socket.socket:ResourceWarning")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _is_controlplane_item(item):
            item.add_marker(pytest.mark.controlplane)
            item.add_marker(UNCLOSED_BY_THE_CLIENT)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Build the binaries before the first test, outside any per-test timeout."""
    config = session.config
    if config.option.collectonly or not any(_is_controlplane_item(i) for i in session.items):
        return
    if _truthy("HTTPD_OPERATOR_SKIP_CONTROLPLANE") and not _require():
        config.stash[_BUILD_RESULT] = (False, "HTTPD_OPERATOR_SKIP_CONTROLPLANE=1")
        return
    if not SCRIPT.is_file():
        config.stash[_BUILD_RESULT] = (False, f"{SCRIPT} is missing")
        return
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    cache = _cache_dir()
    try:
        cache.mkdir(parents=True, exist_ok=True)
        log = cache / "control-plane-build.log"
    except OSError:
        log = Path(tempfile.mkdtemp(prefix="httpd-operator-cp-build-")) / "build.log"
    cached = (cache / "kubernetes-1.20.2" / "bin" / ".complete").is_file()
    if reporter is not None and not cached:
        reporter.write_line(
            f"control plane: hack/control-plane build (once per machine, 5-20 min; log {log})"
        )
    started = time.monotonic()
    try:
        proc = _run(["build"], timeout=BUILD_TIMEOUT, log=log)
    except subprocess.TimeoutExpired:
        config.stash[_BUILD_RESULT] = (False, f"hack/control-plane build timed out after "
                                              f"{BUILD_TIMEOUT:.0f} s (log {log})")
        return
    except OSError as e:
        config.stash[_BUILD_RESULT] = (False, f"hack/control-plane build could not run: {e}")
        return
    if proc.returncode != 0:
        errors = [ln for ln in proc.stderr.splitlines() if "ERROR:" in ln]
        what = errors[-1].split("ERROR:", 1)[1].strip() if errors else _tail(proc.stderr, 5)
        config.stash[_BUILD_RESULT] = (
            False, f"hack/control-plane build failed (exit {proc.returncode}): {what} (log {log})"
        )
    else:
        config.stash[_BUILD_RESULT] = (True, "")
    if reporter is not None and not cached:
        reporter.write_line(
            f"control plane: build {'ok' if proc.returncode == 0 else 'FAILED'} "
            f"in {time.monotonic() - started:.1f} s"
        )


# --------------------------------------------------------------------------------------------
# Audit log
# --------------------------------------------------------------------------------------------


class AuditLog:
    """The apiserver's audit log (JSON lines, Metadata level, stage ResponseComplete only,
    plus ResponseStarted for watches).

    ``entries(user=..., verb=...)`` filters; ``mark()`` returns a position so that
    ``entries(since=mark)`` sees only what happened after it, e.g. to count an operator's writes::

        mark = audit_log.mark()
        ...  # run the operator
        writes = audit_log.writes(OPERATOR_USER, since=mark)  # create/update/patch/delete
    """

    WRITE_VERBS = ("create", "update", "patch", "delete", "deletecollection")

    def __init__(self, path: Path) -> None:
        self.path = path

    def mark(self) -> int:
        """The current end of the log (a byte offset) for ``entries(since=...)``."""
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def read(self, since: int = 0) -> list[dict[str, Any]]:
        """All complete entries after byte offset ``since``, parsed."""
        try:
            with self.path.open("rb") as f:
                f.seek(since)
                data = f.read()
        except FileNotFoundError:
            return []
        out = []
        for line in data.split(b"\n"):
            # The last line may be half written; a complete one parses.
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return out

    def entries(
        self,
        user: str | None = None,
        verb: str | tuple[str, ...] | list[str] | None = None,
        *,
        resource: str | None = None,
        namespace: str | None = None,
        name: str | None = None,
        stage: str | None = "ResponseComplete",
        since: int = 0,
        where: Callable[[dict[str, Any]], bool] | None = None,
    ) -> list[dict[str, Any]]:
        """Entries filtered by user name (``user.username``), verb (one or several), objectRef
        resource/namespace/name, stage and an optional predicate."""
        verbs = (verb,) if isinstance(verb, str) else tuple(verb) if verb is not None else None
        result = []
        for e in self.read(since):
            ref = e.get("objectRef") or {}
            if user is not None and (e.get("user") or {}).get("username") != user:
                continue
            if verbs is not None and e.get("verb") not in verbs:
                continue
            if stage is not None and e.get("stage") != stage:
                continue
            if resource is not None and ref.get("resource") != resource:
                continue
            if namespace is not None and ref.get("namespace") != namespace:
                continue
            if name is not None and ref.get("name") != name:
                continue
            if where is not None and not where(e):
                continue
            result.append(e)
        return result

    def writes(self, user: str, *, since: int = 0, **kw: Any) -> list[dict[str, Any]]:
        """Create/update/patch/delete entries by ``user``."""
        return self.entries(user=user, verb=self.WRITE_VERBS, since=since, **kw)

    def wait_for(
        self, timeout: float = 10.0, count: int = 1, **filters: Any
    ) -> list[dict[str, Any]]:
        """Poll until at least ``count`` entries match (an entry can be written just after the
        response reaches the client); returns the matches or raises AssertionError."""
        def enough() -> list[dict[str, Any]]:
            found = self.entries(**filters)
            return found if len(found) >= count else []

        return wait_until(enough, timeout, f"{count} entries of audit log {self.path} matching {filters}",
                          interval=0.1)


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------


@dataclass
class ControlPlane:
    scratch: Path
    kubeconfig: Path
    audit_log: AuditLog
    started_by_session: bool

    @property
    def kubectl(self) -> Path:
        """The kubectl built with the control plane (1.20.2)."""
        return _cache_dir() / "kubernetes-1.20.2" / "bin" / "kubectl"

    def env(self, kubeconfig: Path | str | None = None) -> dict[str, str]:
        """Environment for a subprocess (kubectl, the operator) talking to this control plane."""
        return {**os.environ, "KUBECONFIG": str(kubeconfig or self.kubeconfig)}

    def kubeconfig_for_token(self, token: str, path: Path | str, user: str = "user") -> Path:
        """Write a kubeconfig like the admin one (server, CA) that authenticates with
        ``token``, e.g. a ServiceAccount's, to run the operator with only its RBAC."""
        import yaml

        cfg = yaml.safe_load(self.kubeconfig.read_text())
        cfg["users"] = [{"name": user, "user": {"token": token}}]
        context = cfg["contexts"][0]
        context["name"] = f"{user}@{context['context']['cluster']}"
        context["context"]["user"] = user
        cfg["contexts"] = [context]
        cfg["current-context"] = context["name"]
        path = Path(path)
        path.write_text(yaml.safe_dump(cfg))
        path.chmod(0o600)
        return path

    def service_account_token(self, api_client, namespace: str, name: str,
                              timeout: float = 60.0) -> str:
        """The token of ServiceAccount ``namespace/name`` (created if missing), from the Secret
        that Kubernetes 1.20's token controller makes for it."""
        import base64

        from kubernetes import client
        from kubernetes.client.rest import ApiException

        core = client.CoreV1Api(api_client)
        try:
            core.create_namespaced_service_account(
                namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name=name)))
        except ApiException as e:
            if e.status != 409:
                raise

        def token() -> str | None:
            sa = core.read_namespaced_service_account(name, namespace)
            for ref in sa.secrets or []:
                secret = core.read_namespaced_secret(ref.name, namespace)
                if secret.type == "kubernetes.io/service-account-token" and secret.data:
                    return base64.b64decode(secret.data["token"]).decode()
            return None

        return wait_until(token, timeout, f"the token Secret of ServiceAccount {namespace}/{name}")


def _run_or_unavailable(command: str, timeout: float) -> subprocess.CompletedProcess[str]:
    """`hack/control-plane COMMAND`, or a skip (an error in CI) saying why it did not work."""
    try:
        proc = _run([command], timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        _unavailable(f"hack/control-plane {command} could not run: {e}")
    if proc.returncode != 0:
        _unavailable(f"hack/control-plane {command} failed (exit {proc.returncode}):\n{_tail(proc.stderr)}")
    return proc


@pytest.fixture(scope="session")
def control_plane(request: pytest.FixtureRequest) -> Iterator[ControlPlane]:
    built, reason = request.config.stash.get(_BUILD_RESULT, (None, ""))
    if built is None:  # the build hook did not run (fixture used from outside this directory?)
        _run_or_unavailable("build", BUILD_TIMEOUT)
    elif not built:
        _unavailable(reason)

    status = _run(["status"], timeout=60)
    was_running = status.returncode == 0
    proc = _run_or_unavailable("start", START_TIMEOUT)
    lines = proc.stdout.strip().splitlines()
    if not lines:
        _unavailable(f"hack/control-plane start printed no kubeconfig path:\n{_tail(proc.stderr)}")
    kubeconfig = Path(lines[-1])
    scratch = kubeconfig.parent
    cp = ControlPlane(
        scratch=scratch,
        kubeconfig=kubeconfig,
        audit_log=AuditLog(scratch / "audit.log"),
        started_by_session=not was_running,
    )
    try:
        yield cp
    finally:
        if cp.started_by_session and not _truthy("HTTPD_OPERATOR_KEEP_CONTROLPLANE"):
            _run(["stop"], timeout=120)


@pytest.fixture(scope="session")
def kubeconfig(control_plane: ControlPlane) -> str:
    return str(control_plane.kubeconfig)


@pytest.fixture(scope="session")
def api_client(control_plane: ControlPlane):
    from kubernetes import config

    client = config.new_client_from_config(config_file=str(control_plane.kubeconfig))
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def audit_log(control_plane: ControlPlane) -> AuditLog:
    return control_plane.audit_log


@pytest.fixture
def namespace(api_client) -> Iterator[str]:
    """A fresh namespace (with its ``default`` ServiceAccount in place), deleted afterwards."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException

    core = client.CoreV1Api(api_client)
    name = f"cp-{uuid.uuid4().hex[:10]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(
        name=name, labels={"httpd-operator.test/controlplane": "true"})))

    def default_sa() -> bool:
        try:
            core.read_namespaced_service_account("default", name)
            return True
        except ApiException as e:
            if e.status == 404:
                return False
            raise

    try:
        # Pods are refused until the ServiceAccount controller has made `default`.
        wait_until(default_sa, 30, f"ServiceAccount {name}/default")
        yield name
    finally:
        try:
            core.delete_namespace(name)
        except ApiException as e:
            if e.status != 404:
                raise


@pytest.fixture(name="wait_until", scope="session")
def wait_until_fixture() -> Callable[..., Any]:
    """``wait_until(predicate, timeout, what)``: poll with a deadline (see module function)."""
    return wait_until
