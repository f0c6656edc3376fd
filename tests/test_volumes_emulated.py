"""The volume types with the real operator against the emulated API server."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from support import SITES, Api, eventually, site

from httpd_operator.settings import Settings

CLAIMS = "v1/persistentvolumeclaims"
DEPLOYMENTS = "apps/v1/deployments"
CLAIMS_URL = "/api/v1/namespaces/ns/persistentvolumeclaims"


def phase(api: Api, name: str) -> str | None:
    return api.site_status("ns", name).get("phase")


def cond(api: Api, name: str, type_: str) -> dict:
    return next((c for c in api.site_status("ns", name).get("conditions", []) if c["type"] == type_), {})


def warnings(api: Api, name: str) -> list[dict]:
    return [e for e in api.server.list("v1/events", "ns")
            if e["involvedObject"]["name"] == name and e["type"] == "Warning"]


async def test_existing_claim_is_waited_for_mounted_and_never_touched(api: Api, operator) -> None:
    await operator()
    await api.create_site(site("team", volume={"type": "ExistingClaim", "claimName": "team-content"}))
    await eventually(lambda: cond(api, "team", "VolumeReady").get("reason") == "ClaimNotFound")
    assert phase(api, "team") == "Pending"
    await api.request("POST", CLAIMS_URL, {"metadata": {"name": "team-content"}, "spec": {
        "accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "3Gi"}}}})
    await eventually(lambda: phase(api, "team") == "Ready")
    assert api.site_status("ns", "team")["volume"]["capacity"] == "3Gi"
    await api.delete("/apis/httpd.dev/v1alpha1/namespaces/ns/httpdsites/team")
    await eventually(lambda: api.get(DEPLOYMENTS, "ns", "team") is None)
    assert api.get(CLAIMS, "ns", "team-content") is not None
    user_agent_writes = [r for r in api.server._requests if "team-content" in r.url.path
                         and r.method.value != "GET" and r.headers.get("User-Agent", "").startswith("httpd-operator/")]
    assert user_agent_writes == []  # the operator never wrote to the user's claim


async def test_claim_grows_but_never_shrinks_and_immutable_changes_are_reported(api: Api, operator) -> None:
    await operator()
    await api.create_site(site("web", volume={"size": "2Gi"}))
    await eventually(lambda: phase(api, "web") == "Ready")
    await api.patch_site("ns", "web", {"spec": {"volume": {"size": "1Gi"}}})
    await eventually(lambda: cond(api, "web", "VolumeSynced").get("reason") == "ShrinkRefused")
    assert api.get(CLAIMS, "ns", "web-htdocs")["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert "never shrink" in cond(api, "web", "VolumeSynced")["message"]
    assert [e["reason"] for e in await eventually(lambda: warnings(api, "web"))] == ["ShrinkRefused"]
    await api.patch_site("ns", "web", {"spec": {"volume": {"size": "4Gi", "storageClassName": "gold"}}})
    await eventually(lambda: cond(api, "web", "VolumeSynced").get("reason") == "ImmutableField")
    claim = api.get(CLAIMS, "ns", "web-htdocs")
    assert claim["spec"]["resources"]["requests"]["storage"] == "4Gi"  # growth applied
    assert claim["spec"]["storageClassName"] == "standard"  # the class was reported, not forced
    assert "storageClassName" in cond(api, "web", "VolumeSynced")["message"]
    deletes = [r for r in api.server._requests if r.method.value == "DELETE" and "persistentvolumeclaims" in r.url.path]
    assert deletes == []


async def test_host_path_refused_without_allow_list_and_used_with_it(api: Api, operator) -> None:
    op = await operator()
    await api.create_site(site("local", volume={"type": "HostPath", "hostPath": {"path": "/srv/www/local"}}))
    await eventually(lambda: phase(api, "local") == "Failed")
    assert cond(api, "local", "Ready")["reason"] == "HostPathNotAllowed"
    assert (await eventually(lambda: warnings(api, "local")))[0]["reason"] == "HostPathNotAllowed"
    assert api.get(DEPLOYMENTS, "ns", "local") is None
    await operator.stop(op)
    await operator(Settings(allowed_host_paths=("/srv/www",)))
    await eventually(lambda: phase(api, "local") == "Ready")
    volume = api.get(DEPLOYMENTS, "ns", "local")["spec"]["template"]["spec"]["volumes"][0]
    assert volume["hostPath"]["path"] == "/srv/www/local"
    assert api.site_status("ns", "local")["volume"]["source"] == "host path /srv/www/local"


async def test_from_site_waits_for_its_source_then_shares_it(api: Api, operator) -> None:
    await operator()
    await api.create_site(site("preview", volume={"type": "FromSite", "fromSite": "blog", "readOnly": True}))
    await eventually(lambda: cond(api, "preview", "Ready").get("reason") == "SourceSiteNotFound")
    assert phase(api, "preview") == "Pending"
    assert api.get(DEPLOYMENTS, "ns", "preview") is None
    await api.create_site(site("blog", volume={"reclaimPolicy": "Delete", "accessModes": ["ReadWriteMany"]}))
    await eventually(lambda: phase(api, "preview") == "Ready" and phase(api, "blog") == "Ready")
    pod = api.get(DEPLOYMENTS, "ns", "preview")["spec"]["template"]["spec"]
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "blog-htdocs"
    # The sharer co-owns the source's Delete claim: deleting the source keeps the data.
    await eventually(lambda: len(api.get(CLAIMS, "ns", "blog-htdocs")["metadata"]["ownerReferences"]) == 2)
    await api.delete("/apis/httpd.dev/v1alpha1/namespaces/ns/httpdsites/blog")
    await eventually(lambda: api.get(DEPLOYMENTS, "ns", "blog") is None)
    assert api.get(CLAIMS, "ns", "blog-htdocs") is not None
    await eventually(lambda: cond(api, "preview", "Ready").get("reason") == "SourceSiteNotFound")
    await api.delete("/apis/httpd.dev/v1alpha1/namespaces/ns/httpdsites/preview")
    await eventually(lambda: api.get(CLAIMS, "ns", "blog-htdocs") is None)  # its last owner is gone


async def test_ephemeral_source_is_refused_and_status_says_data_is_not_kept(api: Api, operator) -> None:
    await operator()
    await api.create_site(site("tmp", volume={"type": "Ephemeral"}))
    await api.create_site(site("reader", volume={"type": "FromSite", "fromSite": "tmp"}))
    await eventually(lambda: phase(api, "tmp") == "Ready")
    volume = api.site_status("ns", "tmp")["volume"]
    assert volume["persistent"] is False and "deleted with each pod" in volume["message"]
    await eventually(lambda: cond(api, "reader", "Ready").get("reason") == "SourceSiteEphemeral")
    assert api.get(CLAIMS, "ns", "tmp-htdocs") is None


async def test_lost_claim_degrades_and_pending_claim_waits(api: Api, operator) -> None:
    await operator()
    await api.create_site(site("web"))
    await eventually(lambda: phase(api, "web") == "Ready")
    await api.server.put_status(CLAIMS, "ns", "web-htdocs", {"phase": "Lost"})
    await eventually(lambda: phase(api, "web") == "Degraded")
    assert cond(api, "web", "VolumeReady")["reason"] == "ClaimLost"
    await api.server.put_status(CLAIMS, "ns", "web-htdocs", {"phase": "Pending"})
    await eventually(lambda: cond(api, "web", "VolumeReady").get("reason") == "ClaimPending")


async def test_volumes_list_and_prune_retained_claims(api: Api, operator) -> None:
    await operator()
    await api.create_site(site("keep"))
    await api.create_site(site("gone"))
    await eventually(lambda: phase(api, "keep") == "Ready" and phase(api, "gone") == "Ready")
    await api.delete("/apis/httpd.dev/v1alpha1/namespaces/ns/httpdsites/gone")
    await eventually(lambda: api.get(SITES, "ns", "gone") is None)
    cli = [sys.executable, "-m", "httpd_operator", "volumes"]
    env = ["--kubeconfig", str(api.kubeconfig), "-n", "ns"]
    listing = await asyncio.to_thread(subprocess.run, [*cli, "list", *env], capture_output=True, text=True, check=True)
    rows = {line.split()[1]: line for line in listing.stdout.splitlines()[1:]}
    assert "no (retained)" in rows["gone-htdocs"] and rows["keep-htdocs"].rstrip().endswith("yes")
    refused = await asyncio.to_thread(subprocess.run, [*cli, "prune", *env], capture_output=True, text=True,
                                      stdin=subprocess.DEVNULL)
    assert refused.returncode == 2 and "gone-htdocs" in refused.stdout
    assert api.get(CLAIMS, "ns", "gone-htdocs") is not None  # nothing deleted without confirmation
    pruned = await asyncio.to_thread(subprocess.run, [*cli, "prune", "--yes", *env], capture_output=True, text=True)
    assert pruned.returncode == 0
    assert api.get(CLAIMS, "ns", "gone-htdocs") is None
    assert api.get(CLAIMS, "ns", "keep-htdocs") is not None


NFS = {"type": "NFS", "nfs": {"server": "nfs.example.internal", "path": "/exports/www"}}
VOLUMES = "v1/persistentvolumes"


def nfs_volume(api: Api, name: str) -> tuple[dict, dict] | None:
    """The site's claim and the PersistentVolume it is bound to, once Bound."""
    deployment = api.get(DEPLOYMENTS, "ns", name)
    if deployment is None:
        return None
    source = deployment["spec"]["template"]["spec"]["volumes"][0].get("persistentVolumeClaim")
    claim = api.get(CLAIMS, "ns", source["claimName"]) if source else None
    if not claim or (claim.get("status") or {}).get("phase") != "Bound":
        return None
    return claim, api.get(VOLUMES, None, claim["spec"]["volumeName"])


