"""Content from git (`spec.content.git`): one writer per volume, and httpd serving its `current`.

- The writer is a Deployment `<site>-content` of one pod (Recreate: never two at once, whatever
  the site's replicas and the claim's access mode), running images/git's `git-sync`: it fetches
  into the volume, checks each revision out into a directory of its own and swaps the `current`
  symlink with a rename, so a request sees the old tree or the new one, never a mix. It prints
  one JSON line per sync, which the operator reads back into status (engine/reconcile.py).
- httpd's pods mount the volume read-only and serve `<mount>/current/<subPath>` (a conf.d file
  in the site's ConfigMap); the seed is skipped. FromSite readers of the site serve the same.
- With a NetworkPolicy, the writer gets one of its own: no ingress; egress to DNS and to the
  repository's port (its address too, when the URL names one).
"""

from __future__ import annotations

import copy
import posixpath
from collections.abc import Mapping
from typing import Any

from httpd_operator.errors import SpecError
from httpd_operator.names import is_ip
from httpd_operator.render.deployment import CONTAINER_SECURITY, POD_SECURITY, setup_colocation
from httpd_operator.render.meta import LABEL_INSTANCE, LABEL_MANAGED_BY, LABEL_NAME, MANAGED_BY, metadata
from httpd_operator.render.network_policy import DNS_PORTS
from httpd_operator.render.volumes import VOLUME_NAME, ResolvedVolume
from httpd_operator.settings import Settings
from httpd_operator.spec import SiteSpec

WRITER_APP = "httpd-content"
WRITER_CONTAINER = "git-sync"
CONTENT_ROOT = "/content"      # the volume, in the writer
SECRET_DIR = "/etc/git-secret"
CURRENT = "current"            # the symlink the writer swaps (git-sync's layout)
HEARTBEAT = "/tmp/git-sync-alive"  # touched by git-sync before each sync
# A sync may take this long (a first clone of a large repository) before the writer counts as hung.
SYNC_GRACE = 600


def writer_name(site: str) -> str:
    return f"{site}-content"


def writer_labels(site: str) -> dict[str, str]:
    """The writer's pods: never selected by the site's Service, Deployment or NetworkPolicy."""
    return {LABEL_NAME: WRITER_APP, LABEL_INSTANCE: site}


def writer_selector(site: str) -> str:
    return ",".join(f"{k}={v}" for k, v in writer_labels(site).items())


def extras(site: str) -> tuple[tuple[str, str], ...]:
    """The children named apart from the site (kind, name): pruned when the spec drops git."""
    return (("Deployment", writer_name(site)), ("NetworkPolicy", writer_name(site)))


def check_writer_name(site: SiteSpec, sites: Mapping[str, SiteSpec | SpecError]) -> None:
    """A site named like another site's writer (`<other>-content`) would share that Deployment's
    name: refused on both sides, naming the other."""
    suffix = "-content"
    if site.git is not None and writer_name(site.name) in sites:
        raise SpecError("spec.content.git", f"site {writer_name(site.name)} exists: its Deployment has the name "
                        "this site's git writer needs; rename one of them", reason="NameConflict")
    owner = sites.get(site.name.removesuffix(suffix)) if site.name.endswith(suffix) else None
    if isinstance(owner, SiteSpec) and owner.git is not None:
        raise SpecError("metadata.name", f"{site.name} is the name of site {owner.name}'s git writer; rename "
                        "this site", reason="NameConflict")


def document_root(site: SiteSpec, resolved: ResolvedVolume) -> str | None:
    """Where httpd serves from when the volume's content comes from git (None: the mount)."""
    if resolved.served is None:
        return None
    return posixpath.join(site.volume.mount_path, resolved.served)


def content_config(site: SiteSpec, resolved: ResolvedVolume) -> str | None:
    """The conf.d file that points httpd at the current revision. `current` is a symlink in the
    mount (FollowSymLinks there); inside a revision, symlinks are followed only to files of the
    same owner (the writer), so a repository's link to /etc is not served."""
    root = document_root(site, resolved)
    if root is None:
        return None
    mount = site.volume.mount_path
    return (f'# Written by httpd-operator: the current revision from git (spec.content.git)\n'
            f'DocumentRoot "{root}"\n'
            f'<Directory "{mount}">\n    Options FollowSymLinks\n    AllowOverride None\n'
            f'    Require all granted\n</Directory>\n'
            f'<Directory "{posixpath.join(mount, CURRENT)}">\n    Options SymLinksIfOwnerMatch\n</Directory>\n')


