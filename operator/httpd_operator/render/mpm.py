"""httpd's event MPM sized from the pod's resources, as environment variables the image's
httpd.conf reads (`ServerLimit ${HTTPD_SERVER_LIMIT}`...; the image's own defaults are the same
variables): one process per CPU of the limit to start with (each has its own listener thread,
so the accept work spreads over the cores), and no more processes than the memory limit can hold
at full load, so a busy pod is slowed by its MaxRequestWorkers, not killed for its memory."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from httpd_operator.quantity import QuantityError, parse_quantity

THREADS_PER_CHILD = 64  # as the image's httpd.conf
MAX_PROCESSES = 16  # the image's ServerLimit: 1,024 threads, about 10,000 idle keep-alive clients
MIB_PER_PROCESS = 24  # measured: 16 processes held 9,491 idle connections in 354 MiB (bench/httpd)


def _quantity(resources: Mapping[str, Any], section: str, name: str) -> float | None:
    value = (resources.get(section) or {}).get(name)
    if value is None:
        return None
    try:
        return float(parse_quantity(value))
    except QuantityError:  # refused by the spec's own check; nothing to size from here
        return None


def mpm_sizing(resources: Mapping[str, Any] | None) -> dict[str, int]:
    """StartServers, ServerLimit, MaxRequestWorkers and MaxSpareThreads for these resources."""
    resources = resources or {}
    cpu = _quantity(resources, "limits", "cpu") or _quantity(resources, "requests", "cpu") or 1.0
    start = max(1, min(MAX_PROCESSES, math.ceil(cpu)))
    memory = _quantity(resources, "limits", "memory")
    limit = MAX_PROCESSES if memory is None else int(memory // (MIB_PER_PROCESS * 2**20))
    limit = max(start, min(MAX_PROCESSES, limit))
    return {
        "HTTPD_START_SERVERS": start,
        "HTTPD_SERVER_LIMIT": limit,
        "HTTPD_MAX_REQUEST_WORKERS": limit * THREADS_PER_CHILD,
        # above the threads started, or httpd would stop the processes it has just started
        "HTTPD_MAX_SPARE_THREADS": max(3 * THREADS_PER_CHILD, (start + 1) * THREADS_PER_CHILD),
    }


def mpm_env(resources: Mapping[str, Any] | None) -> list[dict[str, str]]:
    return [{"name": k, "value": str(v)} for k, v in mpm_sizing(resources).items()]
