"""The NetworkPolicy of a site's pods: the http port from anywhere (or from the peers the site
names), the metrics port only from the monitoring namespaces, nothing else inbound; egress open,
or DNS only. Enforced only where the cluster's network plugin implements NetworkPolicy.

The backup CronJob's pods and the init containers need no network (they read and write volumes,
which the kubelet mounts), so DNSOnly takes nothing from them; the exporter reads httpd over the
pod's loopback, which no policy filters.
"""

from __future__ import annotations

from typing import Any

from httpd_operator.render.meta import metadata, selector_labels
from httpd_operator.spec import SiteSpec
from httpd_operator.spec_network import namespaces_peer

DNS_PORTS = [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]


def render_network_policy(site: SiteSpec) -> dict[str, Any] | None:
    policy = site.network_policy
    if policy is None:
        return None
    http: dict[str, Any] = {"ports": [{"protocol": "TCP", "port": site.port}]}
    if policy.http_from:
        http["from"] = [dict(peer) for peer in policy.http_from]
    ingress = [http]
    if site.metrics.enabled and policy.metrics_namespaces:
        ingress.append({"ports": [{"protocol": "TCP", "port": site.metrics.port}],
                        "from": [namespaces_peer(policy.metrics_namespaces)]})
    spec: dict[str, Any] = {"podSelector": {"matchLabels": selector_labels(site.name)},
                            "policyTypes": ["Ingress"], "ingress": ingress}
    if policy.egress == "DNSOnly":
        spec["policyTypes"].append("Egress")
        spec["egress"] = [{"ports": [dict(p) for p in DNS_PORTS]}]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": metadata(site, site.name),
            "spec": spec}
