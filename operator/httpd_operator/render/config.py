"""The site's httpd configuration: a ConfigMap mounted at the image's conf.d, which the image's
httpd.conf includes last (`IncludeOptional conf.d/*.conf`).

The user's directives go into a file of their own, with nothing of ours around them: a stray
`</IfModule>` cannot close an operator block, it is a syntax error httpd reports for that file.
The pod template carries a checksum of the ConfigMap's data, so a config change rolls the pods
(old pods keep serving until new ones pass readiness) and nothing else does.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from httpd_operator.render.meta import metadata
from httpd_operator.spec import SiteSpec

CONF_DIR = "/usr/local/apache2/conf.d"
MODULES_FILE = "00-modules.conf"
CONTENT_FILE = "40-content.conf"
SITE_FILE = "50-site.conf"
ANNOTATION_CHECKSUM = "httpd.dev/config-checksum"


def module_lines(modules: tuple[str, ...]) -> str:
    """LoadModule lines, each skipped when the image already loads that module."""
    return "".join(f"<IfModule !{m}_module>\n    LoadModule {m}_module modules/mod_{m}.so\n</IfModule>\n"
                   for m in modules)


def render_config_map(site: SiteSpec, content: str | None = None) -> dict[str, Any] | None:
    """`content`: the conf.d file of content from git (render/content.py), if any."""
    if not site.httpd.config and not site.httpd.modules and not content:
        return None
    data: dict[str, str] = {}
    if content:
        data[CONTENT_FILE] = content
    if site.httpd.modules:
        data[MODULES_FILE] = "# Written by httpd-operator from spec.httpd.modules\n" + module_lines(site.httpd.modules)
    if site.httpd.config:
        data[SITE_FILE] = site.httpd.config  # verbatim: httpd reads a last line without a newline
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata(site, site.name), "data": data}


def config_checksum(config_map: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config_map["data"], sort_keys=True).encode()).hexdigest()


def setup_config(site: SiteSpec, config_map: dict[str, Any] | None, deployment: dict[str, Any]) -> None:
    if config_map is None:
        return
    pod = deployment["spec"]["template"]["spec"]
    pod["volumes"].append({"name": "config", "configMap": {"name": config_map["metadata"]["name"]}})
    pod["containers"][0]["volumeMounts"].append({"name": "config", "mountPath": CONF_DIR, "readOnly": True})
    annotations = deployment["spec"]["template"]["metadata"].setdefault("annotations", {})
    annotations[ANNOTATION_CHECKSUM] = config_checksum(config_map)
