"""The real API server's verdict on every example and every file of the hostile corpus matches
what the project claims: accepted, or 422 naming the field (schema, or the server's own name rules)."""

from __future__ import annotations

import pathlib
import re
from typing import Any

import pytest
import yaml

from httpd_operator.kube import ApiError, Kube, call_once, load_configuration
from httpd_operator.kube import path as api_path

ROOT = pathlib.Path(__file__).resolve().parents[2]
CORPUS = sorted((ROOT / "tests" / "corpus").glob("*.yaml"))
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def verdict(path: pathlib.Path) -> tuple[str, list[str]]:
    words = re.search(r"^# expect: (\w+) (.*)$", path.read_text(), re.M)
    assert words, f"{path.name} has no verdict"
    kind, rest = words.group(1), words.group(2).split()
    return kind, (rest[1:] if kind == "operator" else rest)


@pytest.fixture
def admin(control_plane: Any) -> Kube:
    """An admin client, with the CRD of this tree installed (created, or replaced if older)."""
    kube = Kube(load_configuration(str(control_plane.kubeconfig)))
    crd = yaml.safe_load((ROOT / "crds" / "httpdsites.yaml").read_text())
    url = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    try:
        call_once(kube.cluster, "POST", url, crd)
    except ApiError as exc:
        assert exc.status == 409, exc
        current = call_once(kube.cluster, "GET", f"{url}/{crd['metadata']['name']}")
        crd["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]
        call_once(kube.cluster, "PUT", f"{url}/{crd['metadata']['name']}", crd)
    return kube


def apply(kube: Kube, namespace: str, doc: dict[str, Any]) -> ApiError | None:
    doc = {**doc, "metadata": {**doc["metadata"], "namespace": namespace}}
    try:
        call_once(kube.cluster, "POST", api_path(doc["kind"], namespace), doc)
    except ApiError as exc:
        return exc
    return None


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_corpus_verdicts_on_the_real_server(path: pathlib.Path, admin: Kube, namespace: str,
                                            control_plane: Any) -> None:
    kind, fields = verdict(path)
    for doc in (d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)):
        error = apply(admin, namespace, doc)
        name = doc["metadata"]["name"]
        if kind == "schema":
            assert error is not None and error.status == 422, f"{path.name}: accepted"
            assert fields[0].split("[")[0] in error.message, error.message  # the server names the list
        elif not SUBDOMAIN.match(str(name)) or len(str(name)) > 253:
            assert error is not None and error.status == 422 and "metadata.name" in error.message
        else:
            assert error is None, f"{path.name}: {error}"
            if kind == "pruned":  # a structural schema drops what it does not declare
                stored = call_once(admin.cluster, "GET", api_path("HttpdSite", namespace, name))
                for field in fields:
                    node: Any = stored
                    for part in field.split("."):
                        node = node.get(part) if isinstance(node, dict) else None
                    assert node is None, f"{field} was kept"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_example_is_accepted_and_defaulted(path: pathlib.Path, admin: Kube, namespace: str) -> None:
    for doc in (d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)):
        assert apply(admin, namespace, doc) is None
        if doc["kind"] == "HttpdSite":
            stored = call_once(admin.cluster, "GET", api_path("HttpdSite", namespace, doc["metadata"]["name"]))
            assert stored["spec"]["volume"]["reclaimPolicy"] in ("Retain", "Delete")
            assert stored["spec"]["replicas"] >= 1
