"""The day-two parts of a HttpdSite's spec: httpd config, probes, autoscaling, ingress, backup,
restore and metrics. Parsed like `spec.py` does: typed values, defaults applied, and every
refusal naming its field. Each part is None (or empty) when its field is absent, so each
renderer step can be a no-op.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from httpd_operator.errors import SpecError
from httpd_operator.fields import get, ranged
from httpd_operator.names import DNS1123 as _DNS1123
from httpd_operator.names import qualified_name

# A config beyond this is a mistake (a ConfigMap holds at most 1 MiB in all).
MAX_CONFIG = 256 * 1024
MAX_MODULES = 64
_MODULE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_WILDCARD_HOST = re.compile(r"^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# An HTTP path: printable ASCII without spaces, quotes or backslashes (it reaches probes and
# Ingress rules, never a shell or a config file).
_URL_PATH = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$")
_CRON_FIELD = re.compile(r"^[0-9A-Za-z*?/,\-]+$")
_CRON_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
# An archive inside the backup claim: one optional directory and a tar(.gz) file name.
_ARCHIVE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]{0,252}/)?[A-Za-z0-9][A-Za-z0-9._-]{0,252}\.(tar|tar\.gz|tgz)$")


@dataclass(frozen=True)
class HttpdConfig:
    """`spec.httpd`: directives appended to the image's httpd.conf, and modules to load."""

    config: str = ""
    modules: tuple[str, ...] = ()


@dataclass(frozen=True)
class Probe:
    path: str = "/healthz"
    initial_delay_seconds: int = 0
    period_seconds: int = 10
    timeout_seconds: int = 1
    failure_threshold: int = 3


@dataclass(frozen=True)
class Probes:
    readiness: Probe = field(default_factory=Probe)
    liveness: Probe = field(default_factory=lambda: Probe(failure_threshold=6))


@dataclass(frozen=True)
class Autoscaling:
    min_replicas: int = 1
    max_replicas: int = 1
    target_cpu: int = 80


@dataclass(frozen=True)
class Ingress:
    host: str | None = None
    path: str = "/"
    path_type: str = "Prefix"
    class_name: str | None = None
    tls_secret_name: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Backup:
    schedule: str = "@daily"
    keep: int = 7
    claim_name: str = ""
    suspend: bool = False


@dataclass(frozen=True)
class Restore:
    claim_name: str
    archive: str


@dataclass(frozen=True)
class MetricsSpec:
    enabled: bool = False
    port: int = 9117


def _dns_name(obj: Mapping[str, Any], key: str, path: str, required: bool = False) -> str | None:
    value = get(obj, key, path, str, None)
    if value is None and not required:
        return None
    if not value or len(value) > 253 or not _DNS1123.match(value):
        raise SpecError(f"{path}.{key}", f"must be a DNS-1123 name, got {value!r}")
    return value


def parse_httpd(spec: Mapping[str, Any]) -> HttpdConfig:
    raw = get(spec, "httpd", "spec", dict, None)
    if raw is None:
        return HttpdConfig()
    path = "spec.httpd"
    config = get(raw, "config", path, str, "")
    if len(config.encode()) > MAX_CONFIG:
        raise SpecError(f"{path}.config", f"must be at most {MAX_CONFIG // 1024} KiB, got {len(config.encode())} bytes")
    if "\x00" in config:
        raise SpecError(f"{path}.config", "must not contain NUL characters")
    modules = get(raw, "modules", path, list, [])
    if len(modules) > MAX_MODULES:
        raise SpecError(f"{path}.modules", f"must list at most {MAX_MODULES} modules, got {len(modules)}")
    names: list[str] = []
    for i, module in enumerate(modules):
        if not isinstance(module, str):
            raise SpecError(f"{path}.modules[{i}]", f"must be a string, got {type(module).__name__}")
        name = module.removeprefix("mod_").removesuffix(".so").removesuffix("_module")
        if not _MODULE.match(name):
            raise SpecError(f"{path}.modules[{i}]", f"must be a module name like 'rewrite' or 'mod_rewrite', "
                            f"got {module!r}")
        if name not in names:
            names.append(name)
    return HttpdConfig(config=config, modules=tuple(names))


def _probe(probes: Mapping[str, Any], which: str, default: Probe) -> Probe:
    path = f"spec.probes.{which}"
    raw = get(probes, which, "spec.probes", dict, None)
    if raw is None:
        return default
    probe_path = get(raw, "path", path, str, default.path)
    if not _URL_PATH.match(probe_path) or len(probe_path) > 1024:
        raise SpecError(f"{path}.path", f"must be an absolute URL path, got {probe_path!r}")
    return Probe(
        path=probe_path,
        initial_delay_seconds=ranged(raw, "initialDelaySeconds", path, default.initial_delay_seconds, 0, 3600),
        period_seconds=ranged(raw, "periodSeconds", path, default.period_seconds, 1, 3600),
        timeout_seconds=ranged(raw, "timeoutSeconds", path, default.timeout_seconds, 1, 3600),
        failure_threshold=ranged(raw, "failureThreshold", path, default.failure_threshold, 1, 1000),
    )


