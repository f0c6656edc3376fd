"""The HorizontalPodAutoscaler of a site. It scales the HttpdSite itself through its `scale`
subresource (it writes spec.replicas, the operator follows), so `kubectl get httpdsite` and
GitOps tools see the same number the pods run at.
"""

from __future__ import annotations

from typing import Any

from httpd_operator import API_VERSION, KIND
from httpd_operator.render.meta import metadata
from httpd_operator.spec import SiteSpec


def render_autoscaler(site: SiteSpec, api_version: str) -> dict[str, Any] | None:
    scaling = site.autoscaling
    if scaling is None:
        return None
    return {
        "apiVersion": api_version,  # autoscaling/v2, or autoscaling/v2beta2 before Kubernetes 1.23
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(site, site.name),
        "spec": {
            "scaleTargetRef": {"apiVersion": API_VERSION, "kind": KIND, "name": site.name},
            "minReplicas": scaling.min_replicas,
            "maxReplicas": scaling.max_replicas,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization", "averageUtilization": scaling.target_cpu}}}],
        },
    }
