"""The content volume: which storage a site's pods mount, and the claim the operator owns.

Docker's storage ideas map onto Kubernetes primitives here: a managed named volume is a claim
the operator creates; a bind mount is a hostPath; `--volumes-from` is FromSite; an anonymous
volume is an emptyDir; NFS is the volume that lets a pod move to any node and keep its data.
"""

from __future__ import annotations

import dataclasses
import hashlib
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from httpd_operator.errors import SpecError
from httpd_operator.render.meta import ANNOTATION_RECLAIM, LABEL_SITE, claim_name, labels, metadata
from httpd_operator.settings import DOCUMENT_ROOT
from httpd_operator.spec import SiteSpec, VolumeSpec

VOLUME_NAME = "htdocs"
SEED_MOUNT = "/seed-target"
# Reasons for which a site waits (phase Pending) rather than fails: the fix is elsewhere.
WAITING_REASONS = frozenset({"SourceSiteNotFound", "SourceSiteEphemeral", "SourceSiteInvalid"})

# Copies the image's own document root ($1) into an empty volume ($2), as Docker does for a new
# named volume. `cp -n` never overwrites, so two pods seeding at once cannot clobber each other,
# and content written by users is never touched; a file system's own lost+found does not count.
# The paths come as arguments; nothing from the spec is ever interpolated into the script.
SEED_SCRIPT = """set -eu
src="$1" dst="$2"
if [ -n "$(ls -A "$dst" 2>/dev/null | grep -vx 'lost+found')" ]; then
  echo "seed: $dst is not empty, left as it is"
else
  cp -Rn "$src/." "$dst/"
  echo "seed: copied $src into the empty volume"
fi
"""


def seed_command(source: str = DOCUMENT_ROOT, target: str = SEED_MOUNT) -> list[str]:
    """The seed init container's command (tests run the same list against temporary folders)."""
    return ["/bin/sh", "-c", SEED_SCRIPT, "seed", source, target]


@dataclass(frozen=True)
class ResolvedVolume:
    """What the pods of a site mount, after following FromSite to the site that owns the data."""

    source: Mapping[str, Any]            # a pod volume source, e.g. {"persistentVolumeClaim": ...}
    type: str                            # the owning site's volume type
    claim: str | None = None             # the claim mounted, if any
    sub_path: str | None = None
    description: str = ""                # host path, NFS server:path, or source site
    colocate: bool = False               # pods must share a node (ReadWriteOnce, host path)
    single_pod: bool = False             # ReadWriteOncePod: one pod at a time
    access_modes: tuple[str, ...] = field(default_factory=tuple)
    served: str | None = None            # content from git: the directory served ("current/...")


def _own_source(site: SiteSpec, volume: VolumeSpec) -> ResolvedVolume:
    modes = volume.access_modes
    rwo_only = not ({"ReadWriteMany", "ReadOnlyMany"} & set(modes))
    if volume.type in ("Managed", "ExistingClaim"):
        claim = claim_name(site.name) if volume.type == "Managed" else volume.claim_name
        return ResolvedVolume(
            source={"persistentVolumeClaim": {"claimName": claim}}, type=volume.type, claim=claim,
            sub_path=volume.sub_path, description=f"claim {claim}", colocate=rwo_only,
            single_pod="ReadWriteOncePod" in modes, access_modes=modes)
    if volume.type == "HostPath":
        return ResolvedVolume(
            source={"hostPath": {"path": volume.host_path, "type": volume.host_path_type}},
            type="HostPath", sub_path=volume.sub_path, description=f"host path {volume.host_path}",
            colocate=True)
    if volume.type == "NFS":
        claim = nfs_names(site)[1]
        return ResolvedVolume(
            source={"persistentVolumeClaim": {"claimName": claim}}, type="NFS", claim=claim,
            sub_path=volume.sub_path, description=f"{volume.nfs_server}:{volume.nfs_path}",
            access_modes=("ReadWriteMany",))
    empty: dict[str, Any] = {}
    if volume.size_limit:
        empty["sizeLimit"] = volume.size_limit
    if volume.medium:
        empty["medium"] = volume.medium
    return ResolvedVolume(source={"emptyDir": empty}, type="Ephemeral", sub_path=volume.sub_path,
                          description="emptyDir: deleted with the pod")


def _served(site: SiteSpec) -> str | None:
    if site.git is None:
        return None
    return posixpath.join("current", site.git.sub_path) if site.git.sub_path else "current"


