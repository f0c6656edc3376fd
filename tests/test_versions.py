"""One version everywhere: every image reference the project ships names an image `make images`
builds (hack/images), tagged from one source each: the operator from pyproject.toml's version,
httpd from the version the image compiles, the exporter from the Debian package it unpacks."""

from __future__ import annotations

import pathlib
import re
import subprocess
import tomllib
from typing import Any

import yaml

from httpd_operator import settings

ROOT = pathlib.Path(__file__).resolve().parents[1]
CHART = ROOT / "manifests" / "helm" / "httpd-operator"


def refs() -> dict[str, str]:
    out = subprocess.run(["bash", str(ROOT / "hack" / "images"), "refs"], capture_output=True, text=True,
                         check=True).stdout.split()
    return dict(zip(("operator", "httpd", "exporter", "git"), out, strict=True))


def operator_container() -> dict[str, Any]:
    docs = list(yaml.safe_load_all((ROOT / "manifests" / "base" / "operator.yaml").read_text()))
    (deployment,) = [d for d in docs if d["kind"] == "Deployment"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def test_tags_come_from_one_source_each() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    httpd = re.search(r"^HTTPD_VERSION=(\S+)$", (ROOT / "images/httpd/build-httpd.sh").read_text(), re.M)
    exporter = re.search(r"^prometheus-apache-exporter=([0-9.]+)-", (ROOT / "images/exporter/packages.txt").read_text(),
                         re.M)
    git = re.search(r"^git=(?:[0-9]+:)?([0-9.]+)-", (ROOT / "images/git/packages.txt").read_text(), re.M)
    assert httpd and exporter and git
    assert refs() == {"operator": f"ghcr.io/httpd-operator/httpd-operator:{version}",
                      "httpd": f"ghcr.io/httpd-operator/httpd:{httpd.group(1)}",
                      "exporter": f"ghcr.io/httpd-operator/apache-exporter:{exporter.group(1)}",
                      "git": f"ghcr.io/httpd-operator/git-sync:{git.group(1)}"}


def test_the_operator_the_manifests_and_the_chart_name_the_images_built() -> None:
    built = refs()
    assert built["httpd"] == settings.DEFAULT_IMAGE
    assert built["exporter"] == settings.EXPORTER_IMAGE
    assert built["git"] == settings.GIT_IMAGE
    container = operator_container()
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert container["image"] == built["operator"]
    assert env["HTTPD_OPERATOR_DEFAULT_IMAGE"] == built["httpd"]
    assert env["HTTPD_OPERATOR_EXPORTER_IMAGE"] == built["exporter"]
    assert env["HTTPD_OPERATOR_GIT_IMAGE"] == built["git"]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    repository, _, tag = built["operator"].rpartition(":")
    assert (values["image"]["repository"], chart["appVersion"]) == (repository, tag)
    assert values["image"]["tag"] in ("", tag)
    assert values["defaultHttpdImage"] == built["httpd"]
    assert values["exporterImage"] == built["exporter"]
    assert values["gitImage"] == built["git"]


def test_no_other_image_reference_is_shipped() -> None:
    """Every image named in the manifests, the chart and the package is one of those built."""
    built = set(refs().values())
    named: set[str] = set()
    for path in [*(ROOT / "manifests").rglob("*.yaml"), *(ROOT / "operator" / "httpd_operator").rglob("*.py")]:
        named |= set(re.findall(r"\b((?:ghcr\.io|quay\.io|docker\.io)/[\w./-]+:[\w.-]+)", path.read_text()))
    assert named <= built, named - built