def parse_probes(spec: Mapping[str, Any]) -> Probes:
    raw = get(spec, "probes", "spec", dict, None)
    if raw is None:
        return Probes()
    defaults = Probes()
    return Probes(readiness=_probe(raw, "readiness", defaults.readiness),
                  liveness=_probe(raw, "liveness", defaults.liveness))


def parse_autoscaling(spec: Mapping[str, Any]) -> Autoscaling | None:
    raw = get(spec, "autoscaling", "spec", dict, None)
    if raw is None:
        return None
    path = "spec.autoscaling"
    low = ranged(raw, "minReplicas", path, 1, 1, 1000)
    if raw.get("maxReplicas") is None:
        raise SpecError(f"{path}.maxReplicas", "is required: the most pods the autoscaler may run")
    high = ranged(raw, "maxReplicas", path, 1, 1, 1000)
    if high < low:
        raise SpecError(f"{path}.maxReplicas", f"must be at least minReplicas ({low}), got {high}")
    return Autoscaling(min_replicas=low, max_replicas=high,
                       target_cpu=ranged(raw, "targetCPUUtilizationPercentage", path, 80, 1, 100))


def parse_ingress(spec: Mapping[str, Any]) -> Ingress | None:
    raw = get(spec, "ingress", "spec", dict, None)
    if raw is None:
        return None
    path = "spec.ingress"
    host = get(raw, "host", path, str, None)
    if host is not None and (len(host) > 253 or not _WILDCARD_HOST.match(host)):
        raise SpecError(f"{path}.host", f"must be a DNS name (lower case, optionally '*.' first), got {host!r}")
    url_path = get(raw, "path", path, str, "/")
    if not _URL_PATH.match(url_path) or len(url_path) > 1024:
        raise SpecError(f"{path}.path", f"must be an absolute URL path, got {url_path!r}")
    path_type = get(raw, "pathType", path, str, "Prefix")
    if path_type not in ("Prefix", "Exact", "ImplementationSpecific"):
        raise SpecError(f"{path}.pathType", f"must be Prefix, Exact or ImplementationSpecific, got {path_type!r}")
    annotations = get(raw, "annotations", path, dict, {})
    for key, value in annotations.items():
        if not isinstance(value, str):
            raise SpecError(f"{path}.annotations.{key}", f"must be a string, got {type(value).__name__}")
    for key in annotations:
        qualified_name(key, f"{path}.annotations")
    return Ingress(host=host, path=url_path, path_type=path_type,
                   class_name=_dns_name(raw, "className", path),
                   tls_secret_name=_dns_name(raw, "tlsSecretName", path),
                   annotations=dict(annotations))


def _schedule(value: str, path: str) -> str:
    fields = value.split()
    if value in _CRON_MACROS or (len(fields) == 5 and all(_CRON_FIELD.match(f) for f in fields)):
        return " ".join(fields) if len(fields) == 5 else value
    raise SpecError(path, f"must be a cron schedule of five fields (e.g. '0 3 * * *') or one of "
                    f"{', '.join(_CRON_MACROS)}, got {value!r}")


def parse_backup(spec: Mapping[str, Any], own_claim: str | None) -> Backup | None:
    raw = get(spec, "backup", "spec", dict, None)
    if raw is None:
        return None
    path = "spec.backup"
    target = get(raw, "target", path, dict, None)
    if target is None:
        raise SpecError(f"{path}.target", "is required: the claim (target.claimName) the archives are written to")
    claim = _dns_name(target, "claimName", f"{path}.target", required=True) or ""
    if claim == own_claim:
        raise SpecError(f"{path}.target.claimName", f"{claim} is the site's own volume: a backup must live "
                        "on other storage")
    return Backup(schedule=_schedule(get(raw, "schedule", path, str, "@daily"), f"{path}.schedule"),
                  keep=ranged(raw, "keep", path, 7, 1, 1000), claim_name=claim,
                  suspend=get(raw, "suspend", path, bool, False))


def parse_restore(volume: Mapping[str, Any] | None, volume_type: str, read_only: bool) -> Restore | None:
    raw = get(volume or {}, "restoreFrom", "spec.volume", dict, None)
    if raw is None:
        return None
    path = "spec.volume.restoreFrom"
    if volume_type == "FromSite":
        raise SpecError(path, "a FromSite volume belongs to its source site: restore into that site")
    if read_only:
        raise SpecError(path, "cannot restore into a read-only volume")
    claim = _dns_name(raw, "claimName", path, required=True) or ""
    archive = get(raw, "archive", path, str, "")
    if not _ARCHIVE.match(archive) or ".." in archive.split("/") or posixpath.normpath(archive) != archive:
        raise SpecError(f"{path}.archive", "must name a .tar, .tar.gz or .tgz file in the claim (at most one "
                        f"directory, no '..'), got {archive!r}")
    return Restore(claim_name=claim, archive=archive)


def parse_metrics(spec: Mapping[str, Any], http_port: int) -> MetricsSpec:
    raw = get(spec, "metrics", "spec", dict, None)
    if raw is None:
        return MetricsSpec()
    port = ranged(raw, "port", "spec.metrics", 9117, 1024, 65535)
    if port == http_port:
        raise SpecError("spec.metrics.port", f"must differ from spec.port ({http_port})")
    return MetricsSpec(enabled=get(raw, "enabled", "spec.metrics", bool, False), port=port)
