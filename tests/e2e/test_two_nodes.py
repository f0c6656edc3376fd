"""Where replicas land, on two nodes (`make e2e-local` starts a second one: hack/node --node 2):
claims only one node can mount keep their pods together; volumes any node can mount spread them;
draining a node through the Eviction API honours the site's disruption budget."""

from __future__ import annotations

import pytest

from e2e.cluster import TIMEOUT, evict, kubectl, kubectl_json, site, site_pods, wait, wait_ready
from httpd_operator.kube import ApiError, Kube
from httpd_operator.runner import OperatorThread

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(4 * TIMEOUT)]


@pytest.fixture
def nodes(cluster: Kube) -> list[str]:
    ready = [n["metadata"]["name"] for n in kubectl_json("get", "nodes")["items"]
             if not n["spec"].get("unschedulable")
             and any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])]
    if len(ready) < 2:
        pytest.skip(f"needs two schedulable Ready nodes, the cluster has {ready} (make e2e-local starts two)")
    return ready


def running_nodes(namespace: str) -> list[str]:
    return sorted(p["spec"].get("nodeName", "") for p in site_pods(namespace)
                  if p["status"].get("phase") == "Running"
                  and all(c.get("ready") for c in p["status"].get("containerStatuses") or [{}]))


def test_read_write_once_replicas_all_land_on_the_claims_node(
        namespace: str, operator: OperatorThread, nodes: list[str]) -> None:
    site(namespace, replicas=3)
    wait_ready(namespace)
    placed = running_nodes(namespace)
    assert len(placed) == 3 and len(set(placed)) == 1, placed


def test_replicas_any_node_can_serve_spread_over_the_nodes(
        namespace: str, operator: OperatorThread, nodes: list[str]) -> None:
    site(namespace, replicas=2, volume={"type": "Ephemeral"})
    wait_ready(namespace)
    wait(lambda: len(placed := running_nodes(namespace)) == 2 and len(set(placed)) == 2, "one pod on each node")


def test_draining_a_node_honours_the_disruption_budget(
        namespace: str, operator: OperatorThread, nodes: list[str], cluster: Kube) -> None:
    site(namespace, replicas=2, volume={"type": "Ephemeral"}, disruptionBudget={"minAvailable": 1})
    wait_ready(namespace)
    wait(lambda: len(set(running_nodes(namespace))) == 2, "spread over both nodes")
    wait(lambda: (kubectl_json("-n", namespace, "get", "pdb", "web").get("status") or {}).get(
        "disruptionsAllowed") == 1, "the budget allows one disruption")
    drained = nodes[-1]
    by_node = {p["spec"]["nodeName"]: p["metadata"]["name"] for p in site_pods(namespace)}
    kubectl("cordon", drained)
    try:
        evict(cluster, namespace, by_node[drained])  # the drain: allowed, one of two may go
        with pytest.raises(ApiError) as refused:  # the other node's pod, before the replacement is ready
            evict(cluster, namespace, next(pod for node, pod in by_node.items() if node != drained))
        assert refused.value.status == 429
        wait(lambda: (placed := running_nodes(namespace)) and len(placed) == 2 and drained not in placed,
             "the replacement Ready on the node left")
    finally:
        kubectl("uncordon", drained)
