"""The Service in front of a site's pods."""

from __future__ import annotations

from typing import Any

from httpd_operator.render.meta import metadata, selector_labels
from httpd_operator.spec import SiteSpec


def render_service(site: SiteSpec) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(site, site.name),
        "spec": {
            "type": site.service_type,
            "selector": selector_labels(site.name),
            # protocol is explicit: server-side apply on older servers requires it.
            "ports": [{"name": "http", "port": site.service_port, "targetPort": "http",
                       "protocol": "TCP"}],
        },
    }


def service_url(site: SiteSpec) -> str:
    port = "" if site.service_port == 80 else f":{site.service_port}"
    return f"http://{site.name}.{site.namespace}.svc{port}"