def resolve_volume(site: SiteSpec, sites: Mapping[str, SiteSpec | SpecError]) -> ResolvedVolume:
    """Follow `fromSite` links to the site that owns the data; `sites` are the namespace's sites."""
    seen = [site.name]
    current = site
    subs: list[str] = [site.volume.sub_path] if site.volume.sub_path else []
    while current.volume.type == "FromSite":
        target = current.volume.from_site or ""
        field_ = "spec.volume.fromSite"
        if target in seen:
            raise SpecError(field_, f"sites share volumes in a cycle: {' -> '.join([*seen, target])}",
                            reason="FromSiteCycle")
        source = sites.get(target)
        if source is None:
            raise SpecError(field_, f"site {target!r} does not exist in namespace "
                            f"{site.namespace}; waiting for it", reason="SourceSiteNotFound")
        if isinstance(source, SpecError):
            raise SpecError(field_, f"site {target!r} is invalid ({source.message}); waiting for "
                            "it to be fixed", reason="SourceSiteInvalid")
        if source.volume.type == "Ephemeral":
            raise SpecError(field_, f"site {target!r} has an Ephemeral volume, which lives and dies "
                            "with each of its pods and cannot be shared", reason="SourceSiteEphemeral")
        seen.append(target)
        current = source
        if current.volume.sub_path:
            subs.insert(0, current.volume.sub_path)
    owner = _own_source(current, current.volume)
    sub_path = posixpath.join(*subs) if subs else None
    served = _served(current)
    if served and owner.single_pod:
        raise SpecError("spec.volume.accessModes", "ReadWriteOncePod allows one pod, and content from git needs "
                        "two (the writer and httpd)", reason="AccessModeConflict")
    if current is site:
        return dataclasses.replace(owner, served=served)
    if served and site.volume.sub_path:
        raise SpecError("spec.volume.subPath", f"site {current.name}'s content comes from git and is served "
                        "whole: set subPath in its spec.content.git instead")
    return ResolvedVolume(
        source=owner.source, type="FromSite", claim=owner.claim, sub_path=sub_path,
        description=f"site {current.name} ({owner.description})", colocate=owner.colocate,
        single_pod=owner.single_pod, access_modes=owner.access_modes, served=served)


# On an NFS site's PersistentVolume (cluster-scoped, so no owner reference can name the site).
LABEL_NAMESPACE = "httpd.dev/namespace"


def nfs_names(site: SiteSpec) -> tuple[str, str]:
    """The PersistentVolume and the claim of an NFS site. Both name the export by a hash: a
    volume's source and a claim's volumeName are immutable, so another export is another pair."""
    volume = site.volume
    digest = hashlib.sha256(f"{site.namespace}/{site.name}/{volume.nfs_server}:{volume.nfs_path}".encode())
    short = digest.hexdigest()[:8]
    return f"hs-{site.namespace}-{site.name}-{short}", f"{site.name}-nfs-{short}"


def render_nfs_volume(site: SiteSpec) -> dict[str, Any] | None:
    """An NFS site's PersistentVolume: the export, reserved for the site's claim by claimRef,
    Retain (Kubernetes never scrubs or deletes it, so the export's files are never touched), and
    storage class "" (no provisioner makes or takes it). The pod then mounts a claim, which the
    Pod Security Standards' restricted profile allows, where an inline `nfs:` volume is refused."""
    volume = site.volume
    if volume.type != "NFS":
        return None
    pv, claim = nfs_names(site)
    return {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": pv, "labels": {**labels(site.name), LABEL_SITE: site.name,
                                            LABEL_NAMESPACE: site.namespace}},
        "spec": {
            "capacity": {"storage": volume.size},
            "accessModes": ["ReadWriteMany"],
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": "",
            "volumeMode": "Filesystem",
            "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": site.namespace,
                         "name": claim},
            "nfs": {"server": volume.nfs_server, "path": volume.nfs_path},
        },
    }


def render_claim(site: SiteSpec) -> dict[str, Any] | None:
    """The claim a Managed or NFS site owns; Retain claims carry no owner reference, so they
    outlive it. An NFS site's claim binds to its own PersistentVolume by name."""
    volume = site.volume
    if volume.type not in ("Managed", "NFS"):
        return None
    name = claim_name(site.name) if volume.type == "Managed" else nfs_names(site)[1]
    meta = metadata(site, name, owned=volume.reclaim_policy == "Delete")
    meta["labels"][LABEL_SITE] = site.name
    meta["annotations"] = {ANNOTATION_RECLAIM: volume.reclaim_policy}
    spec: dict[str, Any] = {
        "accessModes": list(volume.access_modes),
        "resources": {"requests": {"storage": volume.size}},
    }
    if volume.type == "NFS":
        spec.update(accessModes=["ReadWriteMany"], storageClassName="", volumeName=nfs_names(site)[0])
        return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta, "spec": spec}
    if volume.storage_class_name is not None:
        spec["storageClassName"] = volume.storage_class_name
    if volume.volume_mode:
        spec["volumeMode"] = volume.volume_mode
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": meta, "spec": spec}


def content_mount(site: SiteSpec, resolved: ResolvedVolume) -> dict[str, Any]:
    mount: dict[str, Any] = {"name": VOLUME_NAME, "mountPath": site.volume.mount_path}
    if resolved.sub_path:
        mount["subPath"] = resolved.sub_path
    if site.volume.read_only or resolved.served is not None:
        mount["readOnly"] = True  # content from git: only its writer writes
    return mount


def seed_container(site: SiteSpec, resolved: ResolvedVolume, image: str,
                   security: Mapping[str, Any]) -> dict[str, Any] | None:
    """The init container that seeds an empty volume with the image's document root."""
    if site.volume.seed != "IfEmpty" or site.volume.read_only or resolved.served is not None:
        return None  # content from git: the writer fills the volume
    mount: dict[str, Any] = {"name": VOLUME_NAME, "mountPath": SEED_MOUNT}
    if resolved.sub_path:
        mount["subPath"] = resolved.sub_path
    return {
        "name": "seed",
        "image": image,
        "command": seed_command(),
        "securityContext": dict(security),
        "volumeMounts": [mount],
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"},
                      "limits": {"memory": "64Mi"}},
    }
