"""The Ingress that publishes a site outside the cluster, and the URL status reports for it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from httpd_operator.render.meta import metadata
from httpd_operator.spec import SiteSpec


def render_ingress(site: SiteSpec) -> dict[str, Any] | None:
    ingress = site.ingress
    if ingress is None:
        return None
    meta = metadata(site, site.name)
    if ingress.annotations:
        meta["annotations"] = dict(ingress.annotations)
    rule: dict[str, Any] = {"http": {"paths": [{
        "path": ingress.path,
        "pathType": ingress.path_type,
        "backend": {"service": {"name": site.name, "port": {"name": "http"}}},
    }]}}
    if ingress.host:
        rule = {"host": ingress.host, **rule}
    spec: dict[str, Any] = {"rules": [rule]}
    if ingress.class_name:
        spec["ingressClassName"] = ingress.class_name
    if ingress.tls_secret_name:
        tls: dict[str, Any] = {"secretName": ingress.tls_secret_name}
        if ingress.host:
            tls["hosts"] = [ingress.host]
        spec["tls"] = [tls]
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": meta, "spec": spec}


def ingress_url(site: SiteSpec, observed: Mapping[str, Any] | None) -> str | None:
    """https://host/path (http without TLS); without a host, the address the controller published."""
    ingress = site.ingress
    if ingress is None:
        return None
    host = ingress.host
    if not host:
        balancers = (((observed or {}).get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        host = next((b.get("hostname") or b.get("ip") for b in balancers if b.get("hostname") or b.get("ip")), None)
    if not host or host.startswith("*."):
        return None
    scheme = "https" if ingress.tls_secret_name else "http"
    return f"{scheme}://{host}{ingress.path}"
