"""Create or patch one child, or delete one the spec no longer asks for: each answers an `Outcome`.

A patch carries only the fields that differ (`diff.merge_patch`): fields the API server or other
tools added are left alone. A child found in shape is not diffed again while neither it nor what
the site wants has changed. A claim change the server refuses is reported and not sent again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from httpd_operator.diff import is_subset, merge_patch
from httpd_operator.engine.claims import claim_changes, refused
from httpd_operator.engine.memory import SiteMemory
from httpd_operator.engine.store import Store, resource_version
from httpd_operator.kube import ApiError, Kube
from httpd_operator.render import Rendered
from httpd_operator.render.config import ANNOTATION_CHECKSUM
from httpd_operator.spec import SiteSpec


@dataclass(frozen=True)
class Outcome:
    """What applying one child did, and a VolumeSynced=False condition when a change was refused."""

    action: str  # created | updated | deleted | unchanged | refused
    kind: str
    name: str
    fields: tuple[str, ...] = ()  # the paths an update patched
    note: dict[str, Any] | None = None

    @property
    def changed(self) -> bool:
        return self.action in ("created", "updated", "deleted")

    def __str__(self) -> str:
        return f"{self.action} {self.kind} {self.name}" + (f" ({', '.join(self.fields)})" if self.fields else "")


# Creates of these kinds at once, whatever the sites in flight. A Service's ClusterIP comes from one
# range that kube-apiserver keeps in one etcd key, updated with optimistic concurrency: concurrent
# creates retry each other (1,000 sites, 16 in flight: p50 0.8 s a Service, 0.015 s a claim).
CREATES_IN_FLIGHT = {"Service": 4}


class Applier:
    def __init__(self, kube: Kube, store: Store) -> None:
        self.kube, self.store = kube, store
        self._gates = {kind: asyncio.Semaphore(n) for kind, n in CREATES_IN_FLIGHT.items()}

    async def _create(self, want: dict[str, Any]) -> dict[str, Any]:
        gate = self._gates.get(want["kind"])
        if gate is None:
            return await self.kube.create(want)
        async with gate:
            return await self.kube.create(want)

    async def apply(self, memory: SiteMemory, site: SiteSpec, want: dict[str, Any], wanted: Any = None) -> Outcome:
        """Create or patch one child. `wanted`: what the wanted state depends on (None: always diff)."""
        kind, meta = want["kind"], want["metadata"]
        child = (kind, meta["namespace"], meta["name"])
        in_shape = memory.in_shape.get((kind, meta["name"])) if wanted is not None else None
        if in_shape is not None and in_shape[:2] == (self.store.version(*child), wanted):
            return Outcome("unchanged", kind, meta["name"], note=in_shape[2])  # neither it nor the want changed
        have = self.store.actual(*child)
        if have is None:
            try:
                self.store.remember(await self._create(want))
                if kind == "PersistentVolumeClaim":
                    memory.created_claim = meta["name"]
                return Outcome("created", kind, meta["name"])
            except ApiError as exc:
                if exc.status != 409:
                    raise
                have = await self.kube.get(kind, meta["namespace"], meta["name"], want.get("apiVersion"))
                if have is None:
                    raise
                self.store.remember(have)
        note = None
        if kind == "PersistentVolumeClaim":
            want, note = claim_changes(site, want, have)
        want = without_stale(kind, want, have)
        if is_subset(want, have):
            if wanted is not None:
                memory.in_shape[(kind, meta["name"])] = (resource_version(have), wanted, note)
            return Outcome("unchanged", kind, meta["name"], note=note)
        patch = merge_patch(want, have)
        if want["metadata"].get("ownerReferences") == []:
            patch.setdefault("metadata", {})["ownerReferences"] = None  # Retain: no owner at all
        refusal_key = (kind, meta["name"], repr(patch))
        if refusal_key in memory.refused:
            return Outcome("refused", kind, meta["name"], note=memory.refused[refusal_key])
        try:
            self.store.remember(await self.kube.patch(kind, meta["namespace"], meta["name"], patch,
                                                      api_version=want.get("apiVersion")))
        except ApiError as exc:
            if kind != "PersistentVolumeClaim" or exc.status not in (403, 422):
                raise
            # Not sent again until the spec asks for something else.
            memory.refused[refusal_key] = refused(meta["name"], patch, exc)
            return Outcome("refused", kind, meta["name"], note=memory.refused[refusal_key])
        return Outcome("updated", kind, meta["name"], tuple(sorted(paths(patch))), note)

    async def prune(self, rendered: Rendered, optional: tuple[str, ...],
                    named: tuple[tuple[str, str], ...] = ()) -> list[Outcome]:
        """Delete children the spec no longer asks for (only ones this site controls): the optional
        kinds named like the site, and the `named` (kind, name) pairs (the git writer's)."""
        site = rendered.site
        wanted = {(o["kind"], o["metadata"]["name"]) for o in rendered.objects}
        done = []
        for kind, name in [*((k, site.name) for k in optional), *named]:
            have = self.store.actual(kind, site.namespace, name)
            refs = ((have or {}).get("metadata") or {}).get("ownerReferences") or []
            if (kind, name) in wanted or have is None or not any(r.get("uid") == site.uid for r in refs):
                continue
            await self.kube.delete(kind, site.namespace, name, api_version=have.get("apiVersion"))
            self.store.deleted(kind, site.namespace, name, (have.get("metadata") or {}).get("uid"))
            done.append(Outcome("deleted", kind, name))
        return done


def without_stale(kind: str, want: dict[str, Any], have: Mapping[str, Any]) -> dict[str, Any]:
    """Keys the operator owns that the spec no longer asks for are removed, not left behind:
    a ConfigMap's files, and the config checksum on a Deployment's pod template."""
    if kind == "ConfigMap":
        stale = {k: None for k in have.get("data") or {} if k not in want["data"]}
        return {**want, "data": {**want["data"], **stale}} if stale else want
    if kind == "Deployment":
        have_notes = (((have.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("annotations") or {}
        template = want["spec"]["template"]
        if ANNOTATION_CHECKSUM in have_notes and ANNOTATION_CHECKSUM not in template["metadata"].get("annotations", {}):
            annotations = {**template["metadata"].get("annotations", {}), ANNOTATION_CHECKSUM: None}
            template = {**template, "metadata": {**template["metadata"], "annotations": annotations}}
            return {**want, "spec": {**want["spec"], "template": template}}
    return want


def paths(patch: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """The fields a patch sets, for the Applied event ("spec.replicas")."""
    for key, value in patch.items():
        if isinstance(value, Mapping) and value and key in ("metadata", "spec", "template"):
            yield from paths(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}"
