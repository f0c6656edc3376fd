"""The repository's paths and CRDs, and one builder of a site's body for every suite."""

from __future__ import annotations

import copy
import pathlib
from typing import Any

import yaml

from httpd_operator.kinds import KIND, KINDS

ROOT = pathlib.Path(__file__).resolve().parents[2]
CRD = yaml.safe_load((ROOT / "crds" / "httpdsites.yaml").read_text())
SITES = "httpd.dev/v1alpha1/httpdsites"  # the emulator's name for the resource


def site(name: str = "web", namespace: str | None = "ns", *, uid: str | None = None, generation: int | None = None,
         resource_version: str | None = None, **spec: Any) -> dict[str, Any]:
    """An HttpdSite: `namespace` None for a body posted to a namespace's URL; uid and generation
    only where no server sets them (the pure core's tests); the spec copied (tests reuse theirs)."""
    meta: dict[str, Any] = {"name": name}
    for key, value in (("namespace", namespace), ("uid", uid), ("generation", generation),
                       ("resourceVersion", resource_version)):
        if value is not None:
            meta[key] = value
    return {"apiVersion": KINDS[KIND].api_version(), "kind": KIND, "metadata": meta, "spec": copy.deepcopy(spec)}


# The Prometheus operator's ServiceMonitor CRD, as far as the emulator needs it (an add-on:
# the operator writes ServiceMonitors only where the cluster serves them).
SERVICE_MONITOR_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
    "metadata": {"name": "servicemonitors.monitoring.coreos.com"},
    "spec": {"group": "monitoring.coreos.com", "scope": "Namespaced",
             "names": {"kind": "ServiceMonitor", "plural": "servicemonitors", "singular": "servicemonitor",
                       "listKind": "ServiceMonitorList"},
             "versions": [{"name": "v1", "served": True, "storage": True,
                           "schema": {"openAPIV3Schema": {"type": "object",
                                                          "x-kubernetes-preserve-unknown-fields": True}}}]},
}
