"""A HttpdSite's spec, parsed into typed values with the schema's defaults applied.

The API server validates the CRD schema, but the operator may also meet objects that bypassed it
(an emulator, an older CRD, a schema that cannot express a rule). Everything the renderer relies
on is checked here, and each refusal names the field, so status and events can say what to fix.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from httpd_operator.errors import SpecError
from httpd_operator.fields import get as _get
from httpd_operator.fields import ranged as _int
from httpd_operator.names import DNS1123 as _DNS1123
from httpd_operator.names import NAME as _NAME
from httpd_operator.names import qualified_name as _qualified_name
from httpd_operator.quantity import QuantityError, parse_quantity
from httpd_operator.settings import DOCUMENT_ROOT, SCRATCH_PATHS, Settings
from httpd_operator.spec_content import GitContent, parse_content
from httpd_operator.spec_features import (
    Autoscaling,
    Backup,
    HttpdConfig,
    Ingress,
    MetricsSpec,
    Probes,
    Restore,
    parse_autoscaling,
    parse_backup,
    parse_httpd,
    parse_ingress,
    parse_metrics,
    parse_probes,
    parse_restore,
)
from httpd_operator.spec_network import NetworkPolicySpec, parse_network_policy

VOLUME_TYPES = ("Managed", "ExistingClaim", "HostPath", "NFS", "Ephemeral", "FromSite")
ACCESS_MODES = ("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod")
SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer")
HOST_PATH_TYPES = ("", "DirectoryOrCreate", "Directory")
# Longest site name whose children stay valid: the Service name and the instance label value
# are DNS-1035 labels (63 characters); the claim adds "-htdocs" to a 253-character limit.
MAX_NAME = 63
_DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_HOSTNAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?$|^\[?[0-9A-Fa-f:.]+\]?$")


@dataclass(frozen=True)
class VolumeSpec:
    """Where the site's content lives (`spec.volume`)."""

    type: str = "Managed"
    size: str = "1Gi"
    size_bytes: Decimal = Decimal(2**30)
    storage_class_name: str | None = None
    access_modes: tuple[str, ...] = ("ReadWriteOnce",)
    volume_mode: str | None = None
    reclaim_policy: str = "Retain"
    claim_name: str | None = None
    host_path: str | None = None
    host_path_type: str = "Directory"
    nfs_server: str | None = None
    nfs_path: str | None = None
    size_limit: str | None = None
    medium: str = ""
    from_site: str | None = None
    read_only: bool = False
    sub_path: str | None = None
    mount_path: str = DOCUMENT_ROOT
    seed: str = "IfEmpty"
    restore: Restore | None = None


@dataclass(frozen=True)
class SiteSpec:
    """Everything the renderer needs to know about one site."""

    name: str
    namespace: str
    uid: str
    generation: int
    replicas: int = 1
    image: str = ""
    port: int = 8080
    service_type: str = "ClusterIP"
    service_port: int = 80
    volume: VolumeSpec = field(default_factory=VolumeSpec)
    resources: Mapping[str, Any] = field(default_factory=dict)
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: tuple[Mapping[str, Any], ...] = ()
    affinity: Mapping[str, Any] = field(default_factory=dict)
    pod_annotations: Mapping[str, str] = field(default_factory=dict)
    min_available: int | str = 1
    httpd: HttpdConfig = field(default_factory=HttpdConfig)
    probes: Probes = field(default_factory=Probes)
    autoscaling: Autoscaling | None = None
    ingress: Ingress | None = None
    backup: Backup | None = None
    metrics: MetricsSpec = field(default_factory=MetricsSpec)
    network_policy: NetworkPolicySpec | None = None
    git: GitContent | None = None


def _git(spec: Mapping[str, Any], volume: VolumeSpec) -> GitContent | None:
    """spec.content.git, and the volumes it cannot write into."""
    git = parse_content(spec)
    if git is None:
        return None
    refusals = {
        "FromSite": "a FromSite volume belongs to its source site: set spec.content.git there",
        "Ephemeral": "an Ephemeral volume lives in each pod, so the one writer cannot fill the other pods' "
                     "volumes: use a claim",
    }
    if volume.type in refusals:
        raise SpecError("spec.content.git", refusals[volume.type])
    if volume.read_only:
        raise SpecError("spec.content.git", "the writer cannot fill a read-only volume (spec.volume.readOnly)")
    if volume.restore is not None:
        raise SpecError("spec.content.git", "content from git and spec.volume.restoreFrom both fill the "
                        "volume: choose one")
    return git


