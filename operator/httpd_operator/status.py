"""A site's status from what the operator observed: pure, so every transition is unit-tested.

Conditions follow Kubernetes' conventions (type/status/reason/message/lastTransitionTime); the
transition time moves only when a condition's status changes, so a steady site writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from httpd_operator.errors import SpecError
from httpd_operator.render import Rendered
from httpd_operator.render.ingress import ingress_url
from httpd_operator.render.meta import selector_labels
from httpd_operator.render.service import service_url
from httpd_operator.render.volumes import WAITING_REASONS
from httpd_operator.spec import SiteSpec


@dataclass(frozen=True)
class Observed:
    """The children as the operator last saw them (None: absent)."""

    claim: Mapping[str, Any] | None = None
    deployment: Mapping[str, Any] | None = None
    ingress: Mapping[str, Any] | None = None
    cron_job: Mapping[str, Any] | None = None
    jobs: tuple[Mapping[str, Any], ...] = ()          # the site's backup Jobs (summaries)
    archive: tuple[str, int] | None = None            # the newest successful backup's (name, size)
    content: Mapping[str, Any] | None = None          # the git writer's last sync record (its log)


def condition(type_: str, ok: bool, reason: str, message: str) -> dict[str, Any]:
    return {"type": type_, "status": "True" if ok else "False", "reason": reason, "message": message}


def _volume_status(rendered: Rendered, observed: Observed) -> tuple[dict[str, Any], dict[str, Any]]:
    """status.volume and the VolumeReady condition."""
    site, resolved = rendered.site, rendered.volume
    vol = site.volume
    info: dict[str, Any] = {
        "type": vol.type,
        "mountPath": vol.mount_path,
        "readOnly": vol.read_only,
        "seed": vol.seed,
        "persistent": resolved.type not in ("Ephemeral",),
        "source": resolved.description,
    }
    if resolved.claim:
        info["claimName"] = resolved.claim
    if vol.type in ("Managed", "NFS"):
        info["retained"] = vol.reclaim_policy == "Retain"
    if resolved.type == "Ephemeral":
        info["phase"] = "Ready"
        info["message"] = "emptyDir: the content is deleted with each pod (no persistence)"
        info["summary"] = "Ephemeral"
        return info, condition("VolumeReady", True, "Ephemeral", info["message"])
    if not resolved.claim:
        info["phase"] = "Ready"
        info["summary"] = f"{vol.type} {resolved.description.split(' ', 2)[-1]}"
        return info, condition("VolumeReady", True, "Mounted", f"pods mount {resolved.description}")
    claim = observed.claim
    if claim is None:
        info["phase"] = "Pending"
        info["summary"] = f"{resolved.claim} (Missing)"
        if vol.type in ("ExistingClaim", "FromSite"):
            msg = f"claim {resolved.claim} does not exist; waiting for it"
            return info, condition("VolumeReady", False, "ClaimNotFound", msg)
        return info, condition("VolumeReady", False, "ClaimCreating", f"creating claim {resolved.claim}")
    cstatus = claim.get("status") or {}
    phase = cstatus.get("phase") or "Pending"
    info["phase"] = phase
    info["summary"] = f"{resolved.claim} ({phase})"
    if capacity := (cstatus.get("capacity") or {}).get("storage"):
        info["capacity"] = str(capacity)
    cspec = claim.get("spec") or {}
    if cspec.get("storageClassName"):
        info["storageClassName"] = cspec["storageClassName"]
    info["accessModes"] = list(cstatus.get("accessModes") or cspec.get("accessModes") or [])
    if phase == "Bound":
        return info, condition("VolumeReady", True, "Bound", f"claim {resolved.claim} is Bound")
    if phase == "Lost":
        msg = f"claim {resolved.claim} lost its PersistentVolume; the data may be gone"
        return info, condition("VolumeReady", False, "ClaimLost", msg)
    msg = f"claim {resolved.claim} is {phase}, waiting for a PersistentVolume"
    return info, condition("VolumeReady", False, "ClaimPending", msg)


def _deployment_conditions(rendered: Rendered, deployment: Mapping[str, Any] | None
                           ) -> tuple[int, int, dict[str, Any], bool, bool]:
    """(replicas, ready, Available condition, rolled out, stuck) of the Deployment."""
    desired = rendered.site.replicas
    if deployment is None:
        return 0, 0, condition("Available", False, "DeploymentCreating", "creating the Deployment"), False, False
    dstatus = deployment.get("status") or {}
    replicas = int(dstatus.get("replicas") or 0)
    ready = int(dstatus.get("readyReplicas") or 0)
    available = int(dstatus.get("availableReplicas") or 0)
    updated = int(dstatus.get("updatedReplicas") or 0)
    generation = (deployment.get("metadata") or {}).get("generation")
    seen = dstatus.get("observedGeneration")
    current = generation is None or seen == generation
    rolled_out = current and updated >= desired and ready >= desired and replicas <= desired
    stuck = any(c.get("type") == "Progressing" and c.get("status") == "False"
                for c in dstatus.get("conditions") or [])
    if desired == 0:
        avail = condition("Available", False, "ScaledToZero", "spec.replicas is 0")
    elif available > 0:
        avail = condition("Available", True, "MinimumReplicasAvailable",
                          f"{available} of {desired} pods available")
    else:
        avail = condition("Available", False, "NoPodsAvailable", f"0 of {desired} pods available")
    return replicas, ready, avail, rolled_out, stuck


def network_policy_summary(site: SiteSpec) -> str | None:
    """What the site's NetworkPolicy allows, and that only a policy-aware network plugin enforces it."""
    policy = site.network_policy
    if policy is None:
        return None
    http = "from the named peers" if policy.http_from else "from anywhere"
    parts = [f"http {http}"]
    if site.metrics.enabled:
        parts.append(f"metrics from {', '.join(policy.metrics_namespaces)}" if policy.metrics_namespaces
                     else "metrics from nowhere")
    parts.append("egress DNS only" if policy.egress == "DNSOnly" else "egress open")
    return f"NetworkPolicy {site.name}: {'; '.join(parts)} (enforced only where the network plugin implements " \
        "NetworkPolicy)"


