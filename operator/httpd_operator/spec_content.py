"""`spec.content.git`: a site's files from a git repository. Parsed like `spec.py` does (defaults
applied, every refusal naming its field): the repository URL, the ref and the sub-path reach a
git command line in the writer pod (as arguments, never as shell code), so what git itself would
refuse, or could read as an option, is refused here first.
"""

from __future__ import annotations

import posixpath
import re
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from httpd_operator.errors import SpecError
from httpd_operator.fields import get
from httpd_operator.names import DNS1123, is_ip

SCHEMES = ("https", "ssh", "git")
DEFAULT_PORTS = {"https": 443, "ssh": 22, "git": 9418}
MIN_INTERVAL = 10
MAX_INTERVAL = 24 * 3600
DEFAULT_INTERVAL = 60
MAX_DEPTH = 1_000_000
# scp-like ssh: [user@]host:path (what `git clone git@github.com:org/repo.git` takes).
_SCP = re.compile(r"^(?:(?P<user>[A-Za-z0-9._-]+)@)?"
                  r"(?P<host>[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?):(?P<path>[^/].*)$")
_HOST = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$")
_DURATION = re.compile(r"^(?:(?P<h>[0-9]+)h)?(?:(?P<m>[0-9]+)m)?(?:(?P<s>[0-9]+)s)?$")
_COMMIT = re.compile(r"^[0-9a-f]{7,40}$")


@dataclass(frozen=True)
class GitContent:
    """Where the site's files come from, and how often the writer looks."""

    repository: str
    scheme: str                 # https | ssh | git
    host: str
    port: int                   # the repository's port (the writer's NetworkPolicy opens it)
    ref: str = "HEAD"           # a branch, tag or commit; HEAD: the repository's default branch
    interval: int = DEFAULT_INTERVAL  # seconds between fetches
    depth: int = 1              # 0: the whole history
    sub_path: str | None = None  # the directory inside the repository that is served
    secret_name: str | None = None

    @property
    def commit(self) -> bool:
        """A ref that names a commit: pinning one is the rollback (no fetch moves it)."""
        return bool(_COMMIT.match(self.ref))


def _bad_characters(value: str) -> bool:
    return any(ord(c) < 0x20 or ord(c) == 0x7F or c.isspace() for c in value)


