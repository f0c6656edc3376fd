"""Every volume type: the pod spec the renderer gives (volumes, mounts, init container, affinity),
valid against the Kubernetes schemas, and every refusal with its reason."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
import support

from httpd_operator.errors import SpecError
from httpd_operator.render import render_body
from httpd_operator.settings import Settings
from httpd_operator.spec import parse_site

ALLOW = Settings(allowed_host_paths=("/srv/www",))


def site(name: str = "web", **spec: Any) -> dict[str, Any]:
    return support.site(name, uid=f"uid-{name}", **spec)


def render(volume: dict[str, Any], settings: Settings = ALLOW, others: dict[str, Any] | None = None,
           **spec: Any) -> dict[str, dict[str, Any]]:
    sites = {n: parse_site(site(n, **s), settings) for n, s in (others or {}).items()}
    rendered = render_body(site(volume=volume, **spec), settings, sites)
    for obj in rendered.objects:
        kubernetes_validate.validate(obj, "1.33.0", strict=True)
    return {o["kind"]: o for o in rendered.objects}


def pod(objs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return objs["Deployment"]["spec"]["template"]["spec"]


def content(objs: dict[str, dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the pod's content volume, the httpd container's mount of it)."""
    spec = pod(objs)
    volume = next(v for v in spec["volumes"] if v["name"] == "htdocs")
    mount = next(m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "htdocs")
    return volume, mount


def colocated(objs: dict[str, dict[str, Any]]) -> bool:
    return "podAffinity" in pod(objs).get("affinity", {})


def test_managed_claim_with_every_field() -> None:
    objs = render({"size": "5Gi", "storageClassName": "fast", "accessModes": ["ReadWriteMany"],
                   "volumeMode": "Filesystem", "subPath": "public", "mountPath": "/srv/site"}, replicas=3)
    claim = objs["PersistentVolumeClaim"]
    assert claim["spec"] == {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "5Gi"}},
                             "storageClassName": "fast", "volumeMode": "Filesystem"}
    volume, mount = content(objs)
    assert volume == {"name": "htdocs", "persistentVolumeClaim": {"claimName": "web-htdocs"}}
    assert mount == {"name": "htdocs", "mountPath": "/srv/site", "subPath": "public"}
    assert not colocated(objs)  # ReadWriteMany spreads freely
    seed = pod(objs)["initContainers"][0]
    assert seed["volumeMounts"][0]["subPath"] == "public"


def test_read_write_once_colocates_replicas_on_one_node() -> None:
    objs = render({}, replicas=3)
    term = pod(objs)["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert term == {"labelSelector": {"matchLabels": {"httpd.dev/claim": "web-htdocs"}},
                    "topologyKey": "kubernetes.io/hostname"}
    assert objs["Deployment"]["spec"]["template"]["metadata"]["labels"]["httpd.dev/claim"] == "web-htdocs"


SPREAD = {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 100, "podAffinityTerm": {
    "labelSelector": {"matchLabels": {"app.kubernetes.io/instance": "web"}}, "topologyKey": "kubernetes.io/hostname"}}]}


@pytest.mark.parametrize("volume", [{"accessModes": ["ReadWriteMany"]}, {"type": "Ephemeral"},
                                    {"type": "NFS", "nfs": {"server": "nfs.example", "path": "/www"}}])
def test_replicas_any_node_can_serve_prefer_distinct_nodes(volume: dict[str, Any]) -> None:
    assert pod(render(volume, replicas=3))["affinity"] == {"podAntiAffinity": SPREAD}


