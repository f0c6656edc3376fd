"""Names, labels and owner references shared by every child of a site."""

from __future__ import annotations

from typing import Any

from httpd_operator import API_VERSION, KIND
from httpd_operator.spec import SiteSpec

MANAGED_BY = "httpd-operator"
LABEL_NAME = "app.kubernetes.io/name"
LABEL_INSTANCE = "app.kubernetes.io/instance"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
# Kept on retained claims so `httpd-operator volumes list` can say which site they belonged to.
LABEL_SITE = "httpd.dev/site"
# On pods: the claim they mount, so pods sharing a ReadWriteOnce claim can be co-located.
LABEL_CLAIM = "httpd.dev/claim"
ANNOTATION_RECLAIM = "httpd.dev/reclaim-policy"


def claim_name(site: str) -> str:
    return f"{site}-htdocs"


def selector_labels(site: str) -> dict[str, str]:
    """The labels that select a site's pods (immutable in a Deployment: never change them)."""
    return {LABEL_NAME: "httpd", LABEL_INSTANCE: site}


def labels(site: str) -> dict[str, str]:
    return {**selector_labels(site), LABEL_MANAGED_BY: MANAGED_BY}


def owner_reference(site: SiteSpec) -> dict[str, Any]:
    """Makes the child garbage-collected with the site (and shown as controlled by it)."""
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "name": site.name,
        "uid": site.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def metadata(site: SiteSpec, name: str, owned: bool = True) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": site.namespace, "labels": labels(site.name)}
    if owned:
        meta["ownerReferences"] = [owner_reference(site)]
    return meta
