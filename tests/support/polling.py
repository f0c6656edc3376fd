"""Polling with a deadline: the only way tests wait for something (never a bare sleep).

Each returns the check's first truthy value, or raises AssertionError at the deadline with what
was awaited and the check's last value."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any


def wait_until(check: Callable[[], Any], timeout: float, what: str = "a condition", interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {value!r})")
        time.sleep(interval)  # paces the polling; the outcome depends on the check


async def eventually(check: Callable[[], Any], timeout: float = 15.0, interval: float = 0.02,
                     what: str = "a condition") -> Any:
    """The same in an event loop; `check` may return an awaitable."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = check()
        if isinstance(value, Awaitable):
            value = await value
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what} (last: {value!r})")
        await asyncio.sleep(interval)
