"""Backup and restore of the content volume, the way Docker's docs do it with `--volumes-from`:
a container mounts the volume next to a backup target and runs tar.

- Backup: a CronJob whose pod mounts the site's volume read-only and the target claim, writes
  `<site>/<site>-<UTC time>.tar.gz` into the claim (to a temporary name first, so a half-written
  archive never looks complete), then keeps the newest `keep` archives of that site.
- Restore: an init container, before the seed, that unpacks an archive into the volume only if
  the volume is empty. On every later pod start the volume has content, so it does nothing: it
  never writes into a volume that has data.

The scripts are fixed strings; paths and names come as arguments (nothing from the spec is
interpolated into shell code). Tests run the same commands against temporary folders.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from httpd_operator.render.meta import LABEL_CLAIM, LABEL_INSTANCE, LABEL_MANAGED_BY, LABEL_NAME, MANAGED_BY, metadata
from httpd_operator.render.volumes import VOLUME_NAME, ResolvedVolume
from httpd_operator.spec import SiteSpec

BACKUP_SOURCE = "/backup-source"
BACKUP_TARGET = "/backup-target"
RESTORE_SOURCE = "/restore-source"
RESTORE_TARGET = "/restore-target"
# Pods of backup Jobs: never selected by the site's Service or Deployment (another name label).
BACKUP_APP = "httpd-backup"

# $1 source dir, $2 target dir, $3 site (archive prefix and sub-directory), $4 keep,
# $5 optional time stamp (tests), $6 optional file for the "name size" report (default: the
# container's termination message, which the operator reads into status.backup).
ARCHIVE_SCRIPT = r"""set -eu
src="$1" dir="$2/$3" prefix="$3" keep="$4"
stamp="${5:-$(date -u +%Y%m%dT%H%M%SZ)}" report="${6:-/dev/termination-log}"
mkdir -p "$dir"
name="$prefix-$stamp.tar.gz"
tmp="$dir/.$name.partial"
trap 'rm -f "$tmp"' EXIT
tar -C "$src" -czf "$tmp" .
mv "$tmp" "$dir/$name"
trap - EXIT
size=$(wc -c < "$dir/$name")
echo "backup: wrote $prefix/$name ($size bytes)"
ls -1 "$dir" | grep -E "^$prefix-[0-9]{8}T[0-9]{6}Z\.tar\.gz\$" | sort -r | tail -n "+$((keep + 1))" |
while IFS= read -r old; do
  rm -f "$dir/$old"
  echo "backup: removed $prefix/$old (keeping the newest $keep)"
done
printf '%s/%s %s\n' "$prefix" "$name" "$size" > "$report" || true
"""

# $1 archive file, $2 target dir (the volume).
RESTORE_SCRIPT = r"""set -eu
archive="$1" dst="$2"
if [ -n "$(ls -A "$dst" 2>/dev/null | grep -vx 'lost+found')" ]; then
  echo "restore: $dst already has content; not restoring $archive over it"
  exit 0
fi
if [ ! -f "$archive" ]; then
  echo "restore: $archive not found in the backup claim" >&2
  exit 1
fi
tar -C "$dst" -xf "$archive" --no-same-owner
echo "restore: unpacked $archive into the empty volume"
"""


def archive_command(source: str, target: str, site: str, keep: int, *extra: str) -> list[str]:
    return ["/bin/sh", "-c", ARCHIVE_SCRIPT, "archive", source, target, site, str(keep), *extra]


def restore_command(archive: str, target: str) -> list[str]:
    return ["/bin/sh", "-c", RESTORE_SCRIPT, "restore", archive, target]


def backup_labels(site: str) -> dict[str, str]:
    return {LABEL_NAME: BACKUP_APP, LABEL_INSTANCE: site, LABEL_MANAGED_BY: MANAGED_BY}


def _content_mount(resolved: ResolvedVolume, path: str, read_only: bool) -> dict[str, Any]:
    mount: dict[str, Any] = {"name": VOLUME_NAME, "mountPath": path, "readOnly": read_only}
    if resolved.sub_path:
        mount["subPath"] = resolved.sub_path
    return mount


def render_cron_job(site: SiteSpec, resolved: ResolvedVolume, api_version: str,
                    pod_security: Mapping[str, Any], container_security: Mapping[str, Any]) -> dict[str, Any] | None:
    backup = site.backup
    if backup is None:
        return None
    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": copy.deepcopy(dict(pod_security)),
        "containers": [{
            "name": "backup",
            "image": site.image,
            # Content from git: the current revision's files (tar -C follows the symlink).
            "command": archive_command(f"{BACKUP_SOURCE}/{resolved.served}" if resolved.served else BACKUP_SOURCE,
                                       BACKUP_TARGET, site.name, backup.keep),
            "securityContext": copy.deepcopy(dict(container_security)),
            "volumeMounts": [_content_mount(resolved, BACKUP_SOURCE, True),
                             {"name": "backup-target", "mountPath": BACKUP_TARGET}],
            "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"memory": "256Mi"}},
        }],
        "volumes": [{"name": VOLUME_NAME, **copy.deepcopy(dict(resolved.source))},
                    {"name": "backup-target", "persistentVolumeClaim": {"claimName": backup.claim_name}}],
    }
    if resolved.colocate and resolved.claim:
        # A ReadWriteOnce claim is attached to one node: run beside the site's pods when they exist.
        term = {"labelSelector": {"matchLabels": {LABEL_CLAIM: resolved.claim}},
                "topologyKey": "kubernetes.io/hostname"}
        pod["affinity"] = {"podAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": term}]}}
    return {
        "apiVersion": api_version,  # batch/v1, or batch/v1beta1 on clusters older than 1.21
        "kind": "CronJob",
        "metadata": metadata(site, site.name),
        "spec": {
            "schedule": backup.schedule,
            "suspend": backup.suspend,
            "concurrencyPolicy": "Forbid",
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "metadata": {"labels": backup_labels(site.name)},
                "spec": {"backoffLimit": 2,
                         "template": {"metadata": {"labels": backup_labels(site.name)}, "spec": pod}},
            },
        },
    }


def restore_container(site: SiteSpec, resolved: ResolvedVolume,
                      security: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """The restore init container and the pod volume of the claim holding the archive."""
    restore = site.volume.restore
    if restore is None:
        return None
    container = {
        "name": "restore",
        "image": site.image,
        "command": restore_command(f"{RESTORE_SOURCE}/{restore.archive}", RESTORE_TARGET),
        "securityContext": dict(security),
        "volumeMounts": [_content_mount(resolved, RESTORE_TARGET, False),
                         {"name": "restore-source", "mountPath": RESTORE_SOURCE, "readOnly": True}],
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "128Mi"}},
    }
    volume = {"name": "restore-source",
              "persistentVolumeClaim": {"claimName": restore.claim_name, "readOnly": True}}
    return container, volume
