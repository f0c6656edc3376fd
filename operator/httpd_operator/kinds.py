"""Every kind the operator knows, in one table: its API group, versions, plural and role.

Discovery (`kube.discover_versions`), the URLs (`kube.path`), the watches and stores (`handlers`,
`engine`), the default versions (`settings`), the demo, the CLIs and RBAC's test derive what they
need from it. Adding a child kind is one row here and one renderer.
"""

from __future__ import annotations

from dataclasses import dataclass

from httpd_operator import GROUP, KIND, PLURAL, VERSION


@dataclass(frozen=True)
class Kind:
    name: str
    group: str                   # "" for the core group
    versions: tuple[str, ...]    # newest first; with more than one, the server's is discovered
    plural: str
    namespaced: bool = True
    optional: bool = False       # a child that exists only while the spec asks for it (pruned)
    add_on: bool = False         # from a CRD a cluster may lack: used only when served
    child: bool = False          # one of a site's children: watched and kept in the stores
    watch: str = ""              # "all": every object; "managed": the operator's (by label); "": none

    def api_version(self, version: str | None = None) -> str:
        version = version or self.versions[0]
        return f"{self.group}/{version}" if self.group else version

    @property
    def prefix(self) -> str:
        """The URL prefix of its newest version: "/api/v1" or "/apis/apps/v1"."""
        return prefix(self.api_version())

    @property
    def versioned(self) -> bool:
        """Whether the version to use is discovered from the server (it moved, or is an add-on)."""
        return len(self.versions) > 1 or self.add_on


def prefix(api_version: str) -> str:
    return "/api/v1" if api_version == "v1" else f"/apis/{api_version}"


TABLE = (
    Kind(KIND, GROUP, (VERSION,), PLURAL, watch="all"),
    Kind("PersistentVolumeClaim", "", ("v1",), "persistentvolumeclaims", child=True, watch="all"),
    Kind("Deployment", "apps", ("v1",), "deployments", child=True, watch="managed"),
    Kind("Service", "", ("v1",), "services", child=True, watch="managed"),
    Kind("PodDisruptionBudget", "policy", ("v1", "v1beta1"), "poddisruptionbudgets", optional=True, child=True,
         watch="managed"),
    Kind("ConfigMap", "", ("v1",), "configmaps", optional=True, child=True, watch="managed"),
    Kind("Ingress", "networking.k8s.io", ("v1",), "ingresses", optional=True, child=True, watch="managed"),
    Kind("NetworkPolicy", "networking.k8s.io", ("v1",), "networkpolicies", optional=True, child=True,
         watch="managed"),
    Kind("HorizontalPodAutoscaler", "autoscaling", ("v2", "v2beta2"), "horizontalpodautoscalers", optional=True,
         child=True, watch="managed"),
    Kind("CronJob", "batch", ("v1", "v1beta1"), "cronjobs", optional=True, child=True, watch="managed"),
    Kind("ServiceMonitor", "monitoring.coreos.com", ("v1",), "servicemonitors", optional=True, add_on=True,
         child=True, watch="managed"),
    Kind("Job", "batch", ("v1",), "jobs", watch="managed"),  # backup runs: kept as summaries only
    Kind("PersistentVolume", "", ("v1",), "persistentvolumes", namespaced=False),
    Kind("Pod", "", ("v1",), "pods"),
    Kind("Event", "", ("v1",), "events"),
)
KINDS: dict[str, Kind] = {k.name: k for k in TABLE}
# A site's children, in the table's order (the stores hold them, and the sites).
CHILDREN = tuple(k.name for k in TABLE if k.child)
STORED = (KIND, *CHILDREN)
# Children that exist only while the spec asks for them (named like the site); removed otherwise.
OPTIONAL = tuple(k.name for k in TABLE if k.optional)
