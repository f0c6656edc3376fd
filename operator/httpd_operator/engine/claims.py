"""The content volume's claim: what may change on it, its volume's protection, and sharing.

Only metadata and growth may change on an existing claim; anything else is reported, never forced
by deleting and re-creating it. A Retain claim's bound volume is made Retain too, so a claim
deleted by hand keeps its data. A site mounting another site's Delete claim becomes one of its
owners, so garbage collection removes the claim only with its last user.
"""

from __future__ import annotations

import logging
from typing import Any

from httpd_operator.engine.memory import SiteMemory
from httpd_operator.engine.store import Store
from httpd_operator.kube import ApiError, Kube
from httpd_operator.quantity import QuantityError, parse_quantity
from httpd_operator.render import Rendered
from httpd_operator.render.meta import owner_reference
from httpd_operator.settings import Settings
from httpd_operator.spec import SiteSpec
from httpd_operator.status import condition

logger = logging.getLogger("httpd_operator")


def claim_changes(site: SiteSpec, want: dict[str, Any], have: dict[str, Any]
                  ) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """What may be applied to an existing claim, and a VolumeSynced=False condition for the rest.

    Owner references of other sites (sites sharing a Delete claim, see `Claims.share`) are kept,
    so garbage collection waits until no site uses the claim."""
    hspec = have.get("spec") or {}
    wspec = want["spec"]
    had = (have.get("metadata") or {}).get("ownerReferences") or []
    refs = [r for r in had if r.get("uid") != site.uid] + (want["metadata"].get("ownerReferences") or [])
    meta = {k: v for k, v in want["metadata"].items() if k != "ownerReferences"}
    if refs or had:
        meta["ownerReferences"] = refs  # [] removes the site's own reference (Retain)
    allowed: dict[str, Any] = {"metadata": meta}
    problems = []
    for field_ in ("storageClassName", "accessModes", "volumeMode"):
        if field_ in wspec and field_ in hspec and wspec[field_] != hspec[field_]:
            problems.append(f"spec.volume.{field_} is {wspec[field_]!r} but claim "
                            f"{want['metadata']['name']} has {hspec[field_]!r}, which Kubernetes "
                            "cannot change on an existing claim")
    wsize = wspec["resources"]["requests"]["storage"]
    hsize = ((hspec.get("resources") or {}).get("requests") or {}).get("storage", "0")
    try:
        grow = parse_quantity(wsize) > parse_quantity(hsize)
        shrink = parse_quantity(wsize) < parse_quantity(hsize)
    except QuantityError:
        grow = shrink = False
    if grow:
        allowed["spec"] = {"resources": {"requests": {"storage": wsize}}}
    if shrink:
        problems.append(f"spec.volume.size {wsize} is smaller than the claim's {hsize}; "
                        "claims can grow but never shrink, so it was left as it is")
        return allowed, condition("VolumeSynced", False, "ShrinkRefused", problems[-1])
    if problems:
        return allowed, condition("VolumeSynced", False, "ImmutableField", "; ".join(problems))
    return allowed, None


def refused(claim: str, patch: dict[str, Any], exc: ApiError) -> dict[str, Any]:
    """The condition for a claim change the server refused (e.g. a class that cannot expand)."""
    return condition("VolumeSynced", False, "ResizeRefused" if "spec" in patch else "ClaimUpdateRefused",
                     f"claim {claim}: the API server refused the change: {exc.message}")


class Claims:
    """The writes about claims and volumes beyond creating or patching the site's own claim."""

    def __init__(self, kube: Kube, store: Store, settings: Settings) -> None:
        self.kube, self.store, self.settings = kube, store, settings

    async def protect(self, memory: SiteMemory, rendered: Rendered) -> None:
        """Retain claims: make the bound PersistentVolume outlive a claim deleted by hand too.

        Dynamically provisioned volumes default to Delete. A volume provisioned for a claim this
        run created is patched straight away (the patch is idempotent); any other is read first
        and patched only when needed, so a restarted operator on a converged cluster writes nothing.
        """
        site = rendered.site
        if not self.settings.protect_volumes or site.volume.type != "Managed" or \
                site.volume.reclaim_policy != "Retain":
            return
        claim = self.store.actual("PersistentVolumeClaim", site.namespace, rendered.volume.claim or "")
        if claim is None or (claim.get("status") or {}).get("phase") != "Bound":
            return
        volume = (claim.get("spec") or {}).get("volumeName")
        if not volume or volume == memory.protected:
            return
        fresh = rendered.volume.claim == memory.created_claim
        pv = None if fresh else await self.kube.get("PersistentVolume", None, volume)
        if fresh or pv is not None and (pv.get("spec") or {}).get("persistentVolumeReclaimPolicy") != "Retain":
            try:
                await self.kube.patch("PersistentVolume", None, volume,
                                      {"spec": {"persistentVolumeReclaimPolicy": "Retain"}})
            except ApiError as exc:
                if exc.status != 404:
                    raise
                return  # gone already (a static volume deleted by hand): nothing left to protect
            memory.created_claim = None
            logger.info("site %s/%s: set PersistentVolume %s's reclaim policy to Retain",
                        site.namespace, site.name, volume)
        memory.protected = volume

    async def share(self, rendered: Rendered) -> None:
        """A site mounting another site's Delete claim becomes one of its owners, so deleting the
        source site never deletes data this site still serves (the claim goes with its last owner)."""
        site = rendered.site
        if site.volume.type != "FromSite" or not rendered.volume.claim:
            return
        claim = self.store.actual("PersistentVolumeClaim", site.namespace, rendered.volume.claim)
        refs = ((claim or {}).get("metadata") or {}).get("ownerReferences") or []
        if not refs or any(r.get("uid") == site.uid for r in refs):
            return  # not owned by anyone (Retain: kept anyway), or already shared
        mine = {**owner_reference(site), "controller": False, "blockOwnerDeletion": False}
        meta = claim["metadata"]  # type: ignore[index]
        self.store.remember(await self.kube.patch("PersistentVolumeClaim", meta["namespace"], meta["name"],
                                                  {"metadata": {"ownerReferences": [*refs, mine]}}))
        logger.info("site %s/%s: shares claim %s, added as an owner", site.namespace, site.name, meta["name"])