def _enum(obj: Mapping[str, Any], key: str, path: str, default: str, allowed: tuple[str, ...]) -> str:
    value = _get(obj, key, path, str, default)
    if value not in allowed:
        choices = ", ".join(a or '""' for a in allowed)
        raise SpecError(f"{path}.{key}", f"must be one of {choices}, got {value!r}")
    return value


def _label_value(value: Any, path: str) -> None:
    if not isinstance(value, str) or (value and (len(value) > 63 or not _NAME.match(value))):
        raise SpecError(path, f"{value!r} is not a valid label value (letters, digits, '-', '_', '.', at most 63)")


def _string_map(obj: Mapping[str, Any], key: str, path: str, labels: bool = False) -> dict[str, str]:
    """A map of strings whose keys are label keys; with `labels`, whose values are label values."""
    value = _get(obj, key, path, dict, {})
    for k, v in value.items():
        _qualified_name(k, f"{path}.{key}")
        if not isinstance(v, str):
            raise SpecError(f"{path}.{key}.{k}", f"must be a string, got {type(v).__name__}")
        if labels:
            _label_value(v, f"{path}.{key}.{k}")
    return dict(value)


def check_resources(value: Any, path: str) -> dict[str, Any]:
    """requests and limits: maps of resource names to quantities (the API server's own rule).
    Used for `spec.resources` and for the operator's preset (`--default-resources`)."""
    if not isinstance(value, dict):
        raise SpecError(path, f"must be an object of requests and limits, got {type(value).__name__}")
    for section, amounts in value.items():
        if section not in ("requests", "limits"):
            raise SpecError(f"{path}.{section}", "only requests and limits are allowed")
        if not isinstance(amounts, dict):
            raise SpecError(f"{path}.{section}", "must be an object of quantities")
        for name, amount in amounts.items():
            _qualified_name(name, f"{path}.{section}")
            try:
                if parse_quantity(amount) < 0:
                    raise QuantityError(f"{amount!r} is negative")
            except QuantityError as exc:
                raise SpecError(f"{path}.{section}.{name}", str(exc)) from None
    return dict(value)


def _resources(obj: Mapping[str, Any], path: str, default: Mapping[str, Any]) -> dict[str, Any]:
    """The site's own resources; absent means the operator's preset, while `{}` written
    explicitly still means none (a user who wants unbounded pods can say so)."""
    if obj.get("resources") is None:
        return {section: dict(amounts) for section, amounts in default.items()}
    return check_resources(_get(obj, "resources", path, dict, {}), f"{path}.resources")


def _tolerations(obj: Mapping[str, Any], path: str) -> tuple[Mapping[str, Any], ...]:
    value = _get(obj, "tolerations", path, list, [])
    for i, toleration in enumerate(value):
        where = f"{path}.tolerations[{i}]"
        if not isinstance(toleration, dict):
            raise SpecError(where, "must be an object")
        if toleration.get("key"):
            _qualified_name(toleration["key"], f"{where}.key")
        if toleration.get("operator", "Equal") not in ("Equal", "Exists"):
            raise SpecError(f"{where}.operator", "must be Equal or Exists")
        if toleration.get("effect", "") not in ("", "NoSchedule", "PreferNoSchedule", "NoExecute"):
            raise SpecError(f"{where}.effect", "must be NoSchedule, PreferNoSchedule or NoExecute")
        _label_value(toleration.get("value", ""), f"{where}.value")
    return tuple(value)


def _quantity(value: Any, path: str) -> Decimal:
    try:
        amount = parse_quantity(value)
    except QuantityError as exc:
        raise SpecError(path, str(exc)) from None
    if amount <= 0:
        raise SpecError(path, f"must be positive, got {value!r}")
    return amount


def _clean_abs_path(value: str, path: str) -> str:
    """An absolute path with no `..` escape, normalised (`/a//b/` -> `/a/b`)."""
    if not value.startswith("/"):
        raise SpecError(path, f"must be an absolute path, got {value!r}")
    if ".." in value.split("/"):
        raise SpecError(path, f"must not contain '..', got {value!r}")
    if "\x00" in value:
        raise SpecError(path, "must not contain NUL characters")
    return posixpath.normpath(value).replace("//", "/")


def _sub_path(value: str, path: str) -> str:
    """A relative path inside the volume; `..` or an absolute path could reach other data."""
    if value.startswith("/") or ".." in value.split("/") or "\x00" in value:
        raise SpecError(path, f"must be a relative path inside the volume without '..', got {value!r}")
    cleaned = posixpath.normpath(value)
    if cleaned in (".", ""):
        raise SpecError(path, "must name a directory inside the volume")
    return cleaned


