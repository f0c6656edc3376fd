"""`spec.networkPolicy`: who may reach a site's pods. Parsed like `spec.py` does (defaults
applied, every refusal naming its field), because a selector the API server would refuse, or a
namespace name that can never match, would otherwise fail only when the policy is written.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from httpd_operator.errors import SpecError
from httpd_operator.fields import get
from httpd_operator.names import NAME, qualified_name

# RFC 1123 label: what a namespace name is.
_RFC1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_OPERATORS = ("In", "NotIn", "Exists", "DoesNotExist")
EGRESS = ("All", "DNSOnly")


@dataclass(frozen=True)
class NetworkPolicySpec:
    """What the site's NetworkPolicy allows; peers are NetworkPolicyPeer objects, checked."""

    http_from: tuple[Mapping[str, Any], ...] = ()      # empty: from anywhere
    metrics_namespaces: tuple[str, ...] = ()           # empty: nobody reaches the metrics port
    egress: str = "All"


def namespace_names(value: Any, path: str) -> tuple[str, ...]:
    """A list of namespace names (RFC 1123 labels); also checks the operator's own setting."""
    if not isinstance(value, list):
        raise SpecError(path, f"must be a list of namespace names, got {type(value).__name__}")
    for i, name in enumerate(value):
        if not isinstance(name, str) or len(name) > 63 or not _RFC1123_LABEL.match(name):
            raise SpecError(f"{path}[{i}]", f"{name!r} is not a namespace name (an RFC 1123 label: lower-case "
                            "letters, digits and '-', at most 63)")
    return tuple(dict.fromkeys(value))


def namespaces_peer(names: tuple[str, ...]) -> dict[str, Any]:
    """One peer for pods in any of the named namespaces (by the label Kubernetes 1.21+ sets)."""
    return {"namespaceSelector": {"matchExpressions": [
        {"key": "kubernetes.io/metadata.name", "operator": "In", "values": list(names)}]}}


def _label_value(value: Any, path: str) -> None:
    if not isinstance(value, str) or (value and (len(value) > 63 or not NAME.match(value))):
        raise SpecError(path, f"{value!r} is not a valid label value (letters, digits, '-', '_', '.', at most 63)")


def label_selector(value: Any, path: str) -> dict[str, Any]:
    """A LabelSelector as the API server checks one: matchLabels and matchExpressions only."""
    if not isinstance(value, dict):
        raise SpecError(path, f"must be a label selector (matchLabels, matchExpressions), got {type(value).__name__}")
    unknown = set(value) - {"matchLabels", "matchExpressions"}
    if unknown:
        raise SpecError(f"{path}.{sorted(unknown)[0]}", "a label selector has only matchLabels and matchExpressions")
    labels = get(value, "matchLabels", path, dict, {})
    for key, label in labels.items():
        qualified_name(key, f"{path}.matchLabels")
        _label_value(label, f"{path}.matchLabels.{key}")
    expressions = get(value, "matchExpressions", path, list, [])
    for i, expr in enumerate(expressions):
        where = f"{path}.matchExpressions[{i}]"
        if not isinstance(expr, dict):
            raise SpecError(where, "must be an object (key, operator, values)")
        qualified_name(expr.get("key"), f"{where}.key")
        operator = expr.get("operator")
        if operator not in _OPERATORS:
            raise SpecError(f"{where}.operator", f"must be one of {', '.join(_OPERATORS)}, got {operator!r}")
        values = expr.get("values") or []
        if not isinstance(values, list):
            raise SpecError(f"{where}.values", "must be a list of label values")
        if operator in ("In", "NotIn") and not values:
            raise SpecError(f"{where}.values", f"must not be empty with operator {operator}")
        if operator in ("Exists", "DoesNotExist") and values:
            raise SpecError(f"{where}.values", f"must be empty with operator {operator}")
        for j, item in enumerate(values):
            _label_value(item, f"{where}.values[{j}]")
    return dict(value)


def _ip_block(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not isinstance(value.get("cidr"), str):
        raise SpecError(f"{path}.cidr", "is required: a CIDR such as 10.0.0.0/8")
    try:
        network = ipaddress.ip_network(value["cidr"], strict=False)
    except ValueError as exc:
        raise SpecError(f"{path}.cidr", f"is not a CIDR: {exc}") from None
    for i, item in enumerate(get(value, "except", path, list, [])):
        try:
            inner = ipaddress.ip_network(item, strict=False)
        except (ValueError, TypeError) as exc:
            raise SpecError(f"{path}.except[{i}]", f"is not a CIDR: {exc}") from None
        if inner.version != network.version or not inner.subnet_of(network):  # type: ignore[arg-type]
            raise SpecError(f"{path}.except[{i}]", f"must lie inside {value['cidr']}")
    return dict(value)


def _peer(value: Any, path: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not value:
        raise SpecError(path, "must be a peer: podSelector and/or namespaceSelector, or ipBlock")
    unknown = set(value) - {"podSelector", "namespaceSelector", "ipBlock"}
    if unknown:
        raise SpecError(f"{path}.{sorted(unknown)[0]}", "a peer has only podSelector, namespaceSelector and ipBlock")
    if "ipBlock" in value and len(value) > 1:
        raise SpecError(f"{path}.ipBlock", "cannot be combined with podSelector or namespaceSelector")
    if "ipBlock" in value:
        return {"ipBlock": _ip_block(value["ipBlock"], f"{path}.ipBlock")}
    return {key: label_selector(value[key], f"{path}.{key}") for key in ("namespaceSelector", "podSelector")
            if key in value}


def parse_network_policy(spec: Mapping[str, Any], enabled: bool, metrics_namespaces: tuple[str, ...]
                         ) -> NetworkPolicySpec | None:
    """None when off (the site's `enabled: false`, or the operator's --no-network-policies)."""
    path = "spec.networkPolicy"
    raw = get(spec, "networkPolicy", "spec", dict, {})
    if not get(raw, "enabled", path, bool, True) or not enabled:
        return None
    allowed = get(raw, "ingress", path, dict, {})
    peers: list[Mapping[str, Any]] = []
    names = namespace_names(get(allowed, "namespaces", f"{path}.ingress", list, []), f"{path}.ingress.namespaces")
    if names:
        peers.append(namespaces_peer(names))
    for i, peer in enumerate(get(allowed, "peers", f"{path}.ingress", list, [])):
        peers.append(_peer(peer, f"{path}.ingress.peers[{i}]"))
    metrics = raw.get("metricsNamespaces")
    egress = get(raw, "egress", path, str, "All")
    if egress not in EGRESS:
        raise SpecError(f"{path}.egress", f"must be one of {', '.join(EGRESS)}, got {egress!r}")
    return NetworkPolicySpec(
        http_from=tuple(peers),
        metrics_namespaces=metrics_namespaces if metrics is None
        else namespace_names(metrics, f"{path}.metricsNamespaces"),
        egress=egress)