def render_content_writer(site: SiteSpec, resolved: ResolvedVolume, settings: Settings) -> dict[str, Any] | None:
    git = site.git
    if git is None:
        return None
    env = [{"name": "GIT_SYNC_REPOSITORY", "value": git.repository},
           {"name": "GIT_SYNC_REF", "value": git.ref},
           {"name": "GIT_SYNC_INTERVAL", "value": str(git.interval)},
           {"name": "GIT_SYNC_DEPTH", "value": str(git.depth)},
           {"name": "GIT_SYNC_ROOT", "value": CONTENT_ROOT},
           {"name": "HOME", "value": "/tmp"}]
    mount: dict[str, Any] = {"name": VOLUME_NAME, "mountPath": CONTENT_ROOT}
    if resolved.sub_path:
        mount["subPath"] = resolved.sub_path
    mounts = [mount, {"name": "tmp", "mountPath": "/tmp"}]
    volumes: list[dict[str, Any]] = [{"name": VOLUME_NAME, **copy.deepcopy(dict(resolved.source))},
                                     {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]
    if git.secret_name:
        env.append({"name": "GIT_SYNC_SECRET", "value": SECRET_DIR})
        mounts.append({"name": "git-secret", "mountPath": SECRET_DIR, "readOnly": True})
        volumes.append({"name": "git-secret", "secret": {"secretName": git.secret_name, "defaultMode": 0o440}})
    labels = {**writer_labels(site.name), LABEL_MANAGED_BY: MANAGED_BY}
    pod: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": 10,
        "securityContext": copy.deepcopy(POD_SECURITY),
        "containers": [{
            "name": WRITER_CONTAINER,
            "image": settings.git_image,
            "env": env,
            "securityContext": copy.deepcopy(CONTAINER_SECURITY),
            "volumeMounts": mounts,
            "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"memory": "256Mi"}},
            # Ready once a revision is served; alive while its loop comes round (a hung fetch does not).
            "readinessProbe": {"exec": {"command": ["test", "-L", posixpath.join(CONTENT_ROOT, CURRENT)]},
                               "periodSeconds": 10},
            "livenessProbe": {"exec": {"command": [
                "/bin/sh", "-c", 'test $(($(date +%s) - $(stat -c %Y "$1"))) -lt "$2"', "alive", HEARTBEAT,
                str(git.interval + SYNC_GRACE)]}, "periodSeconds": 30, "timeoutSeconds": 5, "failureThreshold": 3},
        }],
        "volumes": volumes,
    }
    if site.node_selector:
        pod["nodeSelector"] = dict(site.node_selector)
    if site.tolerations:
        pod["tolerations"] = [dict(t) for t in site.tolerations]
    deployment = {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {**metadata(site, writer_name(site.name)), "labels": labels},
        "spec": {
            # Exactly one writer per volume: one pod, and the old one gone before a new one starts.
            "replicas": 1,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": writer_labels(site.name)},
            "template": {"metadata": {"labels": dict(labels)}, "spec": pod},
        },
    }
    setup_colocation(resolved, deployment)  # a node-bound volume: beside the site's pods
    return deployment


def render_content_network_policy(site: SiteSpec) -> dict[str, Any] | None:
    git = site.git
    if git is None or site.network_policy is None:
        return None
    repository: dict[str, Any] = {"ports": [{"protocol": "TCP", "port": git.port}]}
    if is_ip(git.host):
        repository["to"] = [{"ipBlock": {"cidr": f"{git.host}/{32 if '.' in git.host else 128}"}}]
    return {
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": metadata(site, writer_name(site.name)),
        "spec": {"podSelector": {"matchLabels": writer_labels(site.name)},
                 # no ingress rule at all denies every connection in; an empty list would be
                 # the same, but kube-apiserver drops it, and the diff then patched it back for ever
                 "policyTypes": ["Ingress", "Egress"],
                 "egress": [{"ports": [dict(p) for p in DNS_PORTS]}, repository]},
    }
