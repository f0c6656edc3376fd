"""`httpd-operator render` and `demo`, run as a user runs them."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "httpd_operator"]


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, input=stdin, cwd=ROOT, timeout=120)


def test_render_prints_every_object_of_a_site() -> None:
    result = run("render", "-f", "examples/site.yaml", "-n", "shop")
    assert result.returncode == 0, result.stderr
    objects = list(yaml.safe_load_all(result.stdout))
    assert [(o["kind"], o["metadata"]["name"], o["metadata"]["namespace"]) for o in objects] == [
        ("PersistentVolumeClaim", "web-htdocs", "shop"), ("Deployment", "web", "shop"), ("Service", "web", "shop"),
        ("NetworkPolicy", "web", "shop")]


def test_render_resolves_from_site_within_the_file() -> None:
    result = run("render", "-f", "examples/shared.yaml")
    assert result.returncode == 0, result.stderr
    deployments = [o for o in yaml.safe_load_all(result.stdout) if o["kind"] == "Deployment"]
    preview = next(d for d in deployments if d["metadata"]["name"] == "blog-preview")
    assert preview["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "blog-htdocs"


def test_render_refuses_like_the_operator_and_takes_its_policy_options() -> None:
    refused = run("render", "-f", "examples/hostpath.yaml")
    assert refused.returncode == 1
    assert "HttpdSite default/local: HostPathNotAllowed: spec.volume.hostPath.path" in refused.stderr
    assert refused.stdout == ""
    allowed = run("render", "-f", "examples/hostpath.yaml", "--allow-host-path", "/srv/www")
    assert allowed.returncode == 0, allowed.stderr
    bad = run("render", "-f", "-", stdin="kind: HttpdSite\napiVersion: httpd.dev/v1alpha1\n"
                                          "metadata: {name: x}\nspec: {port: 80}\n")
    assert bad.returncode == 1 and "InvalidSpec: spec.port" in bad.stderr


def test_demo_reaches_ready_and_says_the_api_is_emulated() -> None:
    result = run("demo", "--timeout", "60")
    assert result.returncode == 0, result.stderr
    assert "EMULATED" in result.stdout
    rows = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()
            if line.split() and line.split()[0] in ("web", "shop", "docs", "blog", "blog-preview", "local")}
    assert rows == {"web": "Ready", "shop": "Ready", "docs": "Ready", "blog": "Ready",
                    "blog-preview": "Ready", "local": "Failed"}


def test_demo_lists_what_the_operator_made_and_its_hints_work_in_a_fresh_shell() -> None:
    result = run("demo", "--timeout", "60")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "OS signals" not in out + result.stderr and out.count("HostPathNotAllowed") == 1
    made = out.split("Objects the operator made")[1].split("\n\n")[0].splitlines()[1:]
    kinds = {line.split()[0] for line in made}
    assert kinds == {"PersistentVolumeClaim", "Deployment", "Service", "PodDisruptionBudget", "ConfigMap",
                     "HorizontalPodAutoscaler", "Ingress", "CronJob", "NetworkPolicy",
                     "PersistentVolume"}  # the NFS example's export, as a volume and a claim
    names = {line.split()[1] for line in made}
    assert "default/backups" not in names and "default/team-content" not in names  # the user's own claims
    fresh = {"PATH": "/usr/bin:/bin", "HOME": str(ROOT)}  # no venv activated, nothing on PATH
    allow = next(line for line in out.splitlines() if "To allow it:" in line).split("To allow it: ")[1]
    hints = out.split("Next, in this folder (no cluster needed):\n")[1].splitlines()
    for hint in hints:
        done = subprocess.run(["bash", "-c", hint.split("  #")[0]], capture_output=True, text=True, cwd=ROOT,
                              env=fresh, timeout=120)
        assert done.returncode == 0, (hint, done.stderr)
    allowed = subprocess.run(["bash", "-c", allow + " --timeout 60"], capture_output=True, text=True, cwd=ROOT,
                             env=fresh, timeout=180)
    assert allowed.returncode == 0 and "HostPathNotAllowed" not in allowed.stdout, allowed.stdout
    assert any(line.split()[:2] == ["local", "Ready"] for line in allowed.stdout.splitlines())


def test_render_takes_a_resource_preset_and_refuses_a_bad_one_naming_the_field() -> None:
    def httpd(result: subprocess.CompletedProcess[str]) -> dict[str, object]:
        assert result.returncode == 0, result.stderr
        deployment = next(o for o in yaml.safe_load_all(result.stdout) if o["kind"] == "Deployment")
        return deployment["spec"]["template"]["spec"]["containers"][0]  # type: ignore[no-any-return]

    preset = httpd(run("render", "-f", "examples/site.yaml", "--default-resources", '{"requests": {"cpu": "1"}}'))
    assert preset["resources"] == {"requests": {"cpu": "1"}}
    assert "resources" not in httpd(run("render", "-f", "examples/site.yaml", "--default-resources", "{}"))
    for bad, said in (("{requests: {cpu: lots}}", "--default-resources.requests.cpu: 'lots' is not a quantity"),
                      ("{request: {cpu: 1}}", "--default-resources.request: only requests and limits"),
                      ("[1", "--default-resources: not JSON or YAML"),
                      ("64Mi", "--default-resources: must be an object")):
        refused = run("render", "-f", "examples/site.yaml", "--default-resources", bad)
        assert refused.returncode == 1 and refused.stdout == ""
        assert said in refused.stderr and len(refused.stderr.strip().splitlines()) == 1, refused.stderr
