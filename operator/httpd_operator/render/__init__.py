"""The pure core: a HttpdSite in, the objects it wants out. No I/O, no globals."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from httpd_operator.errors import SpecError
from httpd_operator.render.availability import render_disruption_budget
from httpd_operator.render.backup import render_cron_job
from httpd_operator.render.config import render_config_map
from httpd_operator.render.content import (
    check_writer_name,
    content_config,
    render_content_network_policy,
    render_content_writer,
)
from httpd_operator.render.deployment import CONTAINER_SECURITY, POD_SECURITY, render_deployment
from httpd_operator.render.exporter import render_service_monitor, setup_service_port
from httpd_operator.render.ingress import render_ingress
from httpd_operator.render.network_policy import render_network_policy
from httpd_operator.render.scaling import render_autoscaler
from httpd_operator.render.service import render_service
from httpd_operator.render.volumes import ResolvedVolume, render_claim, render_nfs_volume, resolve_volume
from httpd_operator.settings import Settings
from httpd_operator.spec import SiteSpec, parse_site


@dataclass(frozen=True)
class Rendered:
    """The desired children of one site, and the facts about its volume that status reports."""

    site: SiteSpec
    volume: ResolvedVolume
    objects: list[dict[str, Any]] = field(default_factory=list)


def render_site(site: SiteSpec, sites: Mapping[str, SiteSpec | SpecError] | None = None,
                settings: Settings = Settings()) -> Rendered:  # noqa: B008 (frozen, immutable)
    """The desired objects of a parsed site; `sites` resolves `fromSite` (the namespace's sites)."""
    sites = sites if sites is not None else {}
    check_writer_name(site, sites)
    resolved = resolve_volume(site, sites)
    if resolved.single_pod and site.replicas > 1:
        raise SpecError("spec.replicas", f"the volume's access mode ReadWriteOncePod allows one pod; "
                        f"{site.replicas} replicas were asked for", reason="AccessModeConflict")
    if resolved.single_pod and site.autoscaling and site.autoscaling.max_replicas > 1:
        raise SpecError("spec.autoscaling.maxReplicas", "the volume's access mode ReadWriteOncePod allows one pod; "
                        f"autoscaling up to {site.autoscaling.max_replicas} was asked for", reason="AccessModeConflict")
    if site.autoscaling and "cpu" not in (site.resources.get("requests") or {}):
        raise SpecError("spec.resources.requests.cpu", "is required with spec.autoscaling: the CPU target is a "
                        "share of each pod's CPU request")
    config_map = render_config_map(site, content_config(site, resolved))
    service = render_service(site)
    setup_service_port(site, service)
    objects = [render_nfs_volume(site), render_claim(site), config_map,
               render_deployment(site, resolved, config_map, settings), service,
               render_disruption_budget(site, settings.api_version("PodDisruptionBudget")),
               render_autoscaler(site, settings.api_version("HorizontalPodAutoscaler")),
               render_ingress(site), render_network_policy(site),
               render_content_writer(site, resolved, settings), render_content_network_policy(site),
               render_cron_job(site, resolved, settings.api_version("CronJob"), POD_SECURITY, CONTAINER_SECURITY),
               render_service_monitor(site, settings.api_version("ServiceMonitor")
                                      if settings.serves("ServiceMonitor") else None)]
    return Rendered(site=site, volume=resolved, objects=[o for o in objects if o is not None])


def render_body(body: Mapping[str, Any], settings: Settings,
                sites: Mapping[str, SiteSpec | SpecError] | None = None) -> Rendered:
    """Parse and render a HttpdSite body; raises SpecError for a site the operator refuses."""
    return render_site(parse_site(body, settings), sites, settings)
