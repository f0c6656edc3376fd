"""Fixtures of the end-to-end suites: the cluster (skipped with the reason when there is none),
a namespace per test (what the cluster made of it printed when the test fails), and the operator
run from this process (as `httpd-operator run` would) for the suites that are not about installs."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from e2e.cluster import IMAGE, KUBECONFIG, ROOT, kubectl
from httpd_operator.kube import ApiError, Kube, call_once, load_configuration
from httpd_operator.runner import OperatorThread
from httpd_operator.settings import Settings


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """kubectl subprocesses, Helm's engine and the official client's pools leave sockets and pipes
    to the garbage collector: their ResourceWarnings are shown, not raised, in these suites."""
    for item in items:
        if "/e2e/" in str(item.path):
            item.add_marker(pytest.mark.filterwarnings("default::pytest.PytestUnraisableExceptionWarning",
                                                       "default::ResourceWarning"))


@pytest.fixture(scope="session")
def cluster() -> Kube:
    if not KUBECONFIG:
        pytest.skip("no cluster for the e2e suite: set HTTPD_OPERATOR_E2E_KUBECONFIG (make e2e KUBECONFIG=...)")
    kube = Kube(load_configuration(KUBECONFIG))
    try:
        nodes = call_once(kube.cluster, "GET", "/api/v1/nodes")["items"]
    except ApiError as exc:
        pytest.skip(f"the cluster in {KUBECONFIG} does not answer: {exc}")
    if not any(c["type"] == "Ready" and c["status"] == "True" for n in nodes for c in n["status"]["conditions"]):
        pytest.skip(f"the cluster in {KUBECONFIG} has no Ready node: pods cannot run there")
    return kube


@pytest.fixture
def crds(cluster: Kube) -> None:
    kubectl("apply", "-f", str(ROOT / "crds" / "httpdsites.yaml"), "-f", str(ROOT / "crds" / "peering.yaml"))
    kubectl("wait", "--for=condition=Established", "crd/httpdsites.httpd.dev", "--timeout=60s")


def show(namespace: str) -> None:
    """Printed by pytest when a test failed: what the cluster made of the namespace."""
    print(kubectl("-n", namespace, "get", "hs,deploy,rs,pods,pvc,svc,events", "-o", "wide", check=False).stdout)
    print(kubectl("-n", namespace, "describe", "pods", check=False).stdout)
    for pod in kubectl("-n", namespace, "get", "pods", "-o", "name", check=False).stdout.split():
        print(kubectl("-n", namespace, "logs", pod, "--all-containers", "--prefix", "--tail=20", check=False).stdout)


@pytest.fixture
def namespace(cluster: Kube) -> Iterator[str]:
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    kubectl("create", "namespace", name)
    try:
        yield name
    finally:
        show(name)
        kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture
def operator(crds: None, namespace: str) -> Iterator[OperatorThread]:
    thread = OperatorThread(Settings(default_image=IMAGE), load_configuration(KUBECONFIG), (namespace,))
    thread.start()
    try:
        yield thread
    finally:
        thread.stop()


@pytest.fixture
def operator_with(crds: None, namespace: str) -> Iterator[Callable[..., OperatorThread]]:
    """The operator with settings of the test's own (`operator_with(allowed_host_paths=(...,))`)."""
    threads: list[OperatorThread] = []

    def start(**settings: object) -> OperatorThread:
        thread = OperatorThread(Settings(default_image=IMAGE, **settings), load_configuration(KUBECONFIG),
                                (namespace,))
        thread.start()
        threads.append(thread)
        return thread

    try:
        yield start
    finally:
        for thread in threads:
            thread.stop()