def volume_writes(api: Api) -> list[tuple[str, str]]:
    return [(m, p) for m, p in api.writes() if "/persistentvolumes" in p]


async def test_nfs_is_a_volume_and_claim_of_the_operator_and_the_export_outlives_the_site(api: Api, operator) -> None:
    await operator()
    await api.create_site(site("docs", volume=NFS, replicas=3))
    await eventually(lambda: phase(api, "docs") == "Ready")
    claim, pv = nfs_volume(api, "docs")
    assert pv["spec"]["nfs"] == NFS["nfs"] and pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert pv["spec"]["claimRef"]["uid"] == claim["metadata"]["uid"]
    status = api.site_status("ns", "docs")["volume"]
    assert status["claimName"] == claim["metadata"]["name"] and status["retained"] is True
    assert status["source"] == "nfs.example.internal:/exports/www"
    # Deleting the site deletes neither the claim (Retain) nor the volume: nothing touches the export.
    await api.delete("/apis/httpd.dev/v1alpha1/namespaces/ns/httpdsites/docs")
    await eventually(lambda: api.get(DEPLOYMENTS, "ns", "docs") is None)
    assert api.get(CLAIMS, "ns", claim["metadata"]["name"])["status"]["phase"] == "Bound"
    assert api.get(VOLUMES, None, pv["metadata"]["name"])["spec"]["nfs"] == NFS["nfs"]
    # Re-created, the site serves the same export through the same claim, without a new volume.
    await api.create_site(site("docs", volume=NFS))
    await eventually(lambda: phase(api, "docs") == "Ready")
    assert nfs_volume(api, "docs")[0]["metadata"]["uid"] == claim["metadata"]["uid"]
    assert [m for m, _ in volume_writes(api)] == ["POST"]
    # A claim deleted by hand leaves its volume Released and reserved for the old claim: the
    # operator re-creates the claim and releases the volume to it (the same export, untouched).
    await api.delete(f"/api/v1/namespaces/ns/persistentvolumeclaims/{claim['metadata']['name']}")
    await eventually(lambda: (nfs_volume(api, "docs") or [claim])[0]["metadata"]["uid"] != claim["metadata"]["uid"])
    assert nfs_volume(api, "docs")[1]["spec"]["nfs"] == NFS["nfs"]
    assert not [w for w in volume_writes(api) if w[0] == "DELETE"]


