"""Shared fixtures: the emulated API server, a kubeconfig for it, and the real operator (what
the suites share besides fixtures is in `support`)."""

from __future__ import annotations

import asyncio
import pathlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import yaml
from support import CRD, Api

from httpd_operator.emulator import ApiServer
from httpd_operator.emulator import kubeconfig as emulated_kubeconfig
from httpd_operator.runner import OperatorThread
from httpd_operator.settings import Settings


@pytest.fixture
async def api(tmp_path: pathlib.Path) -> AsyncIterator[Api]:
    server = ApiServer(controllers=True)
    server.load_builtin()
    server.register_crd(CRD)
    async with server.running() as url:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump(emulated_kubeconfig(url)))
        yield Api(server, url, kubeconfig)


@pytest.fixture
async def operator(api: Api) -> AsyncIterator[Callable[..., Awaitable[OperatorThread]]]:
    """Start the real operator (kopf, HTTP) against the emulated API; stopped at the end."""
    running: list[OperatorThread] = []

    async def start(settings: Settings | None = None, namespaces: tuple[str, ...] = ()) -> OperatorThread:
        thread = OperatorThread(settings or Settings(), api.configuration(), namespaces)
        await asyncio.to_thread(thread.start)
        running.append(thread)
        return thread

    async def stop(thread: OperatorThread) -> None:
        running.remove(thread)
        await asyncio.to_thread(thread.stop)

    start.stop = stop  # type: ignore[attr-defined]
    yield start
    for thread in running:
        await asyncio.to_thread(thread.stop)
