"""spec.httpd rendered by the operator and read by the compiled httpd: the ConfigMap's files are
laid into conf.d exactly as the pod mounts them. A good config takes effect; a config that tries
to close the operator's blocks is a syntax error httpd itself reports (so new pods never become
ready and the old ones keep serving); shell syntax in directives stays text."""

from __future__ import annotations

import http.client
import subprocess
from pathlib import Path

import pytest

from httpd_operator.render import render_body
from httpd_operator.settings import Settings

from .httpd_helpers import Httpd, free_port, http_get_or_none, make_root, remove_root

pytestmark = [pytest.mark.image, pytest.mark.timeout(1800)]


def config_files(httpd: dict) -> dict[str, str]:
    body = {"apiVersion": "httpd.dev/v1alpha1", "kind": "HttpdSite",
            "metadata": {"name": "web", "namespace": "ns", "uid": "u"}, "spec": {"httpd": httpd}}
    return next(o for o in render_body(body, Settings()).objects if o["kind"] == "ConfigMap")["data"]


def configtest(prefix: Path, httpd: dict) -> subprocess.CompletedProcess[str]:
    root = make_root(prefix, config_files(httpd))
    try:
        srv = Httpd(root, f"127.0.0.1:{free_port()}")
        return subprocess.run(srv.command("-t"), env=srv.env(), capture_output=True, text=True)
    finally:
        remove_root(root)


def test_config_and_modules_take_effect(httpd_prefix: Path) -> None:
    files = config_files({"modules": ["expires", "mod_rewrite"],  # rewrite: the image loads it already
                          "config": 'Header always set X-Site "web"\nExpiresActive On\n'
                                    'ExpiresDefault "access plus 1 hour"'})
    root = make_root(httpd_prefix, files)
    port = free_port()
    srv = Httpd(root, f"127.0.0.1:{port}")
    srv.start()
    try:
        srv.wait_ready(lambda: http_get_or_none("127.0.0.1", port, "/healthz") is not None)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", "/healthz")
            response = conn.getresponse()
            response.read()
        finally:
            conn.close()
        assert response.getheader("X-Site") == "web"
        assert response.getheader("Expires")  # mod_expires, loaded from spec.httpd.modules
        modules = subprocess.run(srv.command("-M"), env=srv.env(), capture_output=True, text=True, check=True).stdout
        assert "expires_module" in modules
        assert "module rewrite_module is already loaded" not in srv.stderr_text()
    finally:
        srv.stop()
        remove_root(root)


@pytest.mark.parametrize("config", [
    "</IfModule>\n",                                   # closing a block the user did not open
    "</Directory>\nAlias /etc /etc\n",
    "<Directory /usr/local/apache2/htdocs>\n",          # opening one that never closes
])
def test_a_config_trying_to_escape_its_file_is_a_syntax_error(httpd_prefix: Path, config: str) -> None:
    out = configtest(httpd_prefix, {"config": config})
    assert out.returncode != 0
    assert "50-site.conf" in out.stderr, out.stderr  # httpd names the user's file


def test_shell_syntax_in_directives_is_text(httpd_prefix: Path, tmp_path: Path) -> None:
    canary = tmp_path / "pwned"
    config = f'Define X "$(touch {canary})"\nDefine Y "`touch {canary}`"\n' * 500
    out = configtest(httpd_prefix, {"config": config})
    assert out.returncode == 0, out.stderr
    assert not canary.exists()


def test_an_unknown_module_fails_the_config_test(httpd_prefix: Path) -> None:
    out = configtest(httpd_prefix, {"modules": ["no_such_thing"]})
    assert out.returncode != 0 and "mod_no_such_thing.so" in out.stderr
