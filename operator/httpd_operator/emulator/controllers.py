"""Stand-ins for the controllers the operator waits on (the emulator runs none of its own).

A real cluster's provisioner and PersistentVolume controller bind new claims; its Deployment
controller and kubelets make replicas ready. Here both happen at once, as separate writes with
their own watch events, so the operator sees the same transitions it would see in a cluster.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from typing import Any

from httpd_operator.emulator.patches import merge, now

Key = tuple[str, str, str | None, str]  # (group, plural, namespace, name)


class ControllerStandIns:
    """Mixed into the emulator; uses its store and its `_write` / `_remove`."""

    controllers: bool
    _store: dict[Key, dict[str, Any]]
    _tasks: set[asyncio.Task[None]]
    _write: Callable[..., dict[str, Any]]
    _remove: Callable[..., None]

    def _after_write(self, key: Key, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        if not self.controllers:
            return
        if key[:2] == ("", "persistentvolumeclaims"):
            self._soon(self._bind_claim(key))
        elif key[:2] == ("", "persistentvolumes") and (new.get("status") or {}).get("phase") != "Bound":
            ref = (new.get("spec") or {}).get("claimRef") or {}
            if ref.get("name"):  # a static volume reserved for a claim: bind it if it waits
                self._soon(self._bind_claim(("", "persistentvolumeclaims", ref.get("namespace"), ref["name"])))
        elif key[:2] == ("apps", "deployments"):
            self._soon(self._roll_out(key))

    def _after_delete(self, key: Key, obj: dict[str, Any]) -> None:
        if not self.controllers or key[:2] != ("", "persistentvolumeclaims"):
            return
        volume = (obj.get("spec") or {}).get("volumeName")
        pv_key: Key = ("", "persistentvolumes", None, volume or "")
        pv = self._store.get(pv_key)
        if pv is None:
            return
        if (pv.get("spec") or {}).get("persistentVolumeReclaimPolicy") == "Delete":
            self._remove(pv_key)
        else:
            self._write(pv_key, {**pv, "status": {"phase": "Released"}}, "MODIFIED")

    def _soon(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _bind_claim(self, key: Key) -> None:
        """What the provisioner and the PV controller do: a volume, then the claim Bound."""
        await asyncio.sleep(0)
        claim = self._store.get(key)
        if claim is None:
            return
        spec = claim.get("spec") or {}
        size = ((spec.get("resources") or {}).get("requests") or {}).get("storage", "1Gi")
        status = claim.get("status") or {}
        if status.get("phase") == "Bound":
            if (status.get("capacity") or {}).get("storage") != size:  # expansion
                self._write(key, {**claim, "status": {**status, "capacity": {"storage": size}}}, "MODIFIED")
            return
        if spec.get("volumeName"):
            self._bind_static(key, claim)
            return
        pv_name = f"pvc-{claim['metadata']['uid']}"
        meta = claim["metadata"]
        self._write(("", "persistentvolumes", None, pv_name), {
            "apiVersion": "v1", "kind": "PersistentVolume",
            "metadata": {"name": pv_name, "uid": str(uuid.uuid4()), "creationTimestamp": now()},
            "spec": {"capacity": {"storage": size}, "accessModes": spec.get("accessModes", []),
                     "persistentVolumeReclaimPolicy": "Delete",
                     "storageClassName": spec.get("storageClassName") or "standard",
                     "hostPath": {"path": f"/tmp/hostpath_pv/{pv_name}"},
                     "claimRef": {"kind": "PersistentVolumeClaim", "namespace": meta["namespace"],
                                  "name": meta["name"], "uid": meta["uid"]}},
            "status": {"phase": "Bound"}}, "ADDED")
        bound = {"spec": {"volumeName": pv_name, "storageClassName": spec.get("storageClassName") or "standard"}}
        claim = self._write(key, merge(claim, bound), "MODIFIED")
        self._write(key, {**claim, "status": {"phase": "Bound", "capacity": {"storage": size},
                                              "accessModes": spec.get("accessModes", [])}}, "MODIFIED")

    def _bind_static(self, key: Key, claim: dict[str, Any]) -> None:
        """A claim naming its volume (volumeName) binds to it when the volume exists and is
        reserved for it, or for no one; a volume still reserved for an older claim's uid waits."""
        meta, spec = claim["metadata"], claim.get("spec") or {}
        pv_key: Key = ("", "persistentvolumes", None, spec["volumeName"])
        pv = self._store.get(pv_key)
        if pv is None:
            return
        ref = (pv.get("spec") or {}).get("claimRef") or {}
        if ref and ((ref.get("namespace"), ref.get("name")) != (meta.get("namespace"), meta["name"])
                    or ref.get("uid") not in (None, meta["uid"])):
            return
        ref = {"kind": "PersistentVolumeClaim", **ref, "namespace": meta["namespace"], "name": meta["name"],
               "uid": meta["uid"]}
        self._write(pv_key, {**pv, "spec": {**pv["spec"], "claimRef": ref}, "status": {"phase": "Bound"}},
                    "MODIFIED")
        size = ((pv.get("spec") or {}).get("capacity") or {}).get("storage", "1Gi")
        self._write(key, {**claim, "status": {"phase": "Bound", "capacity": {"storage": size},
                                              "accessModes": (pv.get("spec") or {}).get("accessModes", [])}},
                    "MODIFIED")

    async def _roll_out(self, key: Key) -> None:
        """What the Deployment controller and kubelets do, instantly: all replicas ready."""
        await asyncio.sleep(0)
        deployment = self._store.get(key)
        if deployment is None:
            return
        replicas = (deployment.get("spec") or {}).get("replicas", 1)
        generation = deployment["metadata"].get("generation", 1)
        status = {"observedGeneration": generation, "replicas": replicas, "readyReplicas": replicas,
                  "availableReplicas": replicas, "updatedReplicas": replicas,
                  "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                                 {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]}
        if deployment.get("status") != status:
            self._write(key, {**deployment, "status": status}, "MODIFIED")