def _storage_class(raw: Mapping[str, Any], path: str) -> str | None:
    name = _get(raw, "storageClassName", path, str, None)
    if name and (len(name) > 253 or not _DNS1123.match(name)):
        raise SpecError(f"{path}.storageClassName", f"{name!r} is not a StorageClass name (a DNS-1123 subdomain)")
    return name


def parse_volume(raw: Any, settings: Settings, site_name: str) -> VolumeSpec:
    """Parse `spec.volume`, applying per-type defaults and refusing unsafe combinations."""
    path = "spec.volume"
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SpecError(path, f"must be an object, got {type(raw).__name__}")
    vtype = _enum(raw, "type", path, "Managed", VOLUME_TYPES)
    size = _get(raw, "size", path, (str, int), "1Gi")
    size_bytes = _quantity(size, f"{path}.size")
    modes = _get(raw, "accessModes", path, list, ["ReadWriteOnce"])
    if not modes:
        raise SpecError(f"{path}.accessModes", "must name at least one access mode")
    for i, mode in enumerate(modes):
        if mode not in ACCESS_MODES:
            raise SpecError(f"{path}.accessModes[{i}]", f"must be one of {', '.join(ACCESS_MODES)}, got {mode!r}")
    if "ReadWriteOncePod" in modes and len(modes) > 1:
        raise SpecError(f"{path}.accessModes", "ReadWriteOncePod cannot be combined with other modes")
    values: dict[str, Any] = {
        "type": vtype,
        "size": str(size),
        "size_bytes": size_bytes,
        "storage_class_name": _storage_class(raw, path),
        "access_modes": tuple(modes),
        "volume_mode": _get(raw, "volumeMode", path, str, None),
        "reclaim_policy": _enum(raw, "reclaimPolicy", path, "Retain", ("Retain", "Delete")),
        "read_only": _get(raw, "readOnly", path, bool, False),
        "mount_path": _clean_abs_path(_get(raw, "mountPath", path, str, DOCUMENT_ROOT), f"{path}.mountPath"),
        "seed": _enum(raw, "seed", path, "Never" if vtype == "FromSite" else "IfEmpty",
                      ("IfEmpty", "Never")),
    }
    mount = values["mount_path"]
    if mount == "/" or any(mount == d or mount.startswith(d + "/") or d.startswith(mount + "/") for d in SCRATCH_PATHS):
        raise SpecError(f"{path}.mountPath", f"{mount} overlaps a path httpd writes to ({', '.join(SCRATCH_PATHS)})")
    if values["volume_mode"] not in (None, "Filesystem"):
        raise SpecError(f"{path}.volumeMode", "must be Filesystem: httpd serves files, not a block device")
    sub = _get(raw, "subPath", path, str, None)
    if sub is not None:
        values["sub_path"] = _sub_path(sub, f"{path}.subPath")

    if vtype == "ExistingClaim":
        claim = _get(raw, "claimName", path, str, None)
        if not claim or not _DNS1123.match(claim) or len(claim) > 253:
            raise SpecError(f"{path}.claimName", f"must name a claim in the namespace, got {claim!r}")
        values["claim_name"] = claim
    elif vtype == "HostPath":
        host = _get(raw, "hostPath", path, dict, {})
        if not host.get("path"):
            raise SpecError(f"{path}.hostPath.path", "is required for type HostPath")
        hp = _clean_abs_path(_get(host, "path", f"{path}.hostPath", str, ""), f"{path}.hostPath.path")
        values["host_path"] = hp
        values["host_path_type"] = _enum(host, "type", f"{path}.hostPath", "Directory", HOST_PATH_TYPES)
        if not any(hp == p or hp.startswith(p.rstrip("/") + "/") for p in settings.allowed_host_paths):
            allowed = ", ".join(settings.allowed_host_paths) or "none"
            raise SpecError(f"{path}.hostPath.path",
                            f"{hp} is not under an allowed prefix (allowed: {allowed}; "
                            "start the operator with --allow-host-path PREFIX)",
                            reason="HostPathNotAllowed")
    elif vtype == "NFS":
        nfs = _get(raw, "nfs", path, dict, {})
        server = _get(nfs, "server", f"{path}.nfs", str, "")
        if not server or not _HOSTNAME.match(server):
            raise SpecError(f"{path}.nfs.server", f"must be a host name or address, got {server!r}")
        values["nfs_server"] = server
        values["nfs_path"] = _clean_abs_path(_get(nfs, "path", f"{path}.nfs", str, "/"), f"{path}.nfs.path")
    elif vtype == "Ephemeral":
        limit = _get(raw, "sizeLimit", path, (str, int), None)
        if limit is not None:
            _quantity(limit, f"{path}.sizeLimit")
            values["size_limit"] = str(limit)
        values["medium"] = _enum(raw, "medium", path, "", ("", "Memory"))
    elif vtype == "FromSite":
        source = _get(raw, "fromSite", path, str, "")
        if not source or not _DNS1035.match(source) or len(source) > MAX_NAME:
            raise SpecError(f"{path}.fromSite", f"must name another HttpdSite in the namespace, got {source!r}")
        if source == site_name:
            raise SpecError(f"{path}.fromSite", "a site cannot share its own volume")
        values["from_site"] = source
    values["restore"] = parse_restore(raw, vtype, values["read_only"])
    return VolumeSpec(**values)


