"""Every shell block marked runnable in README.md and docs/ runs, as printed, so the docs
cannot drift from the code.

A block opened with ```sh runnable is run by bash (-euo pipefail) in the checkout, in a fresh
shell's environment (no venv activated, nothing on PATH but /usr/bin and /bin), with KUBECONFIG
naming an emulated API server where the operator runs and examples/ has been applied (as in
`make demo`). Blocks that need a real cluster (kubectl against nodes) are plain ```sh.
"""

from __future__ import annotations

import asyncio
import os
import pathlib
import re
import subprocess
import sys
from collections.abc import AsyncIterator

import pytest
import yaml
from support import ROOT, Api, eventually

from httpd_operator.runner import OperatorThread
from httpd_operator.settings import Settings

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```sh runnable\n(.*?)^```$", re.S | re.M)
PLURALS = {"PersistentVolumeClaim": "persistentvolumeclaims", "HttpdSite": "httpdsites"}


def blocks() -> list[tuple[str, str]]:
    found = []
    for doc in DOCS:
        text = doc.read_text()
        for match in FENCE.finditer(text):
            line = text[:match.start()].count("\n") + 1
            found.append((f"{doc.relative_to(ROOT)}:{line}", match.group(1)))
    return found


def test_readme_and_each_doc_have_runnable_blocks() -> None:
    files = {where.split(":")[0] for where, _ in blocks()}
    assert "README.md" in files and len([w for w, _ in blocks() if w.startswith("README.md")]) >= 3


@pytest.fixture
async def cluster(api: Api) -> AsyncIterator[Api]:
    """The emulated API with the operator running and examples/ applied."""
    operator = OperatorThread(Settings(), api.configuration())
    await asyncio.to_thread(operator.start)
    try:
        sites = []
        for path in sorted((ROOT / "examples").glob("*.yaml")):
            for doc in yaml.safe_load_all(path.read_text()):
                ns = doc["metadata"].setdefault("namespace", "default")
                group = doc["apiVersion"]
                prefix = f"/apis/{group}" if "/" in group else f"/api/{group}"
                await api.request("POST", f"{prefix}/namespaces/{ns}/{PLURALS[doc['kind']]}", doc)
                if doc["kind"] == "HttpdSite":
                    sites.append(doc["metadata"]["name"])
        await eventually(lambda: all(api.site_status("default", s).get("phase") for s in sites),
                         what="every example site to have a phase")
        yield api
    finally:
        await asyncio.to_thread(operator.stop)


@pytest.mark.parametrize(("where", "script"), blocks(), ids=[w for w, _ in blocks()])
async def test_runnable_block(cluster: Api, where: str, script: str, tmp_path: pathlib.Path) -> None:
    if not (ROOT / ".venv" / "bin" / "httpd-operator").exists():
        pytest.skip("the docs call .venv/bin/httpd-operator: make a venv in the checkout (make test)")
    venv = pathlib.Path(sys.prefix)
    if re.search(r"^\s*make\b", script, re.M) and not all((venv / s).exists() for s in (".emulator", ".installed")):
        # make would (re)build the venv, in the middle of a test run: never
        pytest.skip(f"{venv} was not made by this Makefile (no .emulator and .installed): run make test")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "KUBECONFIG": str(cluster.kubeconfig),
           "LANG": os.environ.get("LANG", "C.UTF-8"),
           # `make demo` in a block uses this venv as it is (never reinstalls during a test)
           "VENV": str(venv), "MAKEFLAGS": f"-o {venv}/.emulator -o {venv}/.installed"}
    if re.search(r"^\s*make\b", script, re.M):
        stale = subprocess.run(["make", "-q", f"VENV={venv}", f"{venv}/.emulator", f"{venv}/.installed"], cwd=ROOT,
                               env={**env, "MAKEFLAGS": ""}, capture_output=True)
        if stale.returncode != 0:  # e.g. pyproject.toml changed since: make would rebuild the venv in use
            pytest.skip(f"{venv} is older than what it was made from (make -q): run make test first")
    done = await asyncio.to_thread(subprocess.run, ["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, env=env,
                                   capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{where}:\n{script}\nstdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr, done.stderr


def test_relative_links_resolve() -> None:
    broken = []
    for doc in DOCS:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if "://" not in target and not (doc.parent / target).exists():
                broken.append(f"{doc.relative_to(ROOT)}: {target}")
    assert broken == []
