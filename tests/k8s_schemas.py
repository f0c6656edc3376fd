"""Validate objects as Kubernetes would: its own schemas (strict), or a CRD's for custom resources."""

from __future__ import annotations

import functools
import pathlib
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml


@functools.cache
def crd_schemas(folder: pathlib.Path) -> dict[tuple[str, str], dict[str, Any]]:
    """(apiVersion, kind) -> openAPIV3Schema of every CRD in the YAML files of `folder`."""
    out = {}
    for path in sorted(folder.glob("*.yaml")):
        for crd in yaml.safe_load_all(path.read_text()):
            if crd and crd.get("kind") == "CustomResourceDefinition":
                for version in crd["spec"]["versions"]:
                    out[(f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"])] = \
                        version["schema"]["openAPIV3Schema"]
    return out


def validate(obj: dict[str, Any], kube_version: str, crds: pathlib.Path) -> None:
    where = f"{obj['kind']} {obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}"
    custom = crd_schemas(crds).get((obj["apiVersion"], obj["kind"]))
    if custom is not None:
        try:
            jsonschema.validate(obj, custom)
        except jsonschema.ValidationError as exc:
            pytest.fail(f"{where} invalid against its CRD: {'.'.join(map(str, exc.path))}: {exc.message}")
        return
    try:
        kubernetes_validate.validate(obj, kube_version, strict=True)
    except kubernetes_validate.SchemaNotFoundError:
        pytest.fail(f"{where}: neither Kubernetes {kube_version} nor a CRD of {crds} defines it")
    except kubernetes_validate.ValidationError as exc:
        pytest.fail(f"{where} invalid for {kube_version}: {'.'.join(map(str, exc.path))}: {exc.message}")