def _min_available(spec: Mapping[str, Any], path: str) -> int | str:
    budget = _get(spec, "disruptionBudget", path, dict, {})
    value = _get(budget, "minAvailable", f"{path}.disruptionBudget", (int, str), 1)
    if isinstance(value, bool) or isinstance(value, int) and value < 0 or \
            isinstance(value, str) and not re.fullmatch(r"(100|[1-9]?[0-9])%", value):
        raise SpecError(f"{path}.disruptionBudget.minAvailable",
                        f"must be a number of pods or a percentage, got {value!r}")
    return value


def parse_site(body: Mapping[str, Any], settings: Settings) -> SiteSpec:
    """The typed spec of a HttpdSite body; raises SpecError naming the first wrong field."""
    meta = body.get("metadata") or {}
    name = meta.get("name") or ""
    if len(name) > MAX_NAME:
        raise SpecError("metadata.name", f"must be at most {MAX_NAME} characters (the Service and "
                        f"label values derived from it are limited to 63), got {len(name)}")
    if not _DNS1035.match(name):
        raise SpecError("metadata.name", "must start with a letter and contain only lower-case "
                        f"letters, digits and '-' (it names a Service), got {name!r}")
    spec = body.get("spec")
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        raise SpecError("spec", f"must be an object, got {type(spec).__name__}")
    path = "spec"
    port = _int(spec, "port", path, 8080, 1, 65535)
    if port < 1024:
        raise SpecError("spec.port", f"must be 1024 or higher: httpd runs as a non-root user "
                        f"without capabilities and cannot bind port {port}")
    service = _get(spec, "service", path, dict, {})
    image = _get(spec, "image", path, str, "") or settings.default_image
    if any(c.isspace() for c in image):
        raise SpecError("spec.image", f"must not contain white space, got {image!r}")
    volume = parse_volume(spec.get("volume"), settings, name)
    replicas = _int(spec, "replicas", path, 1, 0, 1000)
    autoscaling = parse_autoscaling(spec)
    if autoscaling is not None:  # the autoscaler writes spec.replicas; until it does, its bounds hold
        replicas = min(max(replicas, autoscaling.min_replicas), autoscaling.max_replicas)
    own_claim = f"{name}-htdocs" if volume.type == "Managed" else volume.claim_name
    return SiteSpec(
        name=name,
        namespace=meta.get("namespace") or "default",
        uid=meta.get("uid") or "",
        generation=int(meta.get("generation") or 0),
        replicas=replicas,
        image=image,
        port=port,
        service_type=_enum(service, "type", "spec.service", "ClusterIP", SERVICE_TYPES),
        service_port=_int(service, "port", "spec.service", 80, 1, 65535),
        volume=volume,
        resources=_resources(spec, path, settings.default_resources),
        node_selector=_string_map(spec, "nodeSelector", path, labels=True),
        tolerations=_tolerations(spec, path),
        affinity=_get(spec, "affinity", path, dict, {}),
        pod_annotations=_string_map(spec, "podAnnotations", path),
        min_available=_min_available(spec, path),
        httpd=parse_httpd(spec),
        probes=parse_probes(spec),
        autoscaling=autoscaling,
        ingress=parse_ingress(spec),
        backup=parse_backup(spec, own_claim),
        metrics=parse_metrics(spec, port),
        network_policy=parse_network_policy(spec, settings.network_policies, settings.metrics_namespaces),
        git=_git(spec, volume),
    )