def test_node_bound_volumes_and_the_users_own_affinity_do_not_spread() -> None:
    assert "podAntiAffinity" not in pod(render({}, replicas=3))["affinity"]  # ReadWriteOnce: co-located
    assert "podAntiAffinity" not in pod(render({"type": "HostPath", "hostPath": {"path": "/srv/www/a"}}))["affinity"]
    mine = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1, "preference": {
        "matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}}]}}
    assert pod(render({"accessModes": ["ReadWriteMany"]}, affinity=mine))["affinity"] == mine


def test_read_write_once_pod_allows_one_replica_and_replaces_instead_of_surging() -> None:
    objs = render({"accessModes": ["ReadWriteOncePod"]})
    assert objs["Deployment"]["spec"]["strategy"] == {"type": "Recreate"}
    with pytest.raises(SpecError) as exc:
        render({"accessModes": ["ReadWriteOncePod"]}, replicas=2)
    assert (exc.value.reason, exc.value.field) == ("AccessModeConflict", "spec.replicas")


def test_existing_claim_is_mounted_and_never_rendered() -> None:
    objs = render({"type": "ExistingClaim", "claimName": "team-content", "readOnly": True})
    assert "PersistentVolumeClaim" not in objs
    volume, mount = content(objs)
    assert volume["persistentVolumeClaim"] == {"claimName": "team-content"}
    assert mount["readOnly"] is True
    assert "initContainers" not in pod(objs)  # read-only: nothing to seed


def test_host_path_is_a_bind_mount_only_under_an_allowed_prefix() -> None:
    objs = render({"type": "HostPath", "hostPath": {"path": "/srv/www//site/", "type": "DirectoryOrCreate"}})
    volume, _ = content(objs)
    assert volume["hostPath"] == {"path": "/srv/www/site", "type": "DirectoryOrCreate"}
    assert colocated(objs)  # a node's directory: replicas on one node see the same files
    for path, reason in [("/etc", "HostPathNotAllowed"), ("/srv/www-evil", "HostPathNotAllowed"),
                         ("/srv/www/../../etc", "InvalidSpec"), ("srv/www", "InvalidSpec")]:
        with pytest.raises(SpecError) as exc:
            render({"type": "HostPath", "hostPath": {"path": path}})
        assert (exc.value.reason, exc.value.field) == (reason, "spec.volume.hostPath.path"), path
    with pytest.raises(SpecError) as exc:
        render({"type": "HostPath", "hostPath": {"path": "/srv/www/site"}}, settings=Settings())
    assert exc.value.reason == "HostPathNotAllowed" and "--allow-host-path" in exc.value.message


def test_nfs_spreads_freely_and_needs_a_server() -> None:
    objs = render({"type": "NFS", "nfs": {"server": "10.0.0.5", "path": "/exports/www"}}, replicas=4)
    volume, _ = content(objs)
    # The pod mounts a claim (the restricted profile forbids an inline nfs volume) ...
    claim, pv = objs["PersistentVolumeClaim"], objs["PersistentVolume"]
    assert volume == {"name": "htdocs", "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]}}
    # ... bound to a volume naming the export, kept (Retain) and out of every provisioner's way.
    assert pv["spec"]["nfs"] == {"server": "10.0.0.5", "path": "/exports/www"}
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Retain"
    assert pv["spec"]["storageClassName"] == claim["spec"]["storageClassName"] == ""
    assert claim["spec"]["volumeName"] == pv["metadata"]["name"]
    assert pv["spec"]["claimRef"] == {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                      "namespace": claim["metadata"]["namespace"], "name": claim["metadata"]["name"]}
    assert claim["spec"]["accessModes"] == pv["spec"]["accessModes"] == ["ReadWriteMany"]
    assert "ownerReferences" not in pv["metadata"] and "ownerReferences" not in claim["metadata"]  # Retain
    assert not colocated(objs)
    # Another export is another volume and claim (a volume's source is immutable); the same is the same.
    other = render({"type": "NFS", "nfs": {"server": "10.0.0.5", "path": "/exports/blog"}})
    assert other["PersistentVolume"]["metadata"]["name"] != pv["metadata"]["name"]
    assert other["PersistentVolumeClaim"]["metadata"]["name"] != claim["metadata"]["name"]
    again = render({"type": "NFS", "nfs": {"server": "10.0.0.5", "path": "/exports/www"}, "size": "5Gi"})
    assert again["PersistentVolume"]["metadata"]["name"] == pv["metadata"]["name"]
    deleting = render({"type": "NFS", "nfs": {"server": "10.0.0.5", "path": "/exports/www"},
                       "reclaimPolicy": "Delete"})
    assert deleting["PersistentVolumeClaim"]["metadata"]["ownerReferences"][0]["kind"] == "HttpdSite"
    assert deleting["PersistentVolume"]["spec"]["persistentVolumeReclaimPolicy"] == "Retain"  # the export stays
    for nfs, field in [({"path": "/x"}, "spec.volume.nfs.server"), ({"server": "a b"}, "spec.volume.nfs.server"),
                       ({"server": "nfs", "path": "x/../y"}, "spec.volume.nfs.path")]:
        with pytest.raises(SpecError) as exc:
            render({"type": "NFS", "nfs": nfs})
        assert exc.value.field == field


def test_ephemeral_is_an_empty_dir_seeded_from_the_image() -> None:
    objs = render({"type": "Ephemeral", "sizeLimit": "100Mi", "medium": "Memory"})
    volume, _ = content(objs)
    assert volume["emptyDir"] == {"sizeLimit": "100Mi", "medium": "Memory"}
    assert pod(objs)["initContainers"][0]["name"] == "seed"
    assert not colocated(objs)


def test_from_site_mounts_the_source_volume_read_only() -> None:
    objs = render({"type": "FromSite", "fromSite": "blog", "readOnly": True},
                  others={"blog": {"volume": {"subPath": "www"}}})
    volume, mount = content(objs)
    assert volume["persistentVolumeClaim"] == {"claimName": "blog-htdocs"}
    assert mount == {"name": "htdocs", "mountPath": "/usr/local/apache2/htdocs", "subPath": "www", "readOnly": True}
    assert "PersistentVolumeClaim" not in objs and "initContainers" not in pod(objs)
    # Same claim label as the source's pods: both sites land on the claim's node.
    assert objs["Deployment"]["spec"]["template"]["metadata"]["labels"]["httpd.dev/claim"] == "blog-htdocs"


def test_from_site_follows_chains_and_joins_sub_paths() -> None:
    objs = render({"type": "FromSite", "fromSite": "b", "subPath": "c"},
                  others={"a": {"volume": {"type": "NFS", "nfs": {"server": "nfs"}, "subPath": "x"}},
                          "b": {"volume": {"type": "FromSite", "fromSite": "a", "subPath": "y"}}})
    volume, mount = content(objs)
    assert volume["persistentVolumeClaim"]["claimName"].startswith("a-nfs-") and mount["subPath"] == "x/y/c"
    assert "PersistentVolume" not in objs  # the source site's


@pytest.mark.parametrize(("volume", "others", "reason"), [
    ({"type": "FromSite", "fromSite": "web"}, {}, "InvalidSpec"),
    ({"type": "FromSite", "fromSite": "nowhere"}, {}, "SourceSiteNotFound"),
    ({"type": "FromSite", "fromSite": "tmp"}, {"tmp": {"volume": {"type": "Ephemeral"}}}, "SourceSiteEphemeral"),
    ({"type": "FromSite", "fromSite": "a"}, {"a": {"volume": {"type": "FromSite", "fromSite": "web"}}},
     "FromSiteCycle"),
])
def test_from_site_refusals(volume: dict[str, Any], others: dict[str, Any], reason: str) -> None:
    with pytest.raises(SpecError) as exc:
        render(volume, others=others)
    assert exc.value.reason == reason and exc.value.field == "spec.volume.fromSite"


@pytest.mark.parametrize("sub", ["../other", "/abs", "a/../../b", "."])
def test_sub_path_cannot_escape_the_volume(sub: str) -> None:
    with pytest.raises(SpecError) as exc:
        render({"subPath": sub})
    assert exc.value.field == "spec.volume.subPath"


def test_seed_never_and_read_only_skip_the_init_container() -> None:
    assert "initContainers" not in pod(render({"seed": "Never"}))
    assert "initContainers" not in pod(render({"readOnly": True}))
    assert "initContainers" in pod(render({}))
