"""What the command line says when it cannot go on: one line, and an exit code that tells why.

0 done; 1 a site was refused (or the server refused a request); 2 bad usage or input (the
command line, a file); 3 the cluster cannot be reached or logged in to. A bug says so in one
line too (exit 70); `--debug` shows the traceback of any of them.
"""

from __future__ import annotations

import re

from httpd_operator.connection import Cluster, ConfigError
from httpd_operator.kube import ApiError

OK, REFUSED, USAGE, CLUSTER, BUG = 0, 1, 2, 3, 70


class UserError(Exception):
    """A mistake the user can fix; `code` is the exit code."""

    def __init__(self, message: str, code: int = USAGE) -> None:
        super().__init__(message)
        self.code = code


def cause(exc: ApiError) -> str:
    """The reason of a failed call without the transport's wrapping, e.g. "Connection refused"."""
    return re.sub(r"^\[Errno -?\d+\] ", "", exc.message) or "no answer"


def from_api_error(exc: ApiError, cluster: Cluster | None) -> UserError:
    """An API failure as the user should read it: the server, where its address came from, why."""
    server = cluster.server if cluster else "the API server"
    source = f" ({cluster.source})" if cluster and cluster.source else ""
    if exc.status == 0:
        if exc.message.startswith("credentials: "):
            return UserError(f"cannot log in to {server}{source}: {exc.message.removeprefix('credentials: ')}",
                             CLUSTER)
        return UserError(f"cannot reach {server}{source}: {cause(exc)}", CLUSTER)
    if exc.status == 401:
        return UserError(f"{server} refused the credentials{source}: 401 {exc.message}", CLUSTER)
    if exc.status == 403:
        return UserError(f"{server}: forbidden{source}: {exc.message}", CLUSTER)
    where = f" ({exc.object})" if exc.object else ""
    return UserError(f"{server}: {exc.status} {exc.message}{where}", REFUSED)


def from_config_error(exc: ConfigError) -> UserError:
    return UserError(str(exc), CLUSTER)
