"""kmock's parse of an incoming request, made cheap: it was the emulator's largest cost per
request in the operator benchmark (0.41 ms of about 0.8: the body decoded twice, a form parse
tried on every GET, an enum guessed by scanning its members, a `resource` built through a
runtime-checked Protocol). The `Request` it gives is the same, so kmock's fault-injection DSL
and the tests' assertions on requests see what they saw before.

Also: `/api/v1/namespaces[/NAME]` names Namespace objects (kmock 0.8 fails on the former, which
kopf lists when it serves given namespaces)."""

from __future__ import annotations

import json
from typing import Any

import aiohttp.web
from kmock._internal import enums, parsing, references, rendering

_METHODS = {m.value: m for m in enums.method}
_RESOURCES: dict[tuple[str, str | None, str | None], references.resource] = {}
_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")
_kmock_parse_path = parsing.parse_path
KMOCK_PARSE = rendering.Request.__dict__["_parse"]  # kmock's own (bench/emulator_bench.py compares)


def parse_path(path: str) -> parsing.ParsedPath:
    parts = path.strip("/").split("/")
    if parts[:2] == ["api", "v1"] and parts[2:3] == ["namespaces"] and len(parts) <= 4:
        return parsing.ParsedPath("", "v1", "namespaces", None, parts[3] if len(parts) == 4 else None, None)
    return _kmock_parse_path(path)


def _resource(group: str, version: str | None, plural: str | None) -> references.resource:
    """One frozen `resource` per (group, version, plural), built once."""
    key = (group, version, plural)
    found = _RESOURCES.get(key)
    if found is None:
        found = _RESOURCES[key] = references.resource(group=group, version=version, plural=plural)
    return found


async def parse(cls: type[rendering.Request], raw: aiohttp.web.BaseRequest, *, id: int = 0) -> rendering.Request:
    """As `rendering.Request._parse`: the same fields, each computed once."""
    body = await raw.read()
    text = body.decode(raw.charset or "utf-8") if body else ""
    data: Any = None
    if body:
        try:
            data = json.loads(text)
        except ValueError:
            data = (await raw.post() or None) if raw.content_type in _FORMS else None
    k8s = parse_path(raw.path)
    resource = None if k8s is None or k8s.group is None else _resource(k8s.group, k8s.version, k8s.plural)
    method = _METHODS.get(raw.method) or enums.method(raw.method)
    query = dict(raw.query)
    return cls(id=id, raw_request=raw, url=raw.url, method=method, params=query,
               headers=dict(raw.headers), cookies=dict(raw.cookies) if "Cookie" in raw.headers else {},
               data=data, body=body, text=text, action=parsing.guess_k8s(k8s, method, query),
               resource=resource, namespace=k8s.namespace, name=k8s.name, subresource=k8s.subresource)


def install() -> None:
    """Put these in kmock's place (once, at import of the emulator)."""
    parsing.parse_path = parse_path
    rendering.Request._parse = classmethod(parse)  # type: ignore[assignment,method-assign]