async def test_a_site_of_the_inline_nfs_form_keeps_serving_the_same_export(api: Api, operator) -> None:
    """The previous release mounted the export inline (`nfs:` in the pod); this one mounts a claim."""
    created = await api.create_site(site("docs", volume=NFS))
    from httpd_operator.render import render_body
    from httpd_operator.settings import Settings as S
    old = next(o for o in render_body(created, S()).objects if o["kind"] == "Deployment")
    old["spec"]["template"]["spec"]["volumes"][0] = {"name": "htdocs", "nfs": NFS["nfs"]}
    before = await api.request("POST", "/apis/apps/v1/namespaces/ns/deployments", old)
    await operator()
    await eventually(lambda: nfs_volume(api, "docs") is not None and phase(api, "docs") == "Ready")
    after = api.get(DEPLOYMENTS, "ns", "docs")
    assert after["metadata"]["uid"] == before["metadata"]["uid"]  # rolled (patched), not re-created
    assert nfs_volume(api, "docs")[1]["spec"]["nfs"] == NFS["nfs"]  # the same export


async def test_without_volume_protection_nfs_needs_only_to_create_its_volume(api: Api, operator) -> None:
    """protectVolumes: false (--no-protect-volumes) leaves the operator persistentvolumes create only."""
    await operator(Settings(protect_volumes=False))
    await api.create_site(site("docs", volume=NFS))
    await api.create_site(site("web"))
    await eventually(lambda: phase(api, "docs") == "Ready" and phase(api, "web") == "Ready")
    requests = {(r.method.value, r.url.path.rsplit("/", 1)[0]) for r in api.server._requests
                if "/persistentvolumes" in r.url.path}
    assert requests == {("POST", "/api/v1")}
    # The managed claim's volume was left as the provisioner made it.
    web = api.get(CLAIMS, "ns", "web-htdocs")
    assert api.get(VOLUMES, None, web["spec"]["volumeName"])["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
