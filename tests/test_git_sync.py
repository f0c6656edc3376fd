"""images/git/git-sync, run directly (no container) against a real `git daemon` on 127.0.0.1.

What the writer pod does to a site's volume: the first sync, a push switched in, the previous
revision kept and older ones pruned, a poller that never sees a mix of two revisions while a
change of 1,000 files is switched in, and each failure reason with the old revision still served.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import pathlib
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from support import wait_until

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "images" / "git" / "git-sync"

pytestmark = pytest.mark.skipif(shutil.which("git") is None or shutil.which("flock") is None,
                                reason="needs git and flock")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def git(*args: str, cwd: pathlib.Path | None = None) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com", "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(cwd or "/tmp")}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


class Upstream:
    """A bare repository served by git daemon, and a working clone that pushes to it."""

    def __init__(self, base: pathlib.Path, port: int) -> None:
        self.base, self.port = base, port
        self.bare = base / "served" / "site.git"
        self.work = base / "work"
        git("init", "--quiet", "--bare", "--initial-branch=main", str(self.bare))
        git("init", "--quiet", "--initial-branch=main", str(self.work))
        self.url = f"git://127.0.0.1:{port}/site.git"

    def commit(self, files: dict[str, str], message: str = "change", replace: bool = False) -> str:
        if replace:
            for old in self.work.iterdir():
                if old.name != ".git":
                    shutil.rmtree(old) if old.is_dir() else old.unlink()
        for name, text in files.items():
            path = self.work / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        git("add", "-A", cwd=self.work)
        git("commit", "--quiet", "-m", message, cwd=self.work)
        git("push", "--quiet", str(self.bare), "HEAD:main", cwd=self.work)
        return git("rev-parse", "HEAD", cwd=self.work)


@contextlib.contextmanager
def serving(base: pathlib.Path) -> Iterator[Upstream]:
    """A repository under `base`, served by git daemon on 127.0.0.1 until the block ends (also used
    by tests/image/test_git_image.py and bench/git_sync_bench.py)."""
    port = _free_port()
    up = Upstream(base, port)
    daemon = subprocess.Popen(["git", "daemon", "--reuseaddr", "--export-all", "--listen=127.0.0.1",
                               f"--port={port}", f"--base-path={base / 'served'}", str(base / "served")],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: _listening(port), timeout=10, what="git daemon listening")
        yield up
    finally:
        daemon.terminate()
        daemon.wait(timeout=10)


@pytest.fixture
def upstream(tmp_path: pathlib.Path) -> Iterator[Upstream]:
    with serving(tmp_path) as up:
        yield up


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def sync(volume: pathlib.Path, repository: str, ref: str = "main", **env: str) -> tuple[int, dict[str, Any]]:
    """One sync (GIT_SYNC_ONCE); its exit status and its JSON line (the only thing on stdout)."""
    volume.mkdir(exist_ok=True)
    settings = {"PATH": os.environ["PATH"], "HOME": str(volume.parent), "TMPDIR": str(volume.parent),
                "GIT_SYNC_REPOSITORY": repository,
                "GIT_SYNC_REF": ref, "GIT_SYNC_ROOT": str(volume), "GIT_SYNC_ONCE": "1", **env}
    done = subprocess.run(["sh", str(SCRIPT)], capture_output=True, text=True, timeout=60, env=settings)
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout + done.stderr
    return done.returncode, json.loads(lines[0])


def served(volume: pathlib.Path) -> str:
    return os.readlink(volume / "current").removeprefix("rev-")


def test_first_sync_serves_the_ref_and_a_second_sync_changes_nothing(upstream: Upstream,
                                                                      tmp_path: pathlib.Path) -> None:
    sha = upstream.commit({"index.html": "one\n", "public/a.txt": "a\n"})
    volume = tmp_path / "volume"
    rc, record = sync(volume, upstream.url)
    assert rc == 0, record
    assert record["revision"] == sha and record["changed"] is True
    assert record["syncTime"] and record["changeTime"] and "error" not in record
    assert served(volume) == sha
    assert (volume / "current" / "index.html").read_text() == "one\n"
    assert (tmp_path / "git-sync-alive").exists(), "the liveness probe's heartbeat"
    assert not any(p.name.startswith(".") and p.name != ".git-sync" for p in volume.iterdir())  # no leftovers
    rc, again = sync(volume, upstream.url)
    assert rc == 0 and again["changed"] is False and again["revision"] == sha
    assert again["changeTime"] == record["changeTime"]


def test_a_push_is_switched_in_the_previous_revision_kept_and_older_ones_pruned(upstream: Upstream,
                                                                                tmp_path: pathlib.Path) -> None:
    volume = tmp_path / "volume"
    first = upstream.commit({"index.html": "one\n"})
    sync(volume, upstream.url)
    second = upstream.commit({"index.html": "two\n"})
    rc, record = sync(volume, upstream.url)
    assert rc == 0 and record["revision"] == second and record["changed"] is True
    assert (volume / "current" / "index.html").read_text() == "two\n"
    assert {p.name for p in volume.glob("rev-*")} == {f"rev-{first}", f"rev-{second}"}
    third = upstream.commit({"index.html": "three\n"})
    sync(volume, upstream.url)
    assert {p.name for p in volume.glob("rev-*")} == {f"rev-{second}", f"rev-{third}"}
    # Pinning the previous commit is the rollback: its tree is still there.
    rc, record = sync(volume, upstream.url, ref=second)
    assert rc == 0 and record["revision"] == second and served(volume) == second
    assert (volume / "current" / "index.html").read_text() == "two\n"


def test_a_poller_never_sees_a_mix_during_a_change_of_a_thousand_files(upstream: Upstream,
                                                                       tmp_path: pathlib.Path) -> None:
    names = [f"f{i:04d}.html" for i in range(1000)]
    upstream.commit({n: "old\n" for n in names})
    volume = tmp_path / "volume"
    sync(volume, upstream.url)
    upstream.commit({**{n: "new\n" for n in names[500:]}, **{f"g{i:04d}.html": "new\n" for i in range(500)}},
                    replace=True)
    old_set, new_set = set(names), set(names[500:]) | {f"g{i:04d}.html" for i in range(500)}
    seen: list[str] = []
    mixes: list[str] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            # As a request does: resolve the document root once, then read what it finds there.
            real = os.path.realpath(volume / "current")
            listing = set(os.listdir(real))
            contents = {pathlib.Path(real, n).read_text() for n in listing}
            if listing == old_set and contents == {"old\n"}:
                seen.append("old")
            elif listing == new_set and contents == {"new\n"}:
                seen.append("new")
            else:
                mixes.append(f"{len(listing)} files, contents {sorted(contents)}")
            # And through the symlink, as httpd resolves each request's path afresh.
            through = set(os.listdir(volume / "current"))
            if through not in (old_set, new_set):
                mixes.append(f"through the link: {len(through)} files")
            time.sleep(0.05)  # the poller's pace (every 50 ms), not a synchronisation

    poller = threading.Thread(target=poll)
    poller.start()
    try:
        wait_until(lambda: seen, timeout=10, what="the poller's first look")
        rc, record = sync(volume, upstream.url)
        wait_until(lambda: seen[-1] == "new" or mixes, timeout=10, what="the poller to see the new revision")
    finally:
        stop.set()
        poller.join()
    assert rc == 0 and record["changed"] is True
    assert not mixes, mixes[:5]
    assert "old" in seen and "new" in seen and seen.index("new") > seen.index("old")
    assert seen[seen.index("new"):] == ["new"] * (len(seen) - seen.index("new"))


def test_a_bad_ref_is_unknown_ref_and_the_old_revision_keeps_serving(upstream: Upstream,
                                                                     tmp_path: pathlib.Path) -> None:
    sha = upstream.commit({"index.html": "one\n"})
    volume = tmp_path / "volume"
    sync(volume, upstream.url)
    rc, record = sync(volume, upstream.url, ref="no-such-branch")
    assert rc == 1
    assert record["error"] == "UnknownRef", record
    assert record["revision"] == sha and served(volume) == sha
    assert (volume / "current" / "index.html").read_text() == "one\n"
    rc, record = sync(volume, upstream.url, ref="0123456789abcdef0123456789abcdef01234567")
    assert rc == 1 and record["error"] == "UnknownRef", record


def test_an_unreachable_repository_is_reported_as_such(upstream: Upstream, tmp_path: pathlib.Path) -> None:
    sha = upstream.commit({"index.html": "one\n"})
    volume = tmp_path / "volume"
    sync(volume, upstream.url)
    rc, record = sync(volume, f"git://127.0.0.1:{_free_port()}/site.git")
    assert rc == 1 and record["error"] == "Unreachable", record
    assert record["revision"] == sha and served(volume) == sha


def test_a_url_that_names_no_repository_is_not_a_repository(upstream: Upstream, tmp_path: pathlib.Path) -> None:
    upstream.commit({"index.html": "one\n"})
    rc, record = sync(tmp_path / "volume", f"git://127.0.0.1:{upstream.port}/nothing-here.git")
    assert rc == 1 and record["error"] == "NotARepository", record
    assert "revision" not in record and not (tmp_path / "volume" / "current").exists()


class _Refusing(http.server.BaseHTTPRequestHandler):
    """An https-like smart-HTTP server that refuses every credential (and records what it got)."""

    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self.seen.append(self.headers.get("Authorization") or "")
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="git"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_refused_credentials_are_auth_refused(tmp_path: pathlib.Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Refusing)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/site.git"
    try:
        rc, record = sync(tmp_path / "volume", url)  # no credentials: git may not prompt
        assert rc == 1 and record["error"] == "AuthRefused", record
        secret = tmp_path / "secret"
        secret.mkdir()
        (secret / "username").write_text("site")
        (secret / "token").write_text("wrong-token")
        rc, record = sync(tmp_path / "volume", url, GIT_SYNC_SECRET=str(secret))
        assert rc == 1 and record["error"] == "AuthRefused", record
        assert any(a.startswith("Basic ") for a in _Refusing.seen), "the Secret's credentials were sent"
        assert "wrong-token" not in json.dumps(record)
    finally:
        server.shutdown()
        server.server_close()


def test_only_one_sync_runs_at_a_time(upstream: Upstream, tmp_path: pathlib.Path) -> None:
    upstream.commit({"index.html": "one\n"})
    volume = tmp_path / "volume"
    sync(volume, upstream.url)
    lock = str(volume / ".git-sync" / "lock")
    holder = subprocess.Popen(["flock", "-x", lock, "sleep", "1.5"])
    try:
        wait_until(lambda: subprocess.run(["flock", "-n", lock, "true"]).returncode != 0, timeout=10,
                   what="the other holder to take the lock")
        rc, record = sync(volume, upstream.url)
        assert rc == 0
        assert holder.poll() is not None, "the sync waited for the other holder to let go of the lock"
    finally:
        holder.wait()


def test_messages_reach_the_json_line_escaped(upstream: Upstream, tmp_path: pathlib.Path) -> None:
    upstream.commit({"index.html": "one\n"})
    rc, record = sync(tmp_path / "volume", upstream.url, ref='quote"back\\slash')
    assert rc == 1 and record["error"] in ("UnknownRef", "SyncFailed")


def test_a_commit_pinned_and_served_needs_no_network(upstream: Upstream, tmp_path: pathlib.Path) -> None:
    sha = upstream.commit({"index.html": "one\n"})
    volume = tmp_path / "volume"
    sync(volume, upstream.url, ref=sha)
    rc, record = sync(volume, f"git://127.0.0.1:{_free_port()}/site.git", ref=sha)  # nothing listens there
    assert rc == 0 and record["revision"] == sha and record["changed"] is False


def test_an_annotated_tag_is_followed_to_its_commit(upstream: Upstream, tmp_path: pathlib.Path) -> None:
    sha = upstream.commit({"index.html": "one\n"})
    git("tag", "-a", "-m", "release", "v1", cwd=upstream.work)
    git("push", "--quiet", str(upstream.bare), "v1", cwd=upstream.work)
    volume = tmp_path / "volume"
    rc, record = sync(volume, upstream.url, ref="v1")
    assert rc == 0 and record["revision"] == sha
    rc, record = sync(volume, upstream.url, ref="v1")
    assert rc == 0 and record["changed"] is False
