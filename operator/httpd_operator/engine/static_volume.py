"""The PersistentVolume of an NFS site: created once, never patched, never deleted.

It is cluster-scoped, so the operator neither watches it (that would need list/watch on every
volume of the cluster) nor owns it (a namespaced site cannot own a cluster object). What the
watches do show is enough: once the site's claim is Bound to it, there is nothing to do. Before
that the operator creates it; an AlreadyExists answer means it is there (its source is immutable,
and its name carries a hash of the export, so it names the same export).

A claim deleted by hand (or by `volumes prune`) leaves the volume Released, still reserved for
the old claim's uid; a site re-created later would wait for ever. Where the operator may read and
patch volumes (--protect-volumes, the default), it clears that stale uid, so the new claim binds
to the same export; the export's files are never touched either way.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from httpd_operator.engine.apply import Outcome
from httpd_operator.engine.store import Store
from httpd_operator.kube import ApiError, Kube
from httpd_operator.settings import Settings

if TYPE_CHECKING:
    from httpd_operator.spec import SiteSpec

logger = logging.getLogger("httpd_operator")


async def ensure_volume(kube: Kube, store: Store, settings: Settings, site: SiteSpec, want: dict[str, Any]) -> Outcome:
    name = want["metadata"]["name"]
    claim_ref = want["spec"]["claimRef"]
    claim = store.actual("PersistentVolumeClaim", site.namespace, claim_ref["name"]) or {}
    if (claim.get("spec") or {}).get("volumeName") == name and (claim.get("status") or {}).get("phase") == "Bound":
        return Outcome("unchanged", "PersistentVolume", name)  # bound: it exists and serves this claim
    try:
        await kube.create(want)
        return Outcome("created", "PersistentVolume", name)
    except ApiError as exc:
        if exc.status != 409:
            raise
    if not settings.protect_volumes or not claim:
        return Outcome("unchanged", "PersistentVolume", name)  # there; the claim binds to it (or is about to)
    have = await kube.get("PersistentVolume", None, name) or {}
    ref = (have.get("spec") or {}).get("claimRef") or {}
    uid = (claim.get("metadata") or {}).get("uid")
    if ref.get("uid") and ref.get("uid") != uid and ref.get("name") == claim_ref["name"]:
        await kube.patch("PersistentVolume", None, name, {"spec": {"claimRef": {"uid": None, "resourceVersion": None}}})
        logger.info("site %s/%s: PersistentVolume %s was reserved for a deleted claim; released to the new one",
                    site.namespace, site.name, name)
        return Outcome("updated", "PersistentVolume", name, ("spec.claimRef",))
    return Outcome("unchanged", "PersistentVolume", name)