def parse_repository(value: str, path: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an https, ssh or git URL (or scp-like `user@host:path`), which
    carries no credentials: a password or token belongs in the Secret (`secretName`)."""
    if not value or len(value) > 2048 or _bad_characters(value):
        raise SpecError(path, f"must be an https://, ssh:// or git:// URL without spaces or control characters, "
                        f"got {value!r}")
    if value.startswith("-"):
        raise SpecError(path, f"must not start with '-' (git would read it as an option), got {value!r}")
    if "://" not in value:
        scp = _SCP.match(value)
        if scp is None or "::" in value:
            raise SpecError(path, f"must be an https://, ssh:// or git:// URL (or user@host:path for ssh), "
                            f"got {value!r}")
        return "ssh", scp["host"], DEFAULT_PORTS["ssh"]
    url = urllib.parse.urlsplit(value)
    scheme = url.scheme.lower()
    if scheme not in SCHEMES:
        raise SpecError(path, f"the scheme must be one of {', '.join(SCHEMES)} (plain http sends content and "
                        f"credentials in the clear; file and ext run on the writer), got {url.scheme!r}")
    if url.password is not None or (url.username is not None and scheme != "ssh"):
        raise SpecError(path, "must not carry credentials: put them in the Secret named by "
                        "spec.content.git.secretName")
    host = url.hostname or ""
    if not host or not (_HOST.match(host) or is_ip(host)):
        raise SpecError(path, f"must name a host, got {value!r}")
    try:
        port = url.port or DEFAULT_PORTS[scheme]
    except ValueError:
        raise SpecError(path, f"has an invalid port, got {value!r}") from None
    if not url.path or url.path == "/":
        raise SpecError(path, f"must name a repository on the host, got {value!r}")
    if url.query or url.fragment:
        raise SpecError(path, "must not have a query or a fragment")
    return scheme, host, port


def check_ref(value: str, path: str) -> str:
    """A ref as `git check-ref-format` allows one (and no leading '-'), or a commit's hex name."""
    problems = [
        (not value, "must not be empty"),
        (len(value) > 255, "must be at most 255 characters"),
        (value.startswith("-"), "must not start with '-' (git would read it as an option)"),
        (_bad_characters(value), "must not contain spaces or control characters"),
        (any(c in value for c in "~^:?*[\\"), "must not contain any of ~ ^ : ? * [ \\"),
        (".." in value, "must not contain '..'"),
        ("@{" in value, "must not contain '@{'"),
        (value == "@", "must not be '@'"),
        (value.startswith("/") or value.endswith("/") or "//" in value, "must not begin or end with '/' or "
         "contain '//'"),
        (value.endswith("."), "must not end with '.'"),
        (any(part.startswith(".") or part.endswith(".lock") for part in value.split("/")),
         "no part may begin with '.' or end with '.lock'"),
    ]
    for bad, message in problems:
        if bad:
            raise SpecError(path, f"{message} (git refuses such a ref), got {value!r}")
    return value


def parse_interval(value: Any, path: str) -> int:
    """Seconds: an integer, or a duration such as 30s, 5m, 1h30m."""
    if isinstance(value, bool):
        raise SpecError(path, f"must be a number of seconds or a duration such as 60s or 5m, got {value!r}")
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, str) and value and (match := _DURATION.match(value)) and any(match.groups()):
        seconds = int(match["h"] or 0) * 3600 + int(match["m"] or 0) * 60 + int(match["s"] or 0)
    else:
        raise SpecError(path, f"must be a number of seconds or a duration such as 60s or 5m, got {value!r}")
    if not MIN_INTERVAL <= seconds <= MAX_INTERVAL:
        raise SpecError(path, f"must be between {MIN_INTERVAL}s and {MAX_INTERVAL // 3600}h, got {value!r}")
    return seconds


def _sub_path(value: str, path: str) -> str | None:
    if value.startswith("/") or ".." in value.split("/") or _bad_characters(value) or "\\" in value:
        raise SpecError(path, f"must be a relative path inside the repository without '..', got {value!r}")
    cleaned = posixpath.normpath(value) if value else "."
    if cleaned == ".":
        return None
    if any(part.startswith(".git") for part in cleaned.split("/")):
        raise SpecError(path, f"must not name git's own files, got {value!r}")
    return cleaned


def parse_content(spec: Mapping[str, Any]) -> GitContent | None:
    """None when the site's content does not come from git."""
    content = get(spec, "content", "spec", dict, None)
    if content is None:
        return None
    unknown = set(content) - {"git"}
    if unknown:
        raise SpecError(f"spec.content.{sorted(unknown)[0]}", "only git is a content source")
    raw = get(content, "git", "spec.content", dict, None)
    if raw is None:
        return None
    path = "spec.content.git"
    repository = get(raw, "repository", path, str, "")
    if not repository:
        raise SpecError(f"{path}.repository", "is required: the https://, ssh:// or git:// URL to fetch")
    scheme, host, port = parse_repository(repository, f"{path}.repository")
    secret = get(raw, "secretName", path, str, None)
    if secret is not None and (not secret or len(secret) > 253 or not DNS1123.match(secret)):
        raise SpecError(f"{path}.secretName", f"must name a Secret in the namespace, got {secret!r}")
    depth = get(raw, "depth", path, int, 1)
    if not 0 <= depth <= MAX_DEPTH:
        raise SpecError(f"{path}.depth", f"must be between 0 (the whole history) and {MAX_DEPTH}, got {depth}")
    return GitContent(
        repository=repository, scheme=scheme, host=host, port=port,
        ref=check_ref(get(raw, "ref", path, str, "HEAD"), f"{path}.ref"),
        interval=parse_interval(raw.get("interval", DEFAULT_INTERVAL), f"{path}.interval"),
        depth=depth,
        sub_path=_sub_path(get(raw, "subPath", path, str, ""), f"{path}.subPath"),
        secret_name=secret)
