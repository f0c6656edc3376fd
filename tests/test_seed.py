"""The seed init container's command, run for real against temporary folders."""

from __future__ import annotations

import pathlib
import subprocess

from httpd_operator.render import render_body
from httpd_operator.render.volumes import seed_command
from httpd_operator.settings import DOCUMENT_ROOT, Settings


def image_docroot(tmp_path: pathlib.Path) -> pathlib.Path:
    src = tmp_path / "image-htdocs"
    (src / "img").mkdir(parents=True)
    (src / "index.html").write_text("<h1>It works</h1>\n")
    (src / "img" / "logo.svg").write_text("<svg/>\n")
    (src / ".hidden").write_text("dotfile\n")
    return src


def test_rendered_init_container_runs_exactly_this_command() -> None:
    deployment = next(o for o in render_body({"metadata": {"name": "web", "namespace": "ns", "uid": "u"}},
                                             Settings()).objects if o["kind"] == "Deployment")
    seed = deployment["spec"]["template"]["spec"]["initContainers"][0]
    assert seed["command"] == seed_command()
    assert seed["command"][-2] == DOCUMENT_ROOT
    assert seed["volumeMounts"] == [{"name": "htdocs", "mountPath": seed["command"][-1]}]


def test_empty_volume_is_seeded_with_the_image_content(tmp_path: pathlib.Path) -> None:
    src, dst = image_docroot(tmp_path), tmp_path / "volume"
    dst.mkdir()
    out = subprocess.run(seed_command(str(src), str(dst)), check=True, capture_output=True, text=True).stdout
    assert "copied" in out
    assert (dst / "index.html").read_text() == "<h1>It works</h1>\n"
    assert (dst / "img" / "logo.svg").read_text() == "<svg/>\n"
    assert (dst / ".hidden").exists()


def test_volume_with_content_is_never_overwritten(tmp_path: pathlib.Path) -> None:
    src, dst = image_docroot(tmp_path), tmp_path / "volume"
    dst.mkdir()
    (dst / "index.html").write_text("user content\n")
    out = subprocess.run(seed_command(str(src), str(dst)), check=True, capture_output=True, text=True).stdout
    assert "not empty" in out
    assert (dst / "index.html").read_text() == "user content\n"
    assert sorted(p.name for p in dst.iterdir()) == ["index.html"]


def test_a_volume_holding_only_a_dotfile_counts_as_content(tmp_path: pathlib.Path) -> None:
    src, dst = image_docroot(tmp_path), tmp_path / "volume"
    dst.mkdir()
    (dst / ".keep").write_text("")
    subprocess.run(seed_command(str(src), str(dst)), check=True, capture_output=True)
    assert sorted(p.name for p in dst.iterdir()) == [".keep"]


def test_hostile_folder_names_are_data_not_code(tmp_path: pathlib.Path) -> None:
    src = image_docroot(tmp_path)
    dst = tmp_path / "vol $(touch pwned) ; rm -rf x"
    dst.mkdir()
    subprocess.run(seed_command(str(src), str(dst)), check=True, capture_output=True, cwd=tmp_path)
    assert (dst / "index.html").exists()
    assert not (tmp_path / "pwned").exists()
