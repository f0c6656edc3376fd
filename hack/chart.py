"""Package the Helm chart, or push it to an OCI registry, with Helm's own engine (helm-python-sdk,
the test extra; no helm binary):

    python hack/chart.py package DIR         writes DIR/httpd-operator-VERSION.tgz, prints its path
    python hack/chart.py push REGISTRY       packages, then pushes to oci://REGISTRY (host/path);
                                             log in first with Helm's registry configuration
                                             (HELM_REGISTRY_CONFIG) or REGISTRY_USER/REGISTRY_PASSWORD
"""

from __future__ import annotations

import os
import pathlib
import sys
import tempfile

CHART = pathlib.Path(__file__).resolve().parents[1] / "manifests" / "helm" / "httpd-operator"


def package(directory: str) -> str:
    import helm_python

    chart = helm_python.Chart.load(CHART)
    pathlib.Path(directory).mkdir(parents=True, exist_ok=True)
    return chart.save(directory)


def push(registry: str) -> str:
    import helm_python

    client = helm_python.RegistryClient(plain_http=os.environ.get("REGISTRY_PLAIN_HTTP") == "1")
    if os.environ.get("REGISTRY_USER"):
        client.login(registry.split("/", 1)[0], os.environ["REGISTRY_USER"], os.environ["REGISTRY_PASSWORD"])
    with tempfile.TemporaryDirectory() as tmp:
        archive = package(tmp)
        client.push(archive, f"oci://{registry.removeprefix('oci://').rstrip('/')}")
        return f"oci://{registry.rstrip('/')}/{pathlib.Path(archive).name}"


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("package", "push"):
        print(__doc__, file=sys.stderr)
        return 2
    print(package(argv[1]) if argv[0] == "package" else push(argv[1]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