def desired_status(body: Mapping[str, Any], result: Rendered | SpecError,
                   observed: Observed) -> dict[str, Any]:
    """The status the site should have, without transition times (see `merge_conditions`)."""
    meta = body.get("metadata") or {}
    name = meta.get("name", "")
    status: dict[str, Any] = {
        "observedGeneration": int(meta.get("generation") or 0),
        "selector": ",".join(f"{k}={v}" for k, v in selector_labels(name).items()),
    }
    if isinstance(result, SpecError):
        waiting = result.reason in WAITING_REASONS
        status["phase"] = "Pending" if waiting else "Failed"
        status["conditions"] = [condition("Ready", False, result.reason, result.message)]
        return status
    site = result.site
    volume, volume_ready = _volume_status(result, observed)
    replicas, ready, available, rolled_out, stuck = _deployment_conditions(result, observed.deployment)
    dstatus = (observed.deployment or {}).get("status") or {}
    status.update(replicas=replicas, readyReplicas=ready, updatedReplicas=int(dstatus.get("updatedReplicas") or 0),
                  ready=f"{ready}/{site.replicas}", image=site.image,
                  url=ingress_url(site, observed.ingress) or service_url(site), volume=volume)
    if (policy := network_policy_summary(site)) is not None:
        status["networkPolicy"] = policy
    content, content_condition = content_status(site, observed.content)
    if content is not None:
        status["content"] = content
    backup, backup_condition = _backup_status(result, observed)
    if backup is not None:
        status["backup"] = backup
    if volume_ready["reason"] == "ClaimLost":
        phase, reason, message = "Degraded", "VolumeLost", volume_ready["message"]
    elif stuck:
        phase, reason, message = "Degraded", "ProgressDeadlineExceeded", \
            f"the new pods did not become ready ({int(dstatus.get('updatedReplicas') or 0)} updated); pods of " \
            "the previous version keep serving. A config httpd rejects or an image that does not start: " \
            "see the pods' logs and events"
    elif volume_ready["status"] == "True" and rolled_out:
        phase, reason, message = "Ready", "Ready", f"{ready}/{site.replicas} pods ready"
        if result.volume.colocate and site.replicas > 1:
            message += f"; placed on one node because {result.volume.description} is node-bound"
    elif volume_ready["status"] != "True":  # pods cannot start without their volume
        phase, reason, message = "Pending", volume_ready["reason"], volume_ready["message"]
    elif ready < site.replicas and ready > 0 and not _progressing(observed.deployment, site.replicas):
        phase, reason, message = "Degraded", "ReplicasUnavailable", f"{ready}/{site.replicas} pods ready"
    else:
        phase, reason, message = "Progressing", "RollingOut", f"{ready}/{site.replicas} pods ready"
    status["phase"] = phase
    status["conditions"] = [
        condition("Ready", phase == "Ready", reason, message),
        volume_ready,
        available,
    ]
    if backup_condition is not None:
        status["conditions"].append(backup_condition)
    if content_condition is not None:
        status["conditions"].append(content_condition)
    return status


