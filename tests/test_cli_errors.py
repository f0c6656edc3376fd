"""A user's mistakes at the command line: one line that says what and where, and an exit code
that says why (0 ok, 1 refused, 2 bad usage or input, 3 no cluster), never a traceback.

The CLI runs as a subprocess, as users run it; the cluster is the emulated API server."""

from __future__ import annotations

import asyncio
import os
import pathlib
import signal
import socket
import subprocess
import sys

import kmock
import pytest
import yaml
from support import ROOT, Api, eventually

from httpd_operator.cli import parser

CLI = [sys.executable, "-m", "httpd_operator"]
SITE = "apiVersion: httpd.dev/v1alpha1\nkind: HttpdSite\nmetadata:\n  name: {name}\n{extra}spec:\n  replicas: 1\n"


def run(*args: str, stdin: str | None = None, env: dict[str, str] | None = None,
        cwd: pathlib.Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, input=stdin, cwd=cwd, timeout=120,
                          env=env)


async def arun(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI, without blocking the event loop the emulated API server runs on."""
    return await asyncio.to_thread(run, *args, env=env)


def one_line(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def site(name: str, namespace: str | None = None) -> str:
    """A HttpdSite as a user writes it: spec on line 5 (6 with a namespace), replicas on the next."""
    return SITE.format(name=name, extra=f"  namespace: {namespace}\n" if namespace else "")


def deployments(stdout: str) -> list[str]:
    return [f"{o['metadata']['namespace']}/{o['metadata']['name']}" for o in yaml.safe_load_all(stdout)
            if o and o["kind"] == "Deployment"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def unreachable_kubeconfig(tmp_path: pathlib.Path) -> tuple[pathlib.Path, str]:
    server = f"https://127.0.0.1:{free_port()}"
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "lab",
        "clusters": [{"name": "lab", "cluster": {"server": server}}],
        "users": [{"name": "me", "user": {"token": "t"}}],
        "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "me"}}]}))
    return path, server


# --- render: input files ---------------------------------------------------------------------

def test_yaml_syntax_error_is_file_line_column(tmp_path: pathlib.Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(site("web") + "  port: [8080\n")
    line = one_line(run("render", "-f", str(bad)), 2)
    assert line.startswith(f"httpd-operator: {bad}:8:1: expected ',' or ']'"), line
    assert "(while parsing a flow sequence at 7:9)" in line


def test_a_missing_file_is_named_and_nothing_is_rendered(tmp_path: pathlib.Path) -> None:
    result = run("render", "-f", "nope.yaml", "-f", "examples/site.yaml")
    assert one_line(result, 2) == "httpd-operator: nope.yaml: no such file or directory"
    assert result.stdout == ""


def test_every_file_given_is_rendered_directories_and_stdin_too(tmp_path: pathlib.Path) -> None:
    (tmp_path / "a.yaml").write_text(site("a"))
    (tmp_path / "b.yml").write_text(site("b"))
    (tmp_path / "notes.txt").write_text("not YAML: [")  # not a manifest suffix: not read, as kubectl
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.yaml").write_text(site("c"))
    result = run("render", "-f", "examples/site.yaml", "-f", str(tmp_path), "-f", "-", stdin=site("d"))
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert deployments(result.stdout) == ["default/web", "default/a", "default/b", "default/d"]
    recursive = run("render", "-R", "-f", str(tmp_path))
    assert deployments(recursive.stdout) == ["default/a", "default/b", "default/c"]


def test_sites_are_keyed_by_namespace_and_name_and_duplicates_warned(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "sites.yaml"
    again = site("web", "a").replace("replicas: 1", "replicas: 3")
    path.write_text("---\n".join([site("web", "a"), site("web", "b"), again]))
    result = run("render", "-f", str(path))
    assert result.returncode == 0
    assert deployments(result.stdout) == ["b/web", "a/web"]
    replicas = {f"{o['metadata']['namespace']}": o["spec"]["replicas"]
                for o in yaml.safe_load_all(result.stdout) if o["kind"] == "Deployment"}
    assert replicas == {"a": 3, "b": 1}  # the last definition wins, as with kubectl apply
    assert one_line(result, 0) == (f"warning: {path}:17: HttpdSite a/web: defined again (first at {path}:1); "
                                   "the last one wins, as with kubectl apply")


def test_unknown_fields_are_warned_with_their_place(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text(site("web").replace("  replicas: 1", "  replics: 3\n  volume: {type: Ephemeral, sizeLimt: 1Gi}"))
    result = run("render", "-f", str(path))
    assert result.returncode == 0
    assert result.stderr.splitlines() == [
        f'warning: {path}:6:3: HttpdSite default/web: unknown field "spec.replics" (the API server would drop it)',
        f'warning: {path}:7:29: HttpdSite default/web: unknown field "spec.volume.sizeLimt" '
        "(the API server would drop it)"]


def test_a_wrong_api_version_or_kind_is_warned(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "wrong.yaml"
    path.write_text(site("web").replace("httpd.dev/v1alpha1", "httpd.dev/v1"))
    result = run("render", "-f", str(path))
    assert result.returncode == 0 and deployments(result.stdout) == ["default/web"]
    assert one_line(result, 0) == (f"warning: {path}:1:1: HttpdSite default/web: apiVersion 'httpd.dev/v1' is not "
                                   "served (the API server would refuse it; use httpd.dev/v1alpha1)")
    path.write_text(site("web").replace("kind: HttpdSite", "kind: HttpSite"))
    result = run("render", "-f", str(path))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"warning: {path}:2:1: kind 'HttpSite' is not served by httpd.dev (did you mean HttpdSite?): skipped",
        f"httpd-operator: no HttpdSite found in {path}"]


def test_a_document_that_is_not_an_object_is_named(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "list.yaml"
    path.write_text(site("web") + "---\n- just\n- a list\n")
    assert one_line(run("render", "-f", str(path)), 2) == (
        f"httpd-operator: {path}:8: expected an object (apiVersion, kind, metadata...), got list")


def test_a_refused_site_exits_1_and_bad_usage_2() -> None:
    refused = run("render", "-f", "examples/hostpath.yaml")
    assert refused.returncode == 1 and "HttpdSite default/local: HostPathNotAllowed" in refused.stderr
    bad_flag = run("render", "-f", "examples/site.yaml", "--allow-host-path", "srv")
    assert one_line(bad_flag, 2) == "httpd-operator: --allow-host-path 'srv': must be an absolute path without '..'"
    assert run("render").returncode == 2  # argparse: -f is required
    assert run("volumes").returncode == 2  # a sub-command is required


def test_debug_shows_the_traceback() -> None:
    result = run("--debug", "render", "-f", "nope.yaml")
    assert result.returncode != 0 and "Traceback" in result.stderr and "InputError" in result.stderr
    assert "Traceback" in run("render", "-f", "nope.yaml", "--debug").stderr


def test_every_sub_command_and_option_has_help() -> None:
    def walk(p, path):  # type: ignore[no-untyped-def]
        for action in p._actions:
            if action.choices and hasattr(action, "_name_parser_map"):
                for name, child in action._name_parser_map.items():
                    yield from walk(child, [*path, name])
            elif action.dest != "help":
                yield path, action

    missing = [(" ".join(path), action.option_strings or action.dest) for path, action in walk(parser(), [])
               if not action.help]
    assert missing == []
    for command in (["volumes", "list"], ["volumes", "prune"], ["backup", "now"], ["run"], ["render"], ["demo"]):
        result = run(*command, "--help")
        assert result.returncode == 0 and "exit codes: 0 done; 1" in result.stdout, command


# --- the cluster: kubeconfig, reachability ------------------------------------------------------

def _env(home: pathlib.Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "KUBERNETES_SERVICE_HOST")}
    return {**env, "HOME": str(home), **extra}


def test_no_kubeconfig_says_which_were_tried(tmp_path: pathlib.Path) -> None:
    line = one_line(run("volumes", "list", env=_env(tmp_path)), 3)
    assert line == (f"httpd-operator: no kubeconfig (tried --kubeconfig: not given, $KUBECONFIG: unset, "
                    f"{tmp_path}/.kube/config: not found) and not running in a pod "
                    "(no KUBERNETES_SERVICE_HOST and service account token)")
    missing = one_line(run("backup", "now", "web", env=_env(tmp_path, KUBECONFIG=str(tmp_path / "k"))), 3)
    assert missing == f"httpd-operator: kubeconfig not found: {tmp_path}/k (from $KUBECONFIG)"
    given = one_line(run("volumes", "list", "--kubeconfig", str(tmp_path / "k"), env=_env(tmp_path)), 3)
    assert given == f"httpd-operator: kubeconfig not found: {tmp_path}/k (from --kubeconfig)"


def test_a_broken_kubeconfig_is_file_line_column(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "kubeconfig"
    path.write_text("apiVersion: v1\nclusters: [\n")
    line = one_line(run("volumes", "list", "--kubeconfig", str(path)), 3)
    assert line == f"httpd-operator: {path}:3:1: expected the node content, but found '<stream end>'"
    path.write_text(yaml.safe_dump({"current-context": "x", "contexts": [{"name": "y"}]}))
    line = one_line(run("volumes", "list", "--kubeconfig", str(path)), 3)
    assert line == f"httpd-operator: kubeconfig {path}: no context named 'x'"


@pytest.mark.parametrize("command", [["volumes", "list"], ["volumes", "prune", "--yes"], ["backup", "now", "web"]])
def test_an_unreachable_server_is_named_with_the_cause(tmp_path: pathlib.Path, command: list[str]) -> None:
    kubeconfig, server = unreachable_kubeconfig(tmp_path)
    line = one_line(run(*command, "--kubeconfig", str(kubeconfig)), 3)
    assert line == f"httpd-operator: cannot reach {server} (kubeconfig {kubeconfig}, context lab): Connection refused"


def test_a_proxy_that_is_not_supported_is_named_with_its_kubeconfig(tmp_path: pathlib.Path) -> None:
    kubeconfig, _ = unreachable_kubeconfig(tmp_path)
    config = yaml.safe_load(kubeconfig.read_text())
    config["clusters"][0]["cluster"]["proxy-url"] = "socks5://proxy.example:1080"
    kubeconfig.write_text(yaml.safe_dump(config))
    line = one_line(run("volumes", "list", "--kubeconfig", str(kubeconfig)), 3)
    assert line == (f"httpd-operator: kubeconfig {kubeconfig}, context lab: proxy-url: a socks5 proxy is not "
                    "supported (only http and https)")


async def test_refused_credentials_exit_3(api: Api) -> None:
    api.server[lambda r: r.url.path.endswith("/persistentvolumeclaims")] << kmock.KubernetesError(
        status=401, reason="Unauthorized", message="Unauthorized")
    line = one_line(await arun("volumes", "list", "--kubeconfig", str(api.kubeconfig)), 3)
    assert line.startswith(f"httpd-operator: {api.url.rstrip('/')} refused the credentials (kubeconfig "), line


async def test_run_with_refused_credentials_exits_3(api: Api) -> None:
    api.server[lambda r: r.url.path == "/apis/httpd.dev/v1alpha1"] << kmock.KubernetesError(
        status=401, reason="Unauthorized", message="Unauthorized")
    line = one_line(await arun("run", "--kubeconfig", str(api.kubeconfig)), 3)
    assert line == (f"httpd-operator: {api.url.rstrip('/')} refused the credentials (kubeconfig {api.kubeconfig}, "
                    "context emulator): 401 Unauthorized"), line


async def test_volumes_and_backup_work_against_a_cluster(api: Api) -> None:
    listed = await arun("volumes", "list", "-A", "--kubeconfig", str(api.kubeconfig))
    assert listed.returncode == 0 and listed.stdout.startswith("NAMESPACE"), listed.stderr
    missing = await arun("backup", "now", "web", "-n", "ns", "--kubeconfig", str(api.kubeconfig))
    assert one_line(missing, 1) == ("site ns/web has no backup CronJob: set spec.backup.target.claimName first")


# --- run: retries and SIGTERM ----------------------------------------------------------------

async def _operator(kubeconfig: pathlib.Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        *CLI, "run", "--kubeconfig", str(kubeconfig), stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE, cwd=ROOT)


async def _lines_until(proc: asyncio.subprocess.Process, want: str, count: int) -> list[str]:
    lines: list[str] = []
    async with asyncio.timeout(60):
        while sum(want in line for line in lines) < count:
            raw = await proc.stderr.readline()  # type: ignore[union-attr]
            assert raw, lines
            lines.append(raw.decode())
    return lines


async def _terminated(proc: asyncio.subprocess.Process) -> str:
    proc.send_signal(signal.SIGTERM)
    async with asyncio.timeout(60):
        rest = await proc.stderr.read()  # type: ignore[union-attr]
        assert await proc.wait() == 0
    return rest.decode()


async def test_run_against_an_unreachable_server_says_so_once_per_retry(tmp_path: pathlib.Path) -> None:
    kubeconfig, server = unreachable_kubeconfig(tmp_path)
    proc = await _operator(kubeconfig)
    lines = await _lines_until(proc, "retrying in", 2)
    rest = await _terminated(proc)
    assert [line.split(" ", 3)[3].rstrip() for line in lines] == [
        f"httpd_operator.runner: cannot reach {server} (kubeconfig {kubeconfig}, context lab): "
        f"Connection refused; retrying in {delay} s (attempt {n})" for n, delay in ((1, 1), (2, 2))]
    assert "Traceback" not in rest and "Unclosed" not in rest and "ERROR" not in rest, rest


async def test_run_waits_for_the_crd_and_says_so(api: Api) -> None:
    api.server[lambda r: r.url.path == "/apis/httpd.dev/v1alpha1"] << kmock.KubernetesError(
        status=404, reason="NotFound", message="the server could not find the requested resource")
    proc = await _operator(api.kubeconfig)
    lines = await _lines_until(proc, "retrying in", 1)
    await _terminated(proc)
    assert lines[-1].rstrip().endswith(
        "it does not serve httpd.dev/v1alpha1: is the CRD installed? (kubectl apply -f crds/httpdsites.yaml); "
        "retrying in 1 s (attempt 1)"), lines


async def test_run_stops_cleanly_on_sigterm(api: Api) -> None:
    proc = await _operator(api.kubeconfig)
    await eventually(lambda: any(r.url.query.get("watch") in ("true", "1") and "httpdsites" in r.url.path
                                 for r in api.server._requests), timeout=60, what="the operator watching sites")
    rest = await _terminated(proc)
    assert "Traceback" not in rest and "Unclosed" not in rest and "ERROR" not in rest, rest


async def test_after_uninstall_every_claim_shows_as_retained(api: Api) -> None:
    """With the CRD gone (kubectl delete -k), no site uses any claim: list says so, no error."""
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
             "metadata": {"name": "web-htdocs", "labels": {"app.kubernetes.io/managed-by": "httpd-operator",
                                                           "app.kubernetes.io/instance": "web"}},
             "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}
    await api.request("POST", "/api/v1/namespaces/ns/persistentvolumeclaims", claim)
    api.server[lambda r: "/httpdsites" in r.url.path] << kmock.KubernetesError(
        status=404, reason="NotFound", message="the server could not find the requested resource")
    listed = await arun("volumes", "list", "-A", "--kubeconfig", str(api.kubeconfig))
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[:2] + [line.split()[-2]] for line in listed.stdout.splitlines()[1:]] == [
        ["ns", "web-htdocs", "no"]]


@pytest.mark.parametrize(("text", "message"), [
    ("", "httpd-operator: no HttpdSite found in {path}"),
    ("apiVersion: httpd.dev/v1alpha1\nkind: HttpdSite\nmetadata: foo\n",
     "warning: {path}:3:1: HttpdSite: metadata must be an object: skipped"),
    ("apiVersion: httpd.dev/v1alpha1\nkind: HttpdSite\nmetadata: {name: 5}\nspec: 3\n",
     "warning: {path}:3:12: HttpdSite: metadata.name must be a string: skipped"),
    ("a: &x [*x]\n", "httpd-operator: {path}:1:4: a recursive alias (an object that contains itself)"),
    ("\udcff", "httpd-operator: {path}: not UTF-8 text"),
])
def test_odd_files_are_one_line_and_exit_2(tmp_path: pathlib.Path, text: str, message: str) -> None:
    path = tmp_path / "odd.yaml"
    path.write_bytes(text.encode("utf-8", "surrogateescape"))
    result = run("render", "-f", str(path))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.splitlines()[0] == message.format(path=path)


def test_no_file_of_the_hostile_corpus_is_an_internal_error(capsys: pytest.CaptureFixture[str]) -> None:
    from httpd_operator.cli import main

    for path in sorted((ROOT / "tests" / "corpus").glob("*.yaml")):
        code, err = main(["render", "-f", str(path)]), capsys.readouterr().err
        assert code in (0, 1, 2) and "internal error" not in err, (path, err)
