"""The metrics sidecar: an Apache exporter reading httpd's own `mod_status` page
(`/server-status?auto`, which the image allows from the pod's loopback only) and serving
Prometheus metrics on a port of its own, published by the site's Service. It has no readiness
probe: a pod's readiness is all its containers', and metrics must never take a site offline.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from httpd_operator.render.meta import metadata, selector_labels
from httpd_operator.spec import SiteSpec


def setup_exporter(site: SiteSpec, image: str, security: Mapping[str, Any], deployment: dict[str, Any]) -> None:
    if not site.metrics.enabled:
        return
    port = site.metrics.port
    deployment["spec"]["template"]["spec"]["containers"].append({
        "name": "exporter",
        "image": image,
        "args": [f"--scrape_uri=http://127.0.0.1:{site.port}/server-status?auto",
                 f"--telemetry.address=:{port}"],
        "ports": [{"name": "metrics", "containerPort": port, "protocol": "TCP"}],
        "securityContext": copy.deepcopy(dict(security)),
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
    })


def setup_service_port(site: SiteSpec, service: dict[str, Any]) -> None:
    if site.metrics.enabled:
        service["spec"]["ports"].append({"name": "metrics", "port": site.metrics.port, "targetPort": "metrics",
                                         "protocol": "TCP"})


def render_service_monitor(site: SiteSpec, api_version: str | None) -> dict[str, Any] | None:
    """For the Prometheus operator, when the cluster has its CRD (api_version None: it does not)."""
    if not site.metrics.enabled or api_version is None:
        return None
    return {
        "apiVersion": api_version,
        "kind": "ServiceMonitor",
        "metadata": metadata(site, site.name),
        "spec": {"selector": {"matchLabels": selector_labels(site.name)},
                 "namespaceSelector": {"matchNames": [site.namespace]},
                 "endpoints": [{"port": "metrics", "interval": "30s"}]},
    }