# Why a sync failed, as git-sync reports it (images/git/git-sync).
CONTENT_REASONS = {
    "AuthRefused": "the repository refused the credentials (or there were none it accepts); check "
                   "spec.content.git.secretName",
    "UnknownRef": "the ref is not in the repository",
    "Unreachable": "the repository's host could not be reached",
    "NotARepository": "the URL names no git repository",
}


def content_status(site: SiteSpec, record: Mapping[str, Any] | None
                   ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """status.content and the ContentSynced condition, from the writer's last JSON line. A failed
    sync keeps the revision that serves (the writer never switches to a tree it did not finish)."""
    git = site.git
    if git is None:
        return None, None
    info: dict[str, Any] = {"repository": git.repository, "ref": git.ref}
    record = record or {}
    for key, field_ in (("revision", "revision"), ("syncTime", "lastSyncTime"), ("changeTime", "lastChangeTime")):
        if isinstance(record.get(key), str) and record[key]:
            info[field_] = record[key]
    error = record.get("error")
    if not record:
        return info, {"type": "ContentSynced", "status": "Unknown", "reason": "Pending",
                      "message": f"waiting for the writer's first sync of {git.repository}"}
    if error:
        reason = str(error) if str(error) in CONTENT_REASONS else "SyncFailed"
        detail = str(record.get("message") or "")[:512]
        serving = f"; revision {info['revision'][:12]} keeps serving" if info.get("revision") else \
            "; nothing served yet"
        message = f"{CONTENT_REASONS.get(reason, 'the sync failed')}: {git.repository} {git.ref}" + \
            (f" ({detail})" if detail else "") + serving
        return info, condition("ContentSynced", False, reason, message)
    return info, condition("ContentSynced", True, "Synced",
                           f"revision {info.get('revision', '?')[:12]} of {git.ref} from {git.repository}")


def _backup_status(rendered: Rendered, observed: Observed) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """status.backup (like `kubectl get cronjob` plus the archive), and the LastBackupSucceeded
    condition once a backup Job has finished."""
    backup = rendered.site.backup
    if backup is None:
        return None, None
    info: dict[str, Any] = {"schedule": backup.schedule, "claimName": backup.claim_name, "keep": backup.keep,
                            "suspended": backup.suspend}
    scheduled = ((observed.cron_job or {}).get("status") or {}).get("lastScheduleTime")
    if scheduled:
        info["lastScheduleTime"] = scheduled
    done = [j for j in observed.jobs if j.get("state") in ("Complete", "Failed")]
    good = [j for j in done if j["state"] == "Complete"]
    if good:
        newest = max(good, key=lambda j: (j.get("completionTime") or "", j["name"]))
        info["lastSuccessfulTime"] = newest.get("completionTime")
        info["lastJob"] = newest["name"]
        if observed.archive:
            info["lastArchive"], info["lastArchiveSize"] = observed.archive
    if not done:
        return info, None
    last = max(done, key=lambda j: (j.get("completionTime") or j.get("startTime") or "", j["name"]))
    if last["state"] == "Complete":
        what = f"archive {observed.archive[0]} ({observed.archive[1]} bytes)" if observed.archive else "archive written"
        return info, condition("LastBackupSucceeded", True, "BackupSucceeded", f"Job {last['name']}: {what}")
    return info, condition("LastBackupSucceeded", False, "BackupFailed",
                           f"Job {last['name']} failed; see `kubectl logs job/{last['name']}`")


def _progressing(deployment: Mapping[str, Any] | None, desired: int) -> bool:
    """Whether the Deployment is rolling out (some pods not yet updated)."""
    if deployment is None:
        return True
    dstatus = deployment.get("status") or {}
    return int(dstatus.get("updatedReplicas") or 0) < desired


def merge_conditions(new: Sequence[Mapping[str, Any]], old: Sequence[Mapping[str, Any]] | None,
                     now: str) -> list[dict[str, Any]]:
    """Carry lastTransitionTime over from the old conditions where the status did not change."""
    previous = {c.get("type"): c for c in old or [] if isinstance(c, Mapping)}
    merged = []
    for cond in new:
        prior = previous.get(cond["type"])
        same = prior is not None and prior.get("status") == cond["status"]
        stamp = prior.get("lastTransitionTime") if same and prior else None
        merged.append({**cond, "lastTransitionTime": stamp or now})
    return merged


def volume_synced(notes: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """VolumeSynced: the first refused change to the claim (shrink, immutable field, refused by
    the server), else in sync."""
    return dict(notes[0]) if notes else condition("VolumeSynced", True, "InSync", "the volume matches the spec")


def settling(observed: Observed) -> bool:
    """Whether a child just created has not yet been answered by its controller."""
    deployment = observed.deployment
    if deployment is None or "observedGeneration" not in (deployment.get("status") or {}):
        return True
    return observed.claim is not None and (observed.claim.get("status") or {}).get("phase") != "Bound"


def hold_for(status: Mapping[str, Any], observed: Observed, since_created: float | None, hold: float) -> float | None:
    """Seconds to hold back a status that would only say "on its way" (Pending, Progressing) right
    after the site's children were created, while their controllers have not answered (claim not
    Bound, Deployment not observed): one status write, not three. None: write it now."""
    if since_created is None or since_created >= hold or status["phase"] not in ("Pending", "Progressing"):
        return None
    return min(1.0, hold - since_created) if settling(observed) else None


def warnings(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The conditions that deserve a Warning event (and a log line): a refused, degraded or waiting
    Ready, a VolumeSynced, LastBackupSucceeded or ContentSynced gone False; each once per change."""
    before = {c.get("type"): c for c in old.get("conditions") or [] if isinstance(c, Mapping)}
    found = []
    for cond in new["conditions"]:
        prior = before.get(cond["type"]) or {}
        if cond["status"] == "True" or (prior.get("status"), prior.get("reason"), prior.get("message")) == \
                (cond["status"], cond["reason"], cond["message"]):
            continue
        refused = new.get("phase") in ("Failed", "Degraded") or cond["reason"] in WAITING_REASONS
        if cond["status"] == "Unknown":
            continue
        if cond["type"] == "Ready" and refused or cond["type"] in ("VolumeSynced", "LastBackupSucceeded",
                                                                   "ContentSynced"):
            found.append(cond)
    return found
