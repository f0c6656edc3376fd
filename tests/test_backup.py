"""The backup and restore scripts, run for real (the same commands the pods run) against
temporary directories standing in for the content volume and the backup claim."""

from __future__ import annotations

import hashlib
import os
import pathlib
import subprocess
import tarfile

import pytest

from httpd_operator.render.backup import archive_command, restore_command


def tree(root: pathlib.Path) -> dict[str, tuple[str, int, str]]:
    """Every entry under root: (type, mode, sha256 or link target)."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = ("link", 0, os.readlink(path))
        elif path.is_dir():
            out[rel] = ("dir", path.stat().st_mode & 0o7777, "")
        else:
            out[rel] = ("file", path.stat().st_mode & 0o7777, hashlib.sha256(path.read_bytes()).hexdigest())
    return out


def site_content(root: pathlib.Path) -> pathlib.Path:
    (root / "img").mkdir(parents=True)
    (root / "index.html").write_text("<h1>home</h1>\n")
    (root / "img" / "logo.png").write_bytes(bytes(range(256)) * 64)
    (root / "cgi.sh").write_text("#!/bin/sh\n")
    (root / "cgi.sh").chmod(0o750)
    (root / "ünïcødé name with spaces.txt").write_text("x")
    (root / "latest").symlink_to("index.html")
    (root / ".hidden").write_text("dotfile")
    return root


def archive(src: pathlib.Path, target: pathlib.Path, stamp: str, keep: int = 7, site: str = "web"
            ) -> subprocess.CompletedProcess[str]:
    report = target.parent / "report"
    return subprocess.run(archive_command(str(src), str(target), site, keep, stamp, str(report)),
                          check=True, capture_output=True, text=True, timeout=60)


def restore(archive_path: pathlib.Path, dst: pathlib.Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(restore_command(str(archive_path), str(dst)), check=check, capture_output=True,
                          text=True, timeout=60)


def test_round_trip_is_byte_identical(tmp_path: pathlib.Path) -> None:
    src = site_content(tmp_path / "volume")
    out = archive(src, tmp_path / "backups", "20261128T030000Z")
    name = "web/web-20261128T030000Z.tar.gz"
    size = (tmp_path / "backups" / name).stat().st_size
    assert (tmp_path / "report").read_text() == f"{name} {size}\n"  # what status.backup shows
    assert f"wrote {name}" in out.stdout
    fresh = tmp_path / "new-volume"
    fresh.mkdir()
    (fresh / "lost+found").mkdir()  # a new ext4 volume's own directory does not count as content
    restored = restore(tmp_path / "backups" / name, fresh)
    assert "unpacked" in restored.stdout
    (fresh / "lost+found").rmdir()
    assert tree(fresh) == tree(src)


def test_keeps_the_newest_archives_of_this_site_only(tmp_path: pathlib.Path) -> None:
    src = site_content(tmp_path / "volume")
    target = tmp_path / "backups"
    (target / "web").mkdir(parents=True)
    (target / "web" / "notes.txt").write_text("mine")               # not an archive: never touched
    (target / "web" / "web-old.tar.gz").write_text("odd name")      # not the pattern: kept
    for day in range(1, 7):
        archive(src, target, f"202611{day:02d}T030000Z", keep=3)
    archive(src, target, "20261102T030000Z", keep=3, site="shop")   # another site in the same claim
    assert sorted(p.name for p in (target / "web").iterdir()) == [
        "notes.txt", "web-20261104T030000Z.tar.gz", "web-20261105T030000Z.tar.gz", "web-20261106T030000Z.tar.gz",
        "web-old.tar.gz"]
    assert [p.name for p in (target / "shop").iterdir()] == ["shop-20261102T030000Z.tar.gz"]


def test_a_failed_archive_leaves_no_partial_file(tmp_path: pathlib.Path) -> None:
    target = tmp_path / "backups"
    with pytest.raises(subprocess.CalledProcessError):
        archive(tmp_path / "does-not-exist", target, "20261128T030000Z")
    assert list((target / "web").iterdir()) == []


def test_restore_never_writes_into_a_volume_with_content(tmp_path: pathlib.Path) -> None:
    src = site_content(tmp_path / "volume")
    archive(src, tmp_path / "backups", "20261128T030000Z")
    used = tmp_path / "used"
    used.mkdir()
    (used / "index.html").write_text("the user's newer page\n")
    before = tree(used)
    out = restore(tmp_path / "backups/web/web-20261128T030000Z.tar.gz", used)
    assert "already has content" in out.stdout
    assert tree(used) == before


def test_restore_of_a_missing_archive_fails_loudly(tmp_path: pathlib.Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    out = restore(tmp_path / "nope.tar.gz", empty, check=False)
    assert out.returncode == 1 and "not found" in out.stderr
    assert list(empty.iterdir()) == []


def test_restore_does_not_follow_members_out_of_the_volume(tmp_path: pathlib.Path) -> None:
    """A tampered archive with ../ members: GNU tar refuses them; nothing lands outside."""
    evil = tmp_path / "evil.tar"
    payload = tmp_path / "payload"
    payload.write_text("escaped")
    with tarfile.open(evil, "w") as tar:
        tar.add(payload, arcname="../escaped.txt")
        tar.add(payload, arcname="ok.txt")
    dst = tmp_path / "vol" / "inner"
    dst.mkdir(parents=True)
    out = restore(evil, dst, check=False)
    assert (dst / "ok.txt").read_text() == "escaped"  # the archive was read
    assert not (tmp_path / "vol" / "escaped.txt").exists(), out.stderr
