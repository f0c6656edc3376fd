"""What the benchmarks against the local control plane share (bench/real_bench.py,
bench/real_floor_bench.py): the operator's install and its ServiceAccount's kubeconfig, and its
requests read back from the apiserver's audit log."""

from __future__ import annotations

import base64
import json
import pathlib
import subprocess
from typing import Any

import yaml

from httpd_operator.connection import Cluster
from httpd_operator.kube import call_once

ROOT = pathlib.Path(__file__).resolve().parent.parent
USER = "system:serviceaccount:httpd-operator:httpd-operator"
KUBECTL = pathlib.Path.home() / ".cache/httpd-operator/kubernetes-1.20.2/bin/kubectl"
Mark = tuple[int, int]  # the audit log's inode and size at a moment


def install(admin_config: pathlib.Path) -> None:
    """The CRD, the operator's namespace and its RBAC, as the manifests ship them."""
    subprocess.run([str(KUBECTL), "--kubeconfig", str(admin_config), "apply", "-f", str(ROOT / "crds/httpdsites.yaml"),
                    "-f", str(ROOT / "manifests/base/namespace.yaml"), "-f", str(ROOT / "manifests/base/rbac.yaml")],
                   check=True, capture_output=True)


def operator_kubeconfig(admin: Cluster, admin_config: pathlib.Path, folder: pathlib.Path) -> pathlib.Path:
    """A kubeconfig with the operator ServiceAccount's token (from the Secret 1.20 makes for it)."""
    account = call_once(admin, "GET", "/api/v1/namespaces/httpd-operator/serviceaccounts/httpd-operator")
    secret = call_once(admin, "GET", f"/api/v1/namespaces/httpd-operator/secrets/{account['secrets'][0]['name']}")
    config = yaml.safe_load(admin_config.read_text())
    config["users"] = [{"name": "operator", "user": {"token": base64.b64decode(secret["data"]["token"]).decode()}}]
    config["contexts"][0]["context"]["user"] = "operator"
    out = folder / "kubeconfig"
    out.write_text(yaml.safe_dump(config))
    return out


def mark(path: pathlib.Path) -> Mark:
    st = path.stat()
    return st.st_ino, st.st_size


def audit(path: pathlib.Path, since: Mark) -> list[dict[str, Any]]:
    """The ServiceAccount's completed requests logged since the mark, across a rotation (the
    apiserver renames a full log to audit-TIME.log and starts a new one)."""
    inode, offset = since
    chunks = []
    if path.stat().st_ino != inode:
        rotated = next((p for p in path.parent.glob(f"{path.stem}-*{path.suffix}") if p.stat().st_ino == inode), None)
        if rotated is not None:
            with rotated.open("rb") as f:
                f.seek(offset)
                chunks.append(f.read())
        offset = 0
    with path.open("rb") as f:
        f.seek(offset)
        chunks.append(f.read())
    out = []
    for line in b"\n".join(chunks).split(b"\n"):
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("user", {}).get("username") == USER and entry.get("stage") == "ResponseComplete":
            out.append(entry)
    return out
