"""Availability: a PodDisruptionBudget while a site has more than one replica.

With one replica a budget of minAvailable 1 would block every node drain, so it exists only when
replicas > 1 and is removed when they drop back to 1.
"""

from __future__ import annotations

from typing import Any

from httpd_operator.render.meta import metadata, selector_labels
from httpd_operator.spec import SiteSpec


def render_disruption_budget(site: SiteSpec, api_version: str) -> dict[str, Any] | None:
    if site.replicas <= 1:
        return None
    return {
        "apiVersion": api_version,  # policy/v1, or policy/v1beta1 on clusters older than 1.21
        "kind": "PodDisruptionBudget",
        "metadata": metadata(site, site.name),
        "spec": {"minAvailable": site.min_available, "selector": {"matchLabels": selector_labels(site.name)}},
    }
