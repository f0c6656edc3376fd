"""Content from git, rendered: the one writer, httpd serving `current` read-only, the seed
skipped, FromSite readers, backup, the writer's NetworkPolicy; bad input refused naming the field;
every object valid against Kubernetes' own schemas."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pytest

from httpd_operator.errors import SpecError
from httpd_operator.render import render_body, render_site
from httpd_operator.render.content import WRITER_CONTAINER, writer_name
from httpd_operator.settings import GIT_IMAGE, Settings
from httpd_operator.spec import parse_site

GIT = {"repository": "https://git.example.com/org/site.git", "ref": "main"}


def body(name: str = "web", **spec: Any) -> dict[str, Any]:
    spec.setdefault("content", {"git": dict(GIT)})
    return {"apiVersion": "httpd.dev/v1alpha1", "kind": "HttpdSite",
            "metadata": {"name": name, "namespace": "ns", "uid": f"uid-{name}", "generation": 1},
            "spec": copy.deepcopy(spec)}


def objects(**spec: Any) -> list[dict[str, Any]]:
    return render_body(body(**spec), Settings()).objects


def find(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name)


def writer(objs: list[dict[str, Any]]) -> dict[str, Any]:
    return find(objs, "Deployment", writer_name("web"))


def env(deployment: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}


@pytest.mark.parametrize("modes", [["ReadWriteOnce"], ["ReadWriteMany"]])
def test_exactly_one_writer_whatever_the_replicas_and_access_mode(modes: list[str]) -> None:
    objs = objects(replicas=3, volume={"accessModes": modes})
    deployments = [o for o in objs if o["kind"] == "Deployment"]
    assert {d["metadata"]["name"] for d in deployments} == {"web", "web-content"}
    w = writer(objs)
    assert w["spec"]["replicas"] == 1 and w["spec"]["strategy"] == {"type": "Recreate"}
    pod = w["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["containers"][0]["name"] == WRITER_CONTAINER and pod["containers"][0]["image"] == GIT_IMAGE
    assert pod["containers"][0]["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["containers"][0]["securityContext"]["runAsNonRoot"] is True
    # Ready once a revision is served; restarted when its loop stops coming round (a hung fetch).
    assert pod["containers"][0]["readinessProbe"]["exec"]["command"] == ["test", "-L", "/content/current"]
    liveness = pod["containers"][0]["livenessProbe"]["exec"]["command"]
    assert liveness[-2:] == ["/tmp/git-sync-alive", "660"]
    # Every pod that mounts the volume writable: the writer's alone.
    writable = [d["metadata"]["name"] for d in deployments
                for c in d["spec"]["template"]["spec"]["containers"] + d["spec"]["template"]["spec"].get(
                    "initContainers", [])
                for m in c["volumeMounts"] if m["name"] == "htdocs" and not m.get("readOnly")]
    assert writable == ["web-content"]
    httpd = find(objs, "Deployment", "web")
    assert httpd["spec"]["replicas"] == 3 and "initContainers" not in httpd["spec"]["template"]["spec"]  # no seed
    # Its pods are never the site's: not selected by the Service or the httpd Deployment.
    labels = w["spec"]["template"]["metadata"]["labels"]
    selector = find(objs, "Service", "web")["spec"]["selector"]
    assert not all(labels.get(k) == v for k, v in selector.items())
    if modes == ["ReadWriteOnce"]:  # a node-bound claim: the writer runs beside the site's pods
        assert "podAffinity" in w["spec"]["template"]["spec"]["affinity"]
        assert labels["httpd.dev/claim"] == httpd["spec"]["template"]["metadata"]["labels"]["httpd.dev/claim"]


def test_httpd_serves_the_current_revision_of_the_sub_path() -> None:
    objs = objects(content={"git": {**GIT, "subPath": "public/"}})
    conf = find(objs, "ConfigMap", "web")["data"]["40-content.conf"]
    assert 'DocumentRoot "/usr/local/apache2/htdocs/current/public"' in conf
    assert "SymLinksIfOwnerMatch" in conf
    httpd = find(objs, "Deployment", "web")["spec"]["template"]
    assert "httpd.dev/config-checksum" in httpd["metadata"]["annotations"]
    assert {"name": "config", "mountPath": "/usr/local/apache2/conf.d", "readOnly": True} in \
        httpd["spec"]["containers"][0]["volumeMounts"]
    e = env(writer(objs))
    assert e["GIT_SYNC_REPOSITORY"] == GIT["repository"] and e["GIT_SYNC_REF"] == "main"
    assert e["GIT_SYNC_INTERVAL"] == "60" and e["GIT_SYNC_DEPTH"] == "1"


def test_the_secret_is_mounted_read_only_and_never_put_in_the_environment() -> None:
    w = writer(objects(content={"git": {**GIT, "secretName": "site-git"}}))
    pod = w["spec"]["template"]["spec"]
    assert {"name": "git-secret", "secret": {"secretName": "site-git", "defaultMode": 0o440}} in pod["volumes"]
    assert {"name": "git-secret", "mountPath": "/etc/git-secret", "readOnly": True} in \
        pod["containers"][0]["volumeMounts"]
    assert all("valueFrom" not in e for e in pod["containers"][0]["env"])


def test_from_site_readers_serve_the_synced_content_and_run_no_writer() -> None:
    source = parse_site(body("src", content={"git": {**GIT, "subPath": "www"}}), Settings())
    reader = parse_site(body("reader", content=None, volume={"type": "FromSite", "fromSite": "src"}), Settings())
    objs = render_site(reader, {"src": source}).objects
    assert not [o for o in objs if o["metadata"]["name"] == "reader-content"]
    conf = find(objs, "ConfigMap", "reader")["data"]["40-content.conf"]
    assert 'DocumentRoot "/usr/local/apache2/htdocs/current/www"' in conf
    mount = find(objs, "Deployment", "reader")["spec"]["template"]["spec"]["containers"][0]["volumeMounts"][0]
    assert mount["readOnly"] is True


def test_backup_archives_the_current_revision() -> None:
    objs = objects(backup={"target": {"claimName": "backups"}})
    command = find(objs, "CronJob", "web")["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0][
        "command"]
    assert command[4] == "/backup-source/current"


def test_the_writer_s_network_policy_lets_it_reach_dns_and_the_repository_only() -> None:
    policy = find(objects(content={"git": {"repository": "ssh://git@10.1.2.3:2222/site.git"}}),
                  "NetworkPolicy", "web-content")["spec"]
    assert policy["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "httpd-content"
    assert policy["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in policy  # nothing may connect in
    assert policy["egress"][0]["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    assert policy["egress"][1] == {"ports": [{"protocol": "TCP", "port": 2222}],
                                   "to": [{"ipBlock": {"cidr": "10.1.2.3/32"}}]}
    by_name = find(objects(), "NetworkPolicy", "web-content")["spec"]["egress"][1]
    assert by_name == {"ports": [{"protocol": "TCP", "port": 443}]}
    none = render_body(body(), Settings(network_policies=False)).objects
    assert not [o for o in none if o["kind"] == "NetworkPolicy"]


@pytest.mark.parametrize("spec", [
    {}, {"replicas": 3, "volume": {"accessModes": ["ReadWriteMany"]}},
    {"content": {"git": {**GIT, "secretName": "creds", "subPath": "a/b", "depth": 0, "interval": "5m"}},
     "nodeSelector": {"disk": "ssd"}, "tolerations": [{"key": "k", "operator": "Exists"}],
     "backup": {"target": {"claimName": "backups"}}},
    {"volume": {"type": "HostPath", "hostPath": {"path": "/srv/www/a"}}},
    {"volume": {"type": "NFS", "nfs": {"server": "nfs.example.com", "path": "/export"}}},
])
def test_every_rendered_object_is_valid(spec: dict[str, Any]) -> None:
    objs = render_body(body(**spec), Settings(allowed_host_paths=("/srv/www",))).objects
    for obj in objs:
        for version in ("1.33.0", "1.37.0"):
            kubernetes_validate.validate(obj, version, strict=True)


def test_good_urls_refs_and_intervals() -> None:
    for repository in ("https://example.com/a.git", "ssh://git@example.com/a.git", "git://127.0.0.1:9418/a",
                       "git@github.com:org/site.git", "https://[::1]:8443/a.git"):
        assert parse_site(body(content={"git": {"repository": repository}}), Settings()).git is not None
    for ref in ("main", "v1.2.3", "release/2026-12", "refs/heads/main", "0123abc", "HEAD"):
        assert parse_site(body(content={"git": {**GIT, "ref": ref}}), Settings()).git.ref == ref  # type: ignore[union-attr]
    for interval, seconds in ((10, 10), ("90s", 90), ("5m", 300), ("1h30m", 5400)):
        git = parse_site(body(content={"git": {**GIT, "interval": interval}}), Settings()).git
        assert git is not None and git.interval == seconds


@pytest.mark.parametrize(("git", "field"), [
    ({"repository": "http://example.com/a.git"}, "spec.content.git.repository"),
    ({"repository": "file:///etc"}, "spec.content.git.repository"),
    ({"repository": "ext::sh -c touch% /tmp/x"}, "spec.content.git.repository"),
    ({"repository": "https://user:secret@example.com/a.git"}, "spec.content.git.repository"),
    ({"repository": "https://token@example.com/a.git"}, "spec.content.git.repository"),
    ({"repository": "ssh://git:pw@example.com/a.git"}, "spec.content.git.repository"),
    ({"repository": "--upload-pack=touch /tmp/x"}, "spec.content.git.repository"),
    ({"repository": "https://example.com"}, "spec.content.git.repository"),
    ({"repository": ""}, "spec.content.git.repository"),
    ({**GIT, "ref": "-main"}, "spec.content.git.ref"),
    ({**GIT, "ref": "a..b"}, "spec.content.git.ref"),
    ({**GIT, "ref": "a b"}, "spec.content.git.ref"),
    ({**GIT, "ref": "feature~1"}, "spec.content.git.ref"),
    ({**GIT, "ref": "x.lock"}, "spec.content.git.ref"),
    ({**GIT, "ref": "a@{1}"}, "spec.content.git.ref"),
    ({**GIT, "ref": "a\\b"}, "spec.content.git.ref"),
    ({**GIT, "interval": 5}, "spec.content.git.interval"),
    ({**GIT, "interval": "9s"}, "spec.content.git.interval"),
    ({**GIT, "interval": "soon"}, "spec.content.git.interval"),
    ({**GIT, "subPath": "../other"}, "spec.content.git.subPath"),
    ({**GIT, "subPath": "/etc"}, "spec.content.git.subPath"),
    ({**GIT, "subPath": "a/../../b"}, "spec.content.git.subPath"),
    ({**GIT, "subPath": ".git"}, "spec.content.git.subPath"),
    ({**GIT, "depth": -1}, "spec.content.git.depth"),
    ({**GIT, "secretName": "Not_A_Name"}, "spec.content.git.secretName"),
])
def test_bad_input_is_refused_naming_the_field(git: dict[str, Any], field: str) -> None:
    with pytest.raises(SpecError) as caught:
        render_body(body(content={"git": git}), Settings())
    assert caught.value.field == field and caught.value.reason == "InvalidSpec"
    assert caught.value.message.startswith(field)


@pytest.mark.parametrize(("volume", "field", "reason"), [
    ({"type": "FromSite", "fromSite": "other"}, "spec.content.git", "InvalidSpec"),
    ({"type": "Ephemeral"}, "spec.content.git", "InvalidSpec"),
    ({"readOnly": True}, "spec.content.git", "InvalidSpec"),
    ({"accessModes": ["ReadWriteOncePod"]}, "spec.volume.accessModes", "AccessModeConflict"),
])
def test_volumes_the_writer_cannot_fill_are_refused(volume: dict[str, Any], field: str, reason: str) -> None:
    with pytest.raises(SpecError) as caught:
        render_body(body(volume=volume), Settings())
    assert (caught.value.field, caught.value.reason) == (field, reason)


def test_a_site_named_like_another_site_s_writer_is_refused_on_both_sides() -> None:
    owner = parse_site(body("web"), Settings())
    other = parse_site(body("web-content", content=None), Settings())
    with pytest.raises(SpecError) as caught:
        render_site(owner, {"web-content": other})
    assert (caught.value.field, caught.value.reason) == ("spec.content.git", "NameConflict")
    with pytest.raises(SpecError) as caught:
        render_site(other, {"web": owner})
    assert (caught.value.field, caught.value.reason) == ("metadata.name", "NameConflict")
    render_site(other, {"web": parse_site(body("web", content=None), Settings())})  # no git: no conflict
