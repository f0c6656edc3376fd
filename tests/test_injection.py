"""Nothing from a site's spec reaches a shell or a config unescaped where it could change meaning.

The scripts the operator renders (seed, restore, backup archive) are fixed texts with paths and
names as positional arguments. Every string of the spec either is refused (SpecError naming the
field) or lands verbatim, as a whole value, in a data field of the rendered objects, never in a
command, args or env, and the objects stay valid for Kubernetes 1.33. spec.httpd.config is httpd
configuration by design: it lands whole in a file of its own, never inside an operator block.
"""

from __future__ import annotations

import functools
import pathlib
import subprocess
from collections.abc import Iterator
from typing import Any

import kubernetes_validate
import pytest
from support import site

from httpd_operator.errors import SpecError
from httpd_operator.render import render_body
from httpd_operator.render.backup import archive_command
from httpd_operator.render.mpm import mpm_sizing
from httpd_operator.render.volumes import SEED_SCRIPT, seed_command
from httpd_operator.settings import DOCUMENT_ROOT, Settings

SETTINGS = Settings(allowed_host_paths=("/srv/www",))
CANARY = "/tmp/httpd-operator-pwned"
# Each would run `touch CANARY` if it reached a shell unquoted.
HOSTILE = [
    f"$(touch {CANARY})",
    f"`touch {CANARY}`",
    f"x;touch {CANARY}",
    f"x\ntouch {CANARY}",
    f"x&&touch {CANARY}",
    f"x|touch {CANARY}",
    f"${{IFS}}touch${{IFS}}{CANARY}",
    f"'\";touch {CANARY};echo \"'",
    f"ünï€ødé-$(touch {CANARY})",
]
DEPLOYMENT_POD = "Deployment:spec.template.spec"


body = functools.partial(site, uid="uid-web")


def walk(value: Any, path: str) -> Iterator[tuple[str, Any, bool]]:
    """(path, leaf or key, is_key) for every string in an object."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield f"{path}.{k}", k, True
            yield from walk(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from walk(v, f"{path}[{i}]")
    elif isinstance(value, str):
        yield path, value, False


def occurrences(objects: list[dict[str, Any]], needle: str) -> dict[str, str]:
    """Where `needle` appears in the rendered objects: path -> the whole string it appears in."""
    found = {}
    for obj in objects:
        for path, text, is_key in walk(obj, obj["kind"] + ":"):
            if needle in text:
                found[path.replace(":.", ":") + (" (key)" if is_key else "")] = text
    return found


def pod_of(obj: dict[str, Any]) -> dict[str, Any] | None:
    if obj["kind"] == "Deployment":
        return obj["spec"]["template"]["spec"]
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    return None


def executable_strings(objects: list[dict[str, Any]]) -> list[str]:
    """Every string a container runtime would execute or export: command, args, env."""
    out = []
    for obj in objects:
        pod = pod_of(obj)
        if pod is None:
            continue
        for container in pod["containers"] + pod.get("initContainers", []):
            for key in ("command", "args", "env"):
                out.extend(text for _, text, _ in walk(container.get(key, []), key))
    return out


def assert_fixed_commands(objects: list[dict[str, Any]]) -> None:
    """The commands, args and env are the operator's own, whatever the spec says."""
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    httpd = pod["containers"][0]
    assert "command" not in httpd and "args" not in httpd
    assert [e["name"] for e in httpd["env"]] == ["HTTPD_PORT", *mpm_sizing(None)]
    assert all(e["value"].isdigit() for e in httpd["env"])
    for init in pod.get("initContainers", []):
        assert init["command"] == seed_command() and "args" not in init and "env" not in init
    for obj in objects:
        if obj["kind"] == "CronJob":
            backup = pod_of(obj)["containers"][0]  # type: ignore[index]
            assert backup["command"][:3] == archive_command("", "", "", 0)[:3] and "env" not in backup


