"""Kubernetes' name rules (DNS-1123 subdomains, qualified label and annotation keys), and
whether a host is an address rather than a name."""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from httpd_operator.errors import SpecError

DNS1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


def qualified_name(name: Any, path: str) -> None:
    """A label or annotation key: an optional DNS subdomain prefix and a name of 63 characters."""
    prefix, _, short = str(name).rpartition("/")
    if not isinstance(name, str) or not NAME.match(short) or len(short) > 63 or \
            (prefix and (len(prefix) > 253 or not DNS1123.match(prefix))):
        raise SpecError(path, f"{name!r} is not a valid key (letters, digits, '-', '_', '.', at most 63, "
                        "with an optional DNS prefix and '/')")


def is_ip(host: str) -> bool:
    """An IPv4 or IPv6 address, not a name (no DNS lookup is involved)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
