"""Fixtures for the image tests: httpd compiled by images/httpd/build-httpd.sh (marker
``image``) and the image built from images/httpd/Dockerfile with podman (marker ``podman``).

Both are built once per machine into the cache (outside the repository) and reused:
``hack/httpd-build`` and ``hack/httpd-image build`` key them by version and a hash of
their inputs. The source tarballs live in ``$CACHE/src``, where CACHE is
``${HTTPD_OPERATOR_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/httpd-operator}/httpd``;
``hack/httpd-fetch-debian`` puts them there (run by the fixtures when they are missing).

A missing tool skips the tests with the reason, or fails them where CI sets
``HTTPD_OPERATOR_REQUIRE_IMAGE=1`` / ``HTTPD_OPERATOR_REQUIRE_PODMAN=1``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from .httpd_helpers import REPO, SRC_DIR, ensure_sources, require_tools, unavailable


@pytest.fixture(scope="session")
def httpd_prefix() -> Path:
    """The install prefix of the compiled httpd (built on first use, then reused)."""
    require_tools("gcc", "make", "pcre2-config", "readelf", "setpriv", "curl", "apt-get")
    if os.geteuid() != 0:
        unavailable("the image tests switch to an unprivileged user with setpriv: run as root")
    ensure_sources("IMAGE")
    proc = subprocess.run(
        ["bash", str(REPO / "hack" / "httpd-build"), str(SRC_DIR)],
        capture_output=True, text=True,
    )
    if proc.returncode != 0:
        pytest.fail(f"hack/httpd-build failed:\n{proc.stderr[-4000:]}")
    prefix = Path(proc.stdout.strip().splitlines()[-1])
    assert (prefix / "bin" / "httpd").is_file()
    return prefix

@pytest.fixture(scope="session")
def podman_env() -> dict[str, str]:
    """Environment that points podman at the private configuration in the cache."""
    if shutil.which("podman") is None:
        unavailable("podman not installed: run hack/httpd-deps", "PODMAN")
    require_tools("debootstrap", "buildah", "runc", "apt-get", suite="PODMAN")
    if os.geteuid() != 0:
        unavailable("podman here works as root only (see shared notes): run as root", "PODMAN")
    out = subprocess.run(
        ["bash", str(REPO / "hack" / "httpd-image"), "env"],
        check=True, capture_output=True, text=True,
    ).stdout
    env = dict(os.environ)
    for assignment in out.split()[1:]:  # "export A=... B=..."
        name, _, value = assignment.partition("=")
        env[name] = value
    return env

@pytest.fixture(scope="session")
def podman_image(podman_env: dict[str, str]) -> str:
    """Tag of the httpd image, built offline from images/httpd (or reused)."""
    ensure_sources("PODMAN")
    proc = subprocess.run(
        ["bash", str(REPO / "hack" / "httpd-image"), "build"],
        capture_output=True, text=True, env=podman_env,
    )
    if proc.returncode != 0:
        pytest.fail(f"hack/httpd-image build failed:\n{proc.stderr[-4000:]}")
    return proc.stdout.strip().splitlines()[-1]
