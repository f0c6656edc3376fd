"""`httpd-operator volumes list|prune`: retained claims, like `docker volume ls` and `prune`."""

from __future__ import annotations

import sys
from typing import Any

from httpd_operator.connection import Cluster
from httpd_operator.kinds import KIND
from httpd_operator.kube import ApiError, Kube, oneshot
from httpd_operator.render.meta import LABEL_MANAGED_BY, LABEL_SITE, MANAGED_BY


async def _claims_and_users(kube: Kube, namespace: str | None) -> tuple[list[dict[str, Any]], set[tuple[str, str]]]:
    claims = await kube.list("PersistentVolumeClaim", namespace, f"{LABEL_MANAGED_BY}={MANAGED_BY}")
    try:
        sites = await kube.list(KIND, namespace)
    except ApiError as exc:
        if exc.status != 404:
            raise
        sites = []  # the CRD is gone (uninstalled): no site uses any claim any more
    used: set[tuple[str, str]] = set()
    for site in sites:
        ns, name = site["metadata"]["namespace"], site["metadata"]["name"]
        volume = (site.get("spec") or {}).get("volume") or {}
        used.add((ns, f"{name}-htdocs"))
        if volume.get("claimName"):
            used.add((ns, volume["claimName"]))
        if volume.get("fromSite"):
            used.add((ns, f"{volume['fromSite']}-htdocs"))
    return claims, used


def list_volumes(configuration: Cluster, namespace: str | None) -> int:
    claims, used = oneshot(configuration, lambda kube: _claims_and_users(kube, namespace))
    print(f"{'NAMESPACE':<16} {'CLAIM':<32} {'SITE':<20} {'SIZE':<8} {'PHASE':<8} IN USE")
    for claim in claims:
        meta = claim["metadata"]
        size = (claim.get("status") or {}).get("capacity", {}).get("storage") or \
            claim["spec"]["resources"]["requests"]["storage"]
        in_use = "yes" if (meta["namespace"], meta["name"]) in used else "no (retained)"
        print(f"{meta['namespace']:<16} {meta['name']:<32} {meta.get('labels', {}).get(LABEL_SITE, '-'):<20} "
              f"{size:<8} {(claim.get('status') or {}).get('phase', '-'):<8} {in_use}")
    return 0


def prune_volumes(configuration: Cluster, namespace: str | None,
                  assume_yes: bool = False) -> int:
    """Delete retained claims no site uses, after showing them and asking (unless --yes)."""
    claims, used = oneshot(configuration, lambda kube: _claims_and_users(kube, namespace))
    unused = [c for c in claims if (c["metadata"]["namespace"], c["metadata"]["name"]) not in used
              and not c["metadata"].get("ownerReferences")]
    if not unused:
        print("no unused retained claims")
        return 0
    print("These retained claims belong to no site; deleting them deletes their data:")
    for claim in unused:
        print(f"  {claim['metadata']['namespace']}/{claim['metadata']['name']}")
    if not assume_yes:
        if not sys.stdin.isatty():
            print("httpd-operator: not a terminal to ask in: pass --yes to delete them", file=sys.stderr)
            return 2
        if input("Delete them? [y/N] ").strip().lower() not in ("y", "yes"):
            print("nothing deleted")
            return 1
    oneshot(configuration, lambda kube: _delete(kube, unused))
    return 0


async def _delete(kube: Kube, claims: list[dict[str, Any]]) -> None:
    for claim in claims:
        meta = claim["metadata"]
        await kube.delete("PersistentVolumeClaim", meta["namespace"], meta["name"])
        print(f"deleted {meta['namespace']}/{meta['name']}")
