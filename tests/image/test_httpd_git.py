"""Content from git as the compiled httpd serves it: the operator's conf.d file (DocumentRoot
<mount>/current/<subPath>) over a volume that images/git/git-sync filled, as the writer owns it.
A push switched in is served at once; a symlink in the repository is followed only to files of
the writer's own (SymLinksIfOwnerMatch), so a link to /etc is refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from httpd_operator.render import render_body
from httpd_operator.settings import DOCUMENT_ROOT, Settings

from . import httpd_helpers as h

sys.path.insert(0, str(h.REPO / "tests"))
from test_git_sync import Upstream, serving, sync  # noqa: E402

pytestmark = [pytest.mark.image, pytest.mark.timeout(1800)]


def content_conf(root: Path) -> dict[str, str]:
    body = {"apiVersion": "httpd.dev/v1alpha1", "kind": "HttpdSite",
            "metadata": {"name": "web", "namespace": "ns", "uid": "u"},
            "spec": {"content": {"git": {"repository": "git://127.0.0.1/site.git", "subPath": "public"}}}}
    data = next(o for o in render_body(body, Settings()).objects if o["kind"] == "ConfigMap")["data"]
    return {name: text.replace(DOCUMENT_ROOT, str(root / "htdocs")) for name, text in data.items()}


def writer_owns(volume: Path) -> None:
    """The writer pod writes as the site's user; here git-sync ran as root, so hand it over."""
    subprocess.run(["chown", "-hR", f"{h.RUN_USER}:{h.RUN_GROUP}", str(volume)], check=True)


@pytest.fixture
def upstream(tmp_path: Path):  # type: ignore[no-untyped-def]
    with serving(tmp_path) as up:
        yield up


def test_httpd_serves_the_current_revision_and_refuses_foreign_links(httpd_prefix: Path, upstream: Upstream,
                                                                    tmp_path: Path) -> None:
    (upstream.work / "public").mkdir()
    (upstream.work / "public" / "leak.txt").symlink_to("/etc/hostname")
    (upstream.work / "public" / "alias.html").symlink_to("index.html")
    upstream.commit({"public/index.html": "one\n", "README": "not served\n"})
    root = h.make_root(httpd_prefix)
    try:
        conf = content_conf(root)
        (root / "conf.d").chmod(0o755)
        for name, text in conf.items():
            (root / "conf.d" / name).write_text(text)
        volume = root / "htdocs"
        rc, record = sync(volume, upstream.url)
        assert rc == 0, record
        writer_owns(volume)
        port = h.free_port()
        srv = h.Httpd(root, f"127.0.0.1:{port}")
        srv.start()
        try:
            srv.wait_ready(lambda: h.http_get_or_none("127.0.0.1", port, "/healthz") is not None)
            assert h.http_get("127.0.0.1", port, "/index.html") == (200, b"one\n")
            assert h.http_get("127.0.0.1", port, "/alias.html") == (200, b"one\n")
            assert h.http_get("127.0.0.1", port, "/leak.txt")[0] == 403, "a link to a file the writer does not own"
            assert h.http_get("127.0.0.1", port, "/README")[0] == 404, "only subPath is served"
            upstream.commit({"public/index.html": "two\n"})
            rc, record = sync(volume, upstream.url)
            assert rc == 0 and record["changed"] is True
            writer_owns(volume)
            assert h.http_get("127.0.0.1", port, "/index.html") == (200, b"two\n")
        finally:
            srv.stop()
        # git dropped from the site: its conf.d file goes, the volume's root is served again, and
        # git's own files in it are not.
        (root / "conf.d" / "40-content.conf").unlink()
        srv = h.Httpd(root, f"127.0.0.1:{port}")
        srv.start()
        try:
            srv.wait_ready(lambda: h.http_get_or_none("127.0.0.1", port, "/healthz") is not None)
            assert h.http_get("127.0.0.1", port, "/current/public/index.html") == (200, b"two\n")
            for path in ("/.git-sync/synced-at", "/.git-sync/repo.git/HEAD", "/.git-sync/"):
                assert h.http_get("127.0.0.1", port, path)[0] == 403, path
        finally:
            srv.stop()
    finally:
        h.remove_root(root)
