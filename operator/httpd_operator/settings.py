"""The operator's own policy, passed explicitly to the pure renderer (never read from globals)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from httpd_operator.kinds import KINDS

# The image built from images/httpd/Dockerfile (httpd, apr and apr-util compiled from source).
DEFAULT_IMAGE = "ghcr.io/httpd-operator/httpd:2.4.68"

# The metrics sidecar (spec.metrics.enabled): reads httpd's mod_status, serves Prometheus metrics.
EXPORTER_IMAGE = "ghcr.io/httpd-operator/apache-exporter:0.12.0"

# The content writer of sites with spec.content.git (images/git: Debian's git and a sync script).
GIT_IMAGE = "ghcr.io/httpd-operator/git-sync:2.39.5"

# Where the image keeps its document root; the content volume is mounted over it by default.
DOCUMENT_ROOT = "/usr/local/apache2/htdocs"

# Where httpd writes (emptyDirs in the pod): the content volume must not be mounted over them.
SCRATCH_PATHS = ("/usr/local/apache2/run", "/usr/local/apache2/logs", "/tmp")

# The httpd image's unprivileged user and group (see images/httpd/Dockerfile).
HTTPD_UID = 10001


# The httpd container's resources when a site gives none (`--default-resources`, the chart's
# `siteResources`): enough for a small site, and a memory limit so that one busy site cannot take
# a node's memory. No CPU limit on purpose: CPU is shared fairly by requests, and a limit only
# throttles a site while the node is idle.
DEFAULT_RESOURCES: Mapping[str, Mapping[str, str]] = {
    "requests": {"cpu": "50m", "memory": "64Mi"},
    "limits": {"memory": "256Mi"},
}


# The API versions current clusters serve, for kinds whose version moved across releases.
LATEST_VERSIONS = {k.name: k.api_version() for k in KINDS.values() if k.versioned}


@dataclass(frozen=True)
class Settings:
    """What an operator deployment decides for every site it manages."""

    default_image: str = DEFAULT_IMAGE
    exporter_image: str = EXPORTER_IMAGE
    git_image: str = GIT_IMAGE
    # Host path prefixes that sites may bind-mount (empty: HostPath volumes are refused).
    allowed_host_paths: tuple[str, ...] = ()
    # Set the bound PersistentVolume's reclaim policy to Retain for Retain claims.
    protect_volumes: bool = True
    # The httpd container's resources for sites without `spec.resources` (empty: none).
    default_resources: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: DEFAULT_RESOURCES)
    # A NetworkPolicy per site (--no-network-policies: none, and none watched or pruned).
    network_policies: bool = True
    # Namespaces whose pods may scrape a site's metrics port (--metrics-namespace; per site
    # spec.networkPolicy.metricsNamespaces).
    metrics_namespaces: tuple[str, ...] = ("monitoring",)
    # The API version to write for kinds whose version differs across Kubernetes releases
    # (discovered from the server at start-up; these defaults are today's).
    api_versions: tuple[tuple[str, str], ...] = ()
    # Seconds between reads of a git writer's log (0: each site's spec.content.git.interval).
    content_poll: float = 0.0
    # Seconds the operator waits for one API request before retrying it (with backoff).
    request_timeout: float = 30.0

    def api_version(self, kind: str) -> str:
        return dict(self.api_versions).get(kind) or LATEST_VERSIONS[kind]

    def serves(self, kind: str) -> bool:
        """Whether the cluster has an add-on kind (ServiceMonitor: the Prometheus operator's CRD)."""
        return kind in dict(self.api_versions)
