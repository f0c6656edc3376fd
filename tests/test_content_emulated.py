"""Content from git against the emulated API server, with the real operator: the one writer per
volume, status.content and ContentSynced read from the writer pod's log (every failure reason, a
Warning event, the last good revision kept), and the writer pruned when git is dropped.

No pods run in the emulator: each test makes the writer's pod itself and writes its log (what
images/git/git-sync prints, one JSON line per sync; tests/test_git_sync.py runs the script)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from support import Api, eventually, site

from httpd_operator.render.content import writer_labels
from httpd_operator.settings import Settings

GIT = {"repository": "https://git.example.com/org/site.git", "ref": "main"}
FAST = Settings(content_poll=0.2)  # the writer's log read every 0.2 s, not every interval
OLD, NEW = "a" * 40, "b" * 40


def line(**fields: Any) -> str:
    return json.dumps({"time": "2026-12-02T14:00:00Z", "repository": GIT["repository"], "ref": "main",
                       **fields}) + "\n"


async def writer_pod(api: Api, name: str = "web-content-abc12") -> str:
    await api.request("POST", "/api/v1/namespaces/ns/pods", {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "ns", "labels": writer_labels("web")},
        "spec": {"containers": [{"name": "git-sync", "image": "x"}]}})
    return name


def condition(api: Api, type_: str = "ContentSynced") -> dict[str, Any] | None:
    return next((c for c in api.site_status("ns", "web").get("conditions") or [] if c["type"] == type_), None)


@pytest.mark.parametrize("modes", [["ReadWriteOnce"], ["ReadWriteMany"]])
async def test_one_writer_for_three_replicas(api: Api, operator, modes: list[str]) -> None:
    await operator(FAST)
    await api.create_site(site("web", replicas=3, volume={"accessModes": modes}, content={"git": GIT}))
    await eventually(lambda: api.site_status("ns", "web").get("readyReplicas") == 3)
    writer = await eventually(lambda: api.get("apps/v1/deployments", "ns", "web-content"))
    assert writer["spec"]["replicas"] == 1 and writer["spec"]["strategy"]["type"] == "Recreate"
    httpd = api.get("apps/v1/deployments", "ns", "web")
    assert httpd is not None and httpd["spec"]["replicas"] == 3
    mounts = [m for d in api.server.list("apps/v1/deployments", "ns")
              for c in d["spec"]["template"]["spec"]["containers"] for m in c["volumeMounts"]
              if m["name"] == "htdocs" and not m.get("readOnly")]
    assert len(mounts) == 1, "one writable mount of the volume: the writer's"
    assert api.get("v1/persistentvolumeclaims", "ns", "web-htdocs")["spec"]["accessModes"] == modes
    # Scaling the site never scales the writer.
    await api.patch_site("ns", "web", {"spec": {"replicas": 5}})
    await eventually(lambda: api.get("apps/v1/deployments", "ns", "web")["spec"]["replicas"] == 5)
    assert api.get("apps/v1/deployments", "ns", "web-content")["spec"]["replicas"] == 1


async def test_status_follows_the_writer_s_log(api: Api, operator) -> None:
    await operator(FAST)
    await api.create_site(site("web", content={"git": GIT}))
    pending = await eventually(lambda: condition(api))
    assert (pending["status"], pending["reason"]) == ("Unknown", "Pending")
    pod = await writer_pod(api)
    api.server.set_log("ns", pod, "cloning...\n" + line(revision=OLD, changed=True, syncTime="2026-12-02T14:00:00Z",
                                                       changeTime="2026-12-02T14:00:00Z"))
    synced = await eventually(lambda: (c := condition(api)) and c["status"] == "True" and c)
    assert synced["reason"] == "Synced" and OLD[:12] in synced["message"]
    content = api.site_status("ns", "web")["content"]
    assert content == {"repository": GIT["repository"], "ref": "main", "revision": OLD,
                       "lastSyncTime": "2026-12-02T14:00:00Z", "lastChangeTime": "2026-12-02T14:00:00Z"}
    api.server.set_log("ns", pod, line(revision=NEW, changed=True, syncTime="2026-12-02T14:01:00Z",
                                       changeTime="2026-12-02T14:01:00Z"))
    await eventually(lambda: api.site_status("ns", "web")["content"].get("revision") == NEW)
    assert api.site_status("ns", "web")["content"]["lastChangeTime"] == "2026-12-02T14:01:00Z"
    assert api.site_status("ns", "web")["phase"] == "Ready"


@pytest.mark.parametrize(("reason", "message"), [
    ("AuthRefused", "Authentication failed for 'https://git.example.com/org/site.git/'"),
    ("UnknownRef", "couldn't find remote ref main"),
    ("Unreachable", "unable to access: Could not resolve host: git.example.com"),
    ("NotARepository", "repository 'https://git.example.com/org/site.git/' not found"),
])
async def test_every_failure_reason_sets_content_synced_false_and_warns(api: Api, operator, reason: str,
                                                                        message: str) -> None:
    await operator(FAST)
    await api.create_site(site("web", content={"git": GIT}))
    pod = await writer_pod(api)
    api.server.set_log("ns", pod, line(revision=OLD, changed=True, syncTime="2026-12-02T14:00:00Z",
                                       changeTime="2026-12-02T14:00:00Z"))
    await eventually(lambda: (c := condition(api)) and c["status"] == "True")
    api.server.set_log("ns", pod, line(revision=OLD, syncTime="2026-12-02T14:00:00Z",
                                       changeTime="2026-12-02T14:00:00Z", error=reason, message=message))
    failed = await eventually(lambda: (c := condition(api)) and c["status"] == "False" and c)
    assert failed["reason"] == reason
    assert message in failed["message"] and f"revision {OLD[:12]} keeps serving" in failed["message"]
    status = api.site_status("ns", "web")
    assert status["content"]["revision"] == OLD, "the last good revision keeps serving"
    assert status["phase"] == "Ready"
    events = await eventually(lambda: [e for e in api.server.list("v1/events", "ns")
                                       if e["type"] == "Warning" and e["reason"] == reason])
    assert events[0]["involvedObject"]["name"] == "web"


async def test_a_failure_before_any_revision_says_nothing_is_served(api: Api, operator) -> None:
    await operator(FAST)
    await api.create_site(site("web", content={"git": GIT}))
    pod = await writer_pod(api)
    api.server.set_log("ns", pod, line(error="NotARepository", message="not found"))
    failed = await eventually(lambda: (c := condition(api)) and c["status"] == "False" and c)
    assert failed["reason"] == "NotARepository" and "nothing served yet" in failed["message"]
    assert "revision" not in api.site_status("ns", "web")["content"]


async def test_dropping_git_removes_the_writer_and_its_policy(api: Api, operator) -> None:
    await operator(FAST)
    await api.create_site(site("web", content={"git": GIT}))
    await eventually(lambda: api.get("apps/v1/deployments", "ns", "web-content"))
    await eventually(lambda: api.get("networking.k8s.io/v1/networkpolicies", "ns", "web-content"))
    await eventually(lambda: api.get("v1/configmaps", "ns", "web"))
    await api.patch_site("ns", "web", {"spec": {"content": None}})
    await eventually(lambda: api.get("apps/v1/deployments", "ns", "web-content") is None)
    await eventually(lambda: api.get("networking.k8s.io/v1/networkpolicies", "ns", "web-content") is None)
    await eventually(lambda: api.get("v1/configmaps", "ns", "web") is None)
    assert api.get("apps/v1/deployments", "ns", "web") is not None
    await eventually(lambda: condition(api) is None and "content" not in api.site_status("ns", "web"))


@pytest.mark.parametrize(("git", "field"), [
    ({"repository": "http://git.example.com/site.git"}, "spec.content.git.repository"),
    ({"repository": "https://me:token@git.example.com/site.git"}, "spec.content.git.repository"),
    ({**GIT, "ref": "bad..ref"}, "spec.content.git.ref"),
    ({**GIT, "interval": 5}, "spec.content.git.interval"),
    ({**GIT, "subPath": "../../etc"}, "spec.content.git.subPath"),
])
async def test_bad_input_is_refused_with_the_field_named(api: Api, operator, git: dict[str, Any], field: str) -> None:
    await operator(FAST)
    await api.create_site(site("web", content={"git": git}))
    ready = await eventually(lambda: (c := condition(api, "Ready")) and c["status"] == "False" and c)
    assert ready["reason"] == "InvalidSpec" and ready["message"].startswith(field)
    assert api.site_status("ns", "web")["phase"] == "Failed"
    assert api.get("apps/v1/deployments", "ns", "web-content") is None
