"""httpd's MPM sized from the pod's resources: the numbers, and that they reach the pod."""

from __future__ import annotations

import pathlib
import re
from typing import Any

import pytest

from httpd_operator.render import render_body
from httpd_operator.render.mpm import mpm_sizing
from httpd_operator.settings import Settings

IMAGE = pathlib.Path(__file__).parent.parent / "images" / "httpd"


def sizing(**resources: Any) -> tuple[int, int, int, int]:
    s = mpm_sizing(resources)
    return (s["HTTPD_START_SERVERS"], s["HTTPD_SERVER_LIMIT"], s["HTTPD_MAX_REQUEST_WORKERS"],
            s["HTTPD_MAX_SPARE_THREADS"])


@pytest.mark.parametrize(("resources", "expected"), [
    ({}, (1, 16, 1024, 192)),
    ({"limits": {"cpu": "500m", "memory": "128Mi"}}, (1, 5, 320, 192)),
    ({"limits": {"cpu": "2", "memory": "1Gi"}}, (2, 16, 1024, 192)),
    ({"requests": {"cpu": "3"}}, (3, 16, 1024, 256)),
    ({"limits": {"cpu": "4", "memory": "64Mi"}}, (4, 4, 256, 320)),  # never fewer than it starts
    ({"limits": {"cpu": "64", "memory": "64Gi"}}, (16, 16, 1024, 1088)),  # the image's ceiling
    ({"limits": {"memory": "10Mi"}}, (1, 1, 64, 192)),  # one process, whatever the memory
])
def test_processes_follow_the_cpu_and_fit_in_the_memory(resources: dict[str, Any],
                                                        expected: tuple[int, ...]) -> None:
    assert sizing(**resources) == expected


def test_the_images_own_defaults_are_the_sizing_without_resources() -> None:
    """A pod run without the operator (podman, docker) gets what a site without resources gets."""
    dockerfile = (IMAGE / "Dockerfile").read_text()
    env = dict(re.findall(r"(HTTPD_[A-Z_]+)=(\d+)", dockerfile))
    env.pop("HTTPD_PORT")
    assert {k: int(v) for k, v in env.items()} == mpm_sizing(None)
    conf = (IMAGE / "httpd.conf").read_text()
    assert set(re.findall(r"\$\{(HTTPD_[A-Z_]+)\}", conf)) >= set(mpm_sizing(None))


def test_the_sizing_reaches_the_httpd_container() -> None:
    spec = {"resources": {"limits": {"cpu": "2", "memory": "256Mi"}}}
    rendered = render_body({"metadata": {"name": "web", "namespace": "ns", "uid": "u", "generation": 1},
                            "spec": spec}, Settings())
    deployment = next(o for o in rendered.objects if o["kind"] == "Deployment")
    env = {e["name"]: e["value"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["HTTPD_START_SERVERS"] == "2" and env["HTTPD_SERVER_LIMIT"] == "10"
    assert env["HTTPD_MAX_REQUEST_WORKERS"] == "640"