# Where each field's value must land, as a whole string (paths as `occurrences` gives them).
FIELDS: list[tuple[str, Any, set[str]]] = [
    ("spec.image", lambda v: {"image": v},
     {f"{DEPLOYMENT_POD}.containers[0].image", f"{DEPLOYMENT_POD}.initContainers[0].image"}),
    ("spec.nodeSelector.disk", lambda v: {"nodeSelector": {"disk": v}}, {f"{DEPLOYMENT_POD}.nodeSelector.disk"}),
    ("spec.nodeSelector", lambda v: {"nodeSelector": {v: "ssd"}}, {f"{DEPLOYMENT_POD}.nodeSelector.{{v}} (key)"}),
    ("spec.podAnnotations.note", lambda v: {"podAnnotations": {"note": v}},
     {"Deployment:spec.template.metadata.annotations.note"}),
    ("spec.podAnnotations", lambda v: {"podAnnotations": {v: "x"}},
     {"Deployment:spec.template.metadata.annotations.{v} (key)"}),
    ("spec.volume.storageClassName", lambda v: {"volume": {"storageClassName": v}},
     {"PersistentVolumeClaim:spec.storageClassName"}),
    ("spec.volume.subPath", lambda v: {"volume": {"subPath": v}},
     {f"{DEPLOYMENT_POD}.containers[0].volumeMounts[0].subPath",
      f"{DEPLOYMENT_POD}.initContainers[0].volumeMounts[0].subPath"}),
    ("spec.volume.mountPath", lambda v: {"volume": {"mountPath": "/srv/" + v}},
     {f"{DEPLOYMENT_POD}.containers[0].volumeMounts[0].mountPath"}),
    ("spec.volume.hostPath.path", lambda v: {"volume": {"type": "HostPath", "hostPath": {"path": "/srv/www/" + v}}},
     {f"{DEPLOYMENT_POD}.volumes[0].hostPath.path"}),
    ("spec.volume.nfs.path", lambda v: {"volume": {"type": "NFS", "nfs": {"server": "nfs.local",
                                                                         "path": "/exports/" + v}}},
     {"PersistentVolume:spec.nfs.path"}),
    ("spec.volume.nfs.server", lambda v: {"volume": {"type": "NFS", "nfs": {"server": v}}}, set()),
    ("spec.volume.claimName", lambda v: {"volume": {"type": "ExistingClaim", "claimName": v}}, set()),
    ("spec.volume.fromSite", lambda v: {"volume": {"type": "FromSite", "fromSite": v}}, set()),
    ("spec.volume.size", lambda v: {"volume": {"size": v}}, set()),
    ("spec.volume.sizeLimit", lambda v: {"volume": {"type": "Ephemeral", "sizeLimit": v}}, set()),
    ("spec.tolerations", lambda v: {"tolerations": [{"key": v, "operator": "Exists"}]},
     {f"{DEPLOYMENT_POD}.tolerations[0].key"}),
    ("spec.affinity", lambda v: {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": [v]}]}]}}}},
     {f"{DEPLOYMENT_POD}.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
      ".nodeSelectorTerms[0].matchExpressions[0].values[0]"}),
    ("spec.resources", lambda v: {"resources": {"limits": {"memory": v}}},
     {f"{DEPLOYMENT_POD}.containers[0].resources.limits.memory"}),
    ("spec.httpd.config", lambda v: {"httpd": {"config": v}}, {"ConfigMap:data.50-site.conf"}),
    ("spec.httpd.modules", lambda v: {"httpd": {"modules": [v]}}, set()),
    ("spec.probes.readiness.path", lambda v: {"probes": {"readiness": {"path": "/" + v}}}, set()),
    ("spec.ingress.host", lambda v: {"ingress": {"host": v}}, set()),
    ("spec.ingress.path", lambda v: {"ingress": {"path": "/" + v}}, set()),
    ("spec.ingress.className", lambda v: {"ingress": {"className": v}}, set()),
    ("spec.ingress.tlsSecretName", lambda v: {"ingress": {"tlsSecretName": v}}, set()),
    ("spec.ingress.annotations.note", lambda v: {"ingress": {"annotations": {"note": v}}},
     {"Ingress:metadata.annotations.note"}),
    ("spec.backup.schedule", lambda v: {"backup": {"schedule": v, "target": {"claimName": "backups"}}}, set()),
    ("spec.backup.target.claimName", lambda v: {"backup": {"target": {"claimName": v}}}, set()),
    ("spec.volume.restoreFrom.archive", lambda v: {"volume": {"restoreFrom": {"claimName": "b", "archive": v}}},
     set()),
    ("spec.volume.restoreFrom.claimName",
     lambda v: {"volume": {"restoreFrom": {"claimName": v, "archive": "a.tar.gz"}}}, set()),
]


@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
@pytest.mark.parametrize("field,make,where", FIELDS, ids=[f[0] for f in FIELDS])
def test_every_string_is_refused_or_lands_verbatim_as_data(field: str, make: Any, where: set[str],
                                                           value: str) -> None:
    try:
        objects = render_body(body(**make(value)), SETTINGS).objects
    except SpecError as exc:
        assert exc.field.startswith(".".join(field.split(".")[:2])), exc.message
        assert exc.field in exc.message
        return
    assert where, f"{field} was expected to be refused, and was rendered"
    found = occurrences(objects, value)
    assert set(found) == {w.replace("{v}", value) for w in where}, found
    for path, text in found.items():  # verbatim and whole: never spliced into a larger string
        prefixed = path.endswith(("mountPath", "hostPath.path", "nfs.path"))  # "/srv/" + value in the spec
        assert text == value or prefixed and text.endswith("/" + value), (path, text)
    assert not [s for s in executable_strings(objects) if value in s]
    assert_fixed_commands(objects)
    for obj in objects:
        kubernetes_validate.validate(obj, "1.33.0", strict=True)


@pytest.mark.parametrize("field", ["spec.volume.nfs.server", "spec.volume.claimName", "spec.volume.fromSite",
                                   "spec.volume.size", "spec.volume.sizeLimit"])
def test_names_and_quantities_with_shell_characters_are_refused(field: str) -> None:
    make = next(f[1] for f in FIELDS if f[0] == field)
    for value in HOSTILE:
        with pytest.raises(SpecError) as exc:
            render_body(body(**make(value)), SETTINGS)
        assert exc.value.field == field and exc.value.reason == "InvalidSpec"


def test_hostile_metadata_name_is_refused() -> None:
    for value in HOSTILE:
        with pytest.raises(SpecError) as exc:
            render_body({**body(), "metadata": {"name": value, "namespace": "ns"}}, SETTINGS)
        assert exc.value.field == "metadata.name"


@pytest.mark.parametrize("field,volume", [
    ("spec.volume.fromSite", {"type": "FromSite", "fromSite": "../shop"}),
    ("spec.volume.fromSite", {"type": "FromSite", "fromSite": "shop/../web"}),
    ("spec.volume.fromSite", {"type": "FromSite", "fromSite": "shop;rm"}),
    ("spec.volume.subPath", {"subPath": "../other"}),
    ("spec.volume.subPath", {"subPath": "public/../../other"}),
    ("spec.volume.subPath", {"subPath": "public/.."}),
    ("spec.volume.subPath", {"subPath": "/etc"}),
    ("spec.volume.subPath", {"subPath": "a/\x00/b"}),
    ("spec.volume.mountPath", {"mountPath": "/srv/../etc"}),
    ("spec.volume.hostPath.path", {"type": "HostPath", "hostPath": {"path": "/srv/www/../../etc"}}),
    ("spec.volume.nfs.path", {"type": "NFS", "nfs": {"server": "nfs.local", "path": "/exports/../../etc"}}),
])
def test_dot_dot_escapes_are_refused(field: str, volume: dict[str, Any]) -> None:
    with pytest.raises(SpecError) as exc:
        render_body(body(volume=volume), SETTINGS)
    assert exc.value.field == field and field in exc.value.message


# -- the seed script, run for real ------------------------------------------------------------------

def docroot(folder: pathlib.Path) -> pathlib.Path:
    folder.mkdir(parents=True)
    (folder / "index.html").write_text("<h1>It works</h1>\n")
    return folder


@pytest.mark.parametrize("name", HOSTILE, ids=range(len(HOSTILE)))
def test_rendered_seed_command_runs_hostile_sub_paths_as_data(tmp_path: pathlib.Path, name: str) -> None:
    """The kubelet mounts <volume>/<subPath> at the seed target; the script gets only paths."""
    canary = tmp_path / "pwned"
    sub = name.replace(CANARY, str(canary))
    deployment = next(o for o in render_body(body(volume={"subPath": sub}), SETTINGS).objects
                      if o["kind"] == "Deployment")
    init = deployment["spec"]["template"]["spec"]["initContainers"][0]
    assert init["volumeMounts"][0]["subPath"] == sub
    command = init["command"]
    assert command == seed_command() and command[2] == SEED_SCRIPT and command[-2] == DOCUMENT_ROOT
    assert sub not in " ".join(command)
    # What the pod sees, with the folders named after the hostile value (the image's docroot too).
    src = docroot(tmp_path / "image" / sub)
    target = tmp_path / "volume" / sub
    target.mkdir(parents=True)
    run = [*command[:-2], str(src), str(target)]
    out = subprocess.run(run, check=True, capture_output=True, text=True, cwd=tmp_path, timeout=30)
    assert "copied" in out.stdout
    assert (target / "index.html").read_text() == "<h1>It works</h1>\n"
    assert not canary.exists() and not pathlib.Path(CANARY).exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image", "volume"]


def test_a_thousand_line_config_lands_whole_in_its_own_file() -> None:
    """The config is httpd's, as written: one ConfigMap file, no operator text around it (a stray
    `</IfModule>` cannot close an operator block), never in a command; the pods roll on a checksum."""
    config = f"Define X \"$(touch {CANARY})\"\n" * 999 + "</IfModule>\n<Directory />"
    objects = render_body(body(httpd={"config": config, "modules": ["mod_proxy", "proxy_http_module"]}),
                          SETTINGS).objects
    assert occurrences(objects, "Define X") == {"ConfigMap:data.50-site.conf": config}
    config_map = next(o for o in objects if o["kind"] == "ConfigMap")
    assert config_map["data"]["00-modules.conf"].count("LoadModule") == 2
    assert "LoadModule proxy_http_module modules/mod_proxy_http.so" in config_map["data"]["00-modules.conf"]
    assert not [s for s in executable_strings(objects) if "Define" in s]
    for obj in objects:
        kubernetes_validate.validate(obj, "1.33.0", strict=True)


# -- what kubernetes-validate cannot see --------------------------------------------------------------

@pytest.mark.parametrize("field,spec", [
    ("spec.nodeSelector", {"nodeSelector": {"disk": HOSTILE[0]}}),
    ("spec.nodeSelector", {"nodeSelector": {HOSTILE[0]: "ssd"}}),
    ("spec.podAnnotations", {"podAnnotations": {HOSTILE[0]: "x"}}),
    ("spec.volume.storageClassName", {"volume": {"storageClassName": HOSTILE[0]}}),
    ("spec.tolerations", {"tolerations": [{"key": HOSTILE[0], "operator": "Exists"}]}),
    ("spec.resources", {"resources": {"limits": {"memory": HOSTILE[0]}}}),
])
def test_strings_the_api_server_would_refuse_are_refused(field: str, spec: dict[str, Any]) -> None:
    with pytest.raises(SpecError) as exc:
        render_body(body(**spec), SETTINGS)
    assert exc.value.field.startswith(field)
