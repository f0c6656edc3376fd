"""An emulated Kubernetes API server: kmock's emulator plus the semantics the operator relies on.

kmock (by kopf's author) serves discovery and lets tests inject faults with its DSL, e.g.
``api['create v1/persistentvolumeclaims'][:2] << 500``. Its object store is a plain JSON store,
so this layer serves object requests itself, as a real API server would:

- uid, resourceVersion (bumped on every write), creationTimestamp, generation, generateName and
  the namespace from the URL on create; 409 AlreadyExists, 409 Conflict on a stale
  resourceVersion, 422 for a failed JSON-patch `test`, 404 NotFound;
- merge, strategic-merge (approximated as merge) and JSON patches, PUT, the `status` and
  `scale` subresources (status writes change only status; other writes never change it);
- lists with kind and resourceVersion; watches that honour `?resourceVersion=`, label and field
  selectors and `timeoutSeconds`, served as `application/json` lines;
- deletion with finalizers (deletionTimestamp, then removal) and cascading deletion of dependents
  by ownerReferences (the garbage collector);
- request matching that checks each reaction against the current request only, so the cost per
  request stays flat as the request log grows;
- pods' logs (`pods/<name>/log`, with `tailLines`), as tests set them (`set_log`): what the
  operator reads from its git writer;
- optionally (`controllers=True`) stand-ins for the controllers the operator waits on: new claims
  get a PersistentVolume and become Bound with their capacity, Deployments report their replicas
  ready. No pods run: nothing here schedules or starts containers.

What it never shows: schema validation and defaulting by the server, admission, RBAC, strategic
merge and server-side apply semantics. The real control plane (hack/control-plane) covers those.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import random
import re
import string
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import aiohttp.web
import attrs
import kmock
from kmock._internal import dsl, rendering

from httpd_operator.emulator import request_parse
from httpd_operator.emulator.controllers import ControllerStandIns, Key
from httpd_operator.emulator.patches import error, field_matches, json_patch, merge, now, selector_matches


@functools.lru_cache(maxsize=256)
def _group_plural(resource: str) -> tuple[str, str]:
    """kmock's parse of "group/version/plural", remembered (it is costly, and polls repeat it)."""
    res = kmock.resource(resource)
    return res.group or "", res.plural or ""


def _clone(obj: Any) -> Any:
    """A deep copy of JSON data: a JSON round trip is several times faster than copy.deepcopy,
    which was the emulator's largest cost in the 1000-site benchmark."""
    return json.loads(json.dumps(obj))


MAX_EVENTS = 200_000  # the watch cache; older resourceVersions answer 410 Gone, as a real server


_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def kubeconfig(url: str, namespace: str = "default") -> dict[str, Any]:
    """A kubeconfig for the emulated server at `url` (any token is accepted)."""
    return {"apiVersion": "v1", "kind": "Config", "current-context": "emulator",
            "clusters": [{"name": "emulator", "cluster": {"server": url}}],
            "users": [{"name": "emulator", "user": {"token": "emulated"}}],
            "contexts": [{"name": "emulator", "context": {"cluster": "emulator", "user": "emulator",
                                                          "namespace": namespace}}]}


request_parse.install()  # kmock's request parsing, made cheap (see the module)


def _fast_match(payload: dsl.Reaction, request: rendering.Request) -> bool:
    """Whether a reaction's filters accept this request, without re-scanning the request log."""
    node: Any = payload._source
    while not isinstance(node, dsl.Root):
        if type(node) is dsl.Filter:
            if not node.criteria(request):
                return False
        elif not isinstance(node, dsl.Priority):
            return request in payload._source  # slices, groups: kmock's exact (slower) way
        node = node._source
    return True


@attrs.define(kw_only=True)
class ApiServer(ControllerStandIns, kmock.KubernetesEmulator):
    """kmock's emulator with a Kubernetes-like object store (see the module's docstring)."""

    controllers: bool = False

    _store: dict[Key, dict[str, Any]] = attrs.field(factory=dict, init=False)
    _rv: int = attrs.field(default=1000, init=False)
    _events: list[tuple[int, Key, dict[str, Any]]] = attrs.field(factory=list, init=False)
    _oldest_rv: int = attrs.field(default=1000, init=False)
    _changed: asyncio.Future[None] | None = attrs.field(default=None, init=False)
    _builtin: set[int] = attrs.field(factory=set, init=False)
    _sorted: tuple[tuple[int, ...], list[Any]] = attrs.field(default=((), []), init=False)
    _infos: dict[tuple[str | None, str | None, str | None], Any] = attrs.field(factory=dict, init=False)
    _tasks: set[asyncio.Task[None]] = attrs.field(factory=set, init=False)
    _closed: bool = attrs.field(default=False, init=False)
    _cut: int = attrs.field(default=0, init=False)
    # Pods' logs, by (namespace, pod): tests write what a container printed (set_log).
    _logs: dict[tuple[str, str], str] = attrs.field(factory=dict, init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._builtin = {id(p) for p in self._payloads}

    @contextlib.asynccontextmanager
    async def running(self, host: str = "127.0.0.1", port: int | None = None) -> AsyncIterator[str]:
        """Serve over HTTP; yields the base URL. Watches end at exit, so shutdown is immediate."""
        async with self, kmock.Server(self, host=host, port=port) as server:
            try:
                yield str(server.url).rstrip("/")
            finally:
                self.close_watches()

    def close_watches(self) -> None:
        """End every watch stream for good (at shutdown)."""
        self._closed = True
        self.cut_watches()

    def cut_watches(self) -> None:
        """End the watch streams open now, as a load balancer or an apiserver restart would;
        clients reconnect (with their last resourceVersion) and new streams work as before."""
        self._cut += 1
        if self._changed is not None and not self._changed.done():
            self._changed.set_result(None)
        self._changed = None

    # -- set-up helpers -------------------------------------------------------------------------

    def load_builtin(self) -> None:
        self.resources.load_bundled()

    def register_crd(self, crd: Mapping[str, Any]) -> None:
        """Serve the resource a CustomResourceDefinition declares (as the real server does)."""
        spec = crd["spec"]
        names = spec["names"]
        for version in spec["versions"]:
            if not version.get("served", True):
                continue
            self.resources[f"{spec['group']}/{version['name']}/{names['plural']}"] = kmock.ResourceInfo(
                kind=names["kind"], singular=names.get("singular"), namespaced=spec["scope"] == "Namespaced",
                shortnames=set(names.get("shortNames", [])), categories=set(names.get("categories", [])),
                verbs={"get", "list", "watch", "create", "update", "patch", "delete", "deletecollection"},
                subresources=set((version.get("subresources") or {}).keys()))

    # -- direct access for tests and the demo ---------------------------------------------------

    def get(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """The stored object (a copy), e.g. get('apps/v1/deployments', 'ns', 'web')."""
        res = kmock.resource(resource)
        obj = self._store.get((res.group or "", res.plural or "", namespace, name))
        return _clone(obj) if obj is not None else None

    def list(self, resource: str, namespace: str | None = None) -> list[dict[str, Any]]:
        res = kmock.resource(resource)
        return [_clone(o) for (g, p, ns, _), o in sorted(self._store.items(), key=lambda kv: str(kv[0]))
                if (g, p) == (res.group or "", res.plural or "") and (namespace is None or ns == namespace)]

    def objects(self) -> list[dict[str, Any]]:
        """Every stored object of every kind (copies), in a stable order: what the demo lists."""
        return [_clone(o) for _, o in sorted(self._store.items(), key=lambda kv: str(kv[0]))]

    def peek_one(self, resource: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        """One stored object, uncopied: read it, never change it (benchmarks)."""
        group, plural = _group_plural(resource)
        return self._store.get((group, plural, namespace, name))

    def peek(self, resource: str) -> Iterator[dict[str, Any]]:
        """The stored objects of a resource, uncopied: read them, never change them (benchmarks)."""
        res = kmock.resource(resource)
        return (o for (g, p, _, _), o in list(self._store.items()) if (g, p) == (res.group or "", res.plural or ""))

    async def put_status(self, resource: str, namespace: str | None, name: str,
                         status: Mapping[str, Any]) -> None:
        """Write an object's status as its controller would (tests drive transitions with it)."""
        res = kmock.resource(resource)
        key = (res.group or "", res.plural or "", namespace, name)
        obj = self._store[key]
        self._write(key, {**obj, "status": merge(obj.get("status"), dict(status))}, "MODIFIED")

    def set_log(self, namespace: str, pod: str, text: str) -> None:
        """What a pod's container printed: served at .../pods/<pod>/log (no pods run here)."""
        self._logs[(namespace, pod)] = text

    def _log(self, request: rendering.Request, key: Key) -> aiohttp.web.Response:
        """GET pods/<name>/log, with tailLines, as text (404 while the pod does not exist)."""
        if key not in self._store:
            raise error(404, "NotFound", f'pods "{key[3]}" not found', {"name": key[3], "kind": "pods"})
        lines = self._logs.get((key[2] or "", key[3]), "").splitlines(keepends=True)
        tail = request.params.get("tailLines")
        if tail is not None and tail.isdigit():
            lines = lines[-int(tail):] if int(tail) else []
        return aiohttp.web.Response(text="".join(lines), content_type="text/plain")

    @property
    def resource_version(self) -> int:
        return self._rv

    # -- request routing ------------------------------------------------------------------------

    def _ordered(self) -> list[Any]:
        """Reactions by priority; re-sorted only when tests add or replace one."""
        ids = tuple(id(p) for p in self._payloads)
        if self._sorted[0] != ids:
            prios = [p.priorities for p in self._payloads]
            width = max((len(p) for p in prios), default=0)
            keys = [tuple(-x for x in p) + (0,) * (width - len(p)) for p in prios]
            order = sorted(range(len(prios)), key=lambda i: keys[i])
            self._sorted = (ids, [self._payloads[i] for i in order])
        return self._sorted[1]

    async def _react(self, request: rendering.Request, builtin: bool) -> aiohttp.web.StreamResponse | None:
        for payload in self._ordered():
            if (id(payload) in self._builtin) != builtin or payload._disabled.is_set():
                continue
            if not _fast_match(payload, request):
                continue
            try:
                return await payload(request)
            except rendering.ReactionMismatchError:
                payload._disabled.set()
            except NotImplementedError:
                pass
        return None

    async def _handle(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        response = await self._react(request, builtin=False)  # faults injected by tests come first
        if response is not None:
            return response
        if request.resource is not None and request.resource.plural and self._info(request):
            return await self._serve_object(request)
        response = await self._react(request, builtin=True)  # discovery
        if response is None:
            raise NotImplementedError(f"no reaction for {request.method} {request.url}")
        return response

    def _info(self, request: rendering.Request) -> kmock.ResourceInfo | None:
        res = request.resource
        key = (res.group, res.version, res.plural)
        if key not in self._infos:
            found = [self.resources[k] for k in self.resources if (k.group, k.version, k.plural) == key]
            if not found:
                return None  # not cached: the resource may be registered later (a CRD)
            self._infos[key] = found[0]
        return self._infos[key]

    async def _serve_version(self, request: rendering.Request) -> Any:
        result = await super()._serve_version(request)
        if isinstance(result, dict) and result.get("groupVersion", "").startswith("/"):
            result["groupVersion"] = result["groupVersion"][1:]  # "/v1" -> "v1" for the core group
        return result

    async def _serve_object(self, request: rendering.Request) -> aiohttp.web.StreamResponse:
        info = self._info(request)
        assert info is not None and request.resource is not None
        res = request.resource
        ns = request.namespace if info.namespaced else None
        method = str(request.method).upper().split(".")[-1]
        if request.name is None:
            if method == "GET" and request.params.get("watch") in ("true", "1"):
                return await self._watch(request, info, ns)
            if method == "GET":
                return self._json(self._list(request, info, ns))
            if method == "POST":
                return self._json(self._create(request, info, ns), status=201)
            if method == "DELETE":
                return self._json(self._delete_collection(request, info, ns))
        else:
            key: Key = (res.group or "", res.plural or "", ns, request.name)
            sub = request.subresource
            if sub == "log" and key[:2] == ("", "pods") and method == "GET":
                return self._log(request, key)
            if sub not in (None, "status", "scale") or (sub and sub not in info.subresources):
                raise error(404, "NotFound", f"the server could not find the requested resource ({sub})")
            if method == "GET":
                return self._json(self._scale(key) if sub == "scale" else self._existing(key, info))
            if method in ("PATCH", "PUT"):
                return self._json(self._modify(request, info, key, method, sub))
            if method == "DELETE":
                return self._json(self._delete(key, info, request.data or {}))
        raise error(405, "MethodNotAllowed", f"{method} is not supported here")

    @staticmethod
    def _json(payload: Any, status: int = 200) -> aiohttp.web.Response:
        return aiohttp.web.Response(text=json.dumps(payload), status=status, content_type="application/json")

    # -- reads ----------------------------------------------------------------------------------

    def _existing(self, key: Key, info: kmock.ResourceInfo) -> dict[str, Any]:
        obj = self._store.get(key)
        if obj is None:
            raise error(404, "NotFound", f'{key[1]} "{key[3]}" not found',
                         {"name": key[3], "kind": key[1]})
        return obj

    def _matching(self, request: rendering.Request, group: str, plural: str,
                  ns: str | None) -> Iterator[dict[str, Any]]:
        labels, fields = request.params.get("labelSelector", ""), request.params.get("fieldSelector", "")
        for (g, p, ons, _), obj in self._store.items():
            if (g, p) == (group, plural) and (ns is None or ons == ns) and self._selected(obj, labels, fields):
                yield obj

    @staticmethod
    def _selected(obj: Mapping[str, Any], labels: str, fields: str) -> bool:
        meta = obj.get("metadata") or {}
        return (not labels or selector_matches(labels, meta.get("labels") or {})) and \
            (not fields or field_matches(fields, obj))

    def _list(self, request: rendering.Request, info: kmock.ResourceInfo, ns: str | None) -> dict[str, Any]:
        res = request.resource
        # As kube-apiserver answers: the items of a list carry neither kind nor apiVersion.
        items = [{k: v for k, v in obj.items() if k not in ("kind", "apiVersion")}
                 for obj in self._matching(request, res.group or "", res.plural or "", ns)]
        api_version = f"{res.group}/{res.version}" if res.group else res.version
        return {"apiVersion": api_version, "kind": f"{info.kind}List",
                "metadata": {"resourceVersion": str(self._rv)}, "items": items}

    async def _watch(self, request: rendering.Request, info: kmock.ResourceInfo,
                     ns: str | None) -> aiohttp.web.StreamResponse:
        res = request.resource
        group, plural = res.group or "", res.plural or ""
        labels, fields = request.params.get("labelSelector", ""), request.params.get("fieldSelector", "")
        since = request.params.get("resourceVersion", "")
        timeout = float(request.params.get("timeoutSeconds") or 0) or None
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request._raw_request)

        async def send(kind: str, obj: Mapping[str, Any]) -> None:
            await response.write(json.dumps({"type": kind, "object": obj}).encode() + b"\n")

        if since in ("", "0"):
            cursor = self._rv
            for obj in list(self._matching(request, group, plural, ns)):
                await send("ADDED", obj)
        else:
            cursor = int(since)
            if cursor < self._oldest_rv:
                await send("ERROR", {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 410,
                                     "reason": "Expired", "message": f"too old resource version: {since}"})
                await response.write_eof()
                return response
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout if timeout else None
        try:
            generation = self._cut
            while not self._closed and generation == self._cut and (deadline is None or loop.time() < deadline):
                batch = self._events_after(cursor)
                if not batch:
                    if self._changed is None:
                        self._changed = loop.create_future()
                    remaining = None if deadline is None else max(0.0, deadline - loop.time())
                    try:
                        await asyncio.wait_for(asyncio.shield(self._changed), remaining)
                    except TimeoutError:
                        break
                    continue
                for rv, (g, p, ons, _), event in batch:
                    cursor = rv
                    if (g, p) == (group, plural) and (ns is None or ons == ns) and \
                            self._selected(event["object"], labels, fields):
                        await send(event["type"], event["object"])
            await response.write_eof()
        except (ConnectionResetError, ConnectionError, asyncio.CancelledError):
            pass
        return response

    def _events_after(self, rv: int) -> list[tuple[int, Key, dict[str, Any]]]:
        events = self._events
        lo, hi = 0, len(events)
        while lo < hi:  # binary search: events are ordered by resourceVersion
            mid = (lo + hi) // 2
            if events[mid][0] <= rv:
                lo = mid + 1
            else:
                hi = mid
        return events[lo:]

    # -- writes ---------------------------------------------------------------------------------

    def _write(self, key: Key, obj: dict[str, Any], event: str) -> dict[str, Any]:
        """Store a new version (objects are never mutated in place) and tell the watchers."""
        self._rv += 1
        obj = _clone(obj)
        obj.setdefault("metadata", {})["resourceVersion"] = str(self._rv)
        if event == "DELETED":
            self._store.pop(key, None)
        else:
            self._store[key] = obj
        self._events.append((self._rv, key, {"type": event, "object": obj}))
        if len(self._events) > MAX_EVENTS:
            drop = len(self._events) - MAX_EVENTS // 2
            self._oldest_rv = self._events[drop - 1][0]
            del self._events[:drop]
        if self._changed is not None:  # wake the watchers (checked and awaited without a gap)
            if not self._changed.done():
                self._changed.set_result(None)
            self._changed = None
        return obj

    def _create(self, request: rendering.Request, info: kmock.ResourceInfo, ns: str | None) -> dict[str, Any]:
        res = request.resource
        obj = _clone(request.data) if isinstance(request.data, dict) else None
        if obj is None:
            raise error(400, "BadRequest", "the request body is not a JSON object")
        meta = obj.setdefault("metadata", {})
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise error(422, "Invalid", "metadata.name: Required value: name or generateName is required")
            # As kube-apiserver's name generator: the prefix cut to 58 characters, 5 random ones added.
            meta["name"] = str(meta["generateName"])[:58] + "".join(
                random.choices(string.ascii_lowercase + string.digits, k=5))
        name = meta["name"]
        if not isinstance(name, str) or len(name) > 253 or not _SUBDOMAIN.match(name):
            raise error(422, "Invalid", f'{info.kind} "{name}" is invalid: metadata.name: Invalid value: "{name}": '
                        "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
                        "'-' or '.', and must start and end with an alphanumeric character")
        if info.namespaced:
            if meta.get("namespace") not in (None, ns):
                raise error(400, "BadRequest", "the namespace of the object does not match the URL")
            meta["namespace"] = ns
        key: Key = (res.group or "", res.plural or "", ns, meta["name"])
        if ns is not None and ("", "namespaces", None, ns) not in self._store:
            self._ensure_namespace(ns)
        if key in self._store:
            raise error(409, "AlreadyExists", f'{res.plural} "{meta["name"]}" already exists',
                         {"name": meta["name"], "kind": res.plural})
        obj["apiVersion"] = f"{res.group}/{res.version}" if res.group else res.version
        obj["kind"] = info.kind
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=now(), generation=1)
        meta.pop("resourceVersion", None)
        if "status" in info.subresources:
            obj.pop("status", None)
        stored = self._write(key, obj, "ADDED")
        if res.group == "apiextensions.k8s.io" and res.plural == "customresourcedefinitions":
            self.register_crd(stored)
        self._after_write(key, None, stored)
        return stored

    def _ensure_namespace(self, name: str) -> None:
        """Lenient where a real server answers 404: the first write into a namespace makes it, so
        clients that watch namespaces (kopf, serving given namespaces) see it exist."""
        self._write(("", "namespaces", None, name), {
            "apiVersion": "v1", "kind": "Namespace", "metadata": {
                "name": name, "uid": str(uuid.uuid4()), "creationTimestamp": now(), "generation": 1,
                "labels": {"kubernetes.io/metadata.name": name}},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}, "ADDED")

    def _modify(self, request: rendering.Request, info: kmock.ResourceInfo, key: Key, method: str,
                sub: str | None) -> dict[str, Any]:
        old = self._existing(key, info)
        body = request.data
        if sub == "scale":
            replicas = (body or {}).get("spec", {}).get("replicas") if method == "PUT" else \
                self._patched(request, self._scale(key)).get("spec", {}).get("replicas")
            new = merge(old, {"spec": {"replicas": replicas}})
        elif method == "PUT":
            if not isinstance(body, dict):
                raise error(400, "BadRequest", "the request body is not a JSON object")
            rv = (body.get("metadata") or {}).get("resourceVersion")
            if not rv:
                raise error(422, "Invalid", "metadata.resourceVersion: Invalid value: must be specified for an update")
            new = _clone(body)
        else:
            new = self._patched(request, old)
        rv = (new.get("metadata") or {}).get("resourceVersion")
        if rv and rv != old["metadata"]["resourceVersion"]:
            raise error(409, "Conflict", f'Operation cannot be fulfilled on {key[1]} "{key[3]}": the object '
                         "has been modified; please apply your changes to the latest version and try again")
        new = self._keep_server_fields(old, new, info, sub)
        if key[:2] == ("", "persistentvolumeclaims") and sub is None:
            self._check_claim_update(old, new)
        if new == old:
            return old  # a no-op write does not bump the resourceVersion, as on a real server
        meta = new["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self._remove(key)
            return new
        stored = self._write(key, new, "MODIFIED")
        self._after_write(key, old, stored)
        return stored

    def _check_claim_update(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        """A claim's spec is immutable but for its requested size, which may grow only when its
        StorageClass allows expansion (as the real API server's admission enforces)."""
        def size(obj: dict[str, Any]) -> str | None:
            return ((obj.get("spec") or {}).get("resources") or {}).get("requests", {}).get("storage")

        strip = {"resources": None, "volumeName": None}
        if merge(old.get("spec"), strip) != merge(new.get("spec"), strip):
            raise error(422, "Invalid", f'PersistentVolumeClaim "{old["metadata"]["name"]}" is invalid: spec: '
                        "Forbidden: spec is immutable after creation except resources.requests for bound claims")
        if size(old) != size(new):
            name = (new.get("spec") or {}).get("storageClassName") or ""
            cls = self._store.get(("storage.k8s.io", "storageclasses", None, name))
            if cls is not None and not cls.get("allowVolumeExpansion"):
                raise error(403, "Forbidden", f'persistentvolumeclaims "{old["metadata"]["name"]}" is forbidden: '
                            "only dynamically provisioned pvc can be resized and the storageclass that "
                            "provisions the pvc must support resize")

    def _patched(self, request: rendering.Request, old: dict[str, Any]) -> dict[str, Any]:
        ctype = (request.headers.get("Content-Type") or "").split(";")[0].strip()
        body = request.data
        if ctype == "application/json-patch+json":
            if not isinstance(body, list):
                raise error(400, "BadRequest", "a JSON patch must be a list of operations")
            return json_patch(old, body)
        if ctype in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            if not isinstance(body, dict):
                raise error(400, "BadRequest", "a merge patch must be a JSON object")
            return merge(old, body)
        raise error(415, "UnsupportedMediaType", f"the emulator does not support patches of type {ctype!r} "
                     "(server-side apply needs a real API server)")

    @staticmethod
    def _keep_server_fields(old: dict[str, Any], new: dict[str, Any], info: kmock.ResourceInfo,
                            sub: str | None) -> dict[str, Any]:
        """What clients cannot change: identity, and status vs. spec across the subresources."""
        new = dict(new)
        meta = dict(new.get("metadata") or {})
        for field_ in ("uid", "creationTimestamp", "name", "namespace", "generation", "deletionTimestamp"):
            if field_ in old["metadata"]:
                meta[field_] = old["metadata"][field_]
            else:
                meta.pop(field_, None)
        meta["resourceVersion"] = old["metadata"]["resourceVersion"]
        new["metadata"] = meta
        new["apiVersion"], new["kind"] = old.get("apiVersion"), old.get("kind")
        if "status" in info.subresources:
            if sub == "status":  # only the status changes through /status
                new = {**old, "status": new.get("status")}
                if new["status"] is None:
                    del new["status"]
            elif "status" in old:
                new["status"] = old["status"]
            else:
                new.pop("status", None)
        spec_old = {k: v for k, v in old.items() if k not in ("metadata", "status")}
        spec_new = {k: v for k, v in new.items() if k not in ("metadata", "status")}
        if spec_old != spec_new:
            new["metadata"] = {**new["metadata"], "generation": int(old["metadata"].get("generation", 1)) + 1}
        return new

    def _scale(self, key: Key) -> dict[str, Any]:
        obj = self._store.get(key)
        if obj is None:
            raise error(404, "NotFound", f'{key[1]} "{key[3]}" not found')
        return {"apiVersion": "autoscaling/v1", "kind": "Scale",
                "metadata": {k: obj["metadata"][k] for k in ("name", "namespace", "uid", "resourceVersion")
                             if k in obj["metadata"]},
                "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 0)},
                "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                           "selector": (obj.get("status") or {}).get("selector", "")}}

    def _delete(self, key: Key, info: kmock.ResourceInfo, options: Mapping[str, Any]) -> dict[str, Any]:
        obj = self._existing(key, info)
        meta = obj["metadata"]
        if meta.get("deletionTimestamp"):
            return obj
        if meta.get("finalizers"):
            return self._write(key, {**obj, "metadata": {**meta, "deletionTimestamp": now()}}, "MODIFIED")
        self._remove(key, orphan=(options or {}).get("propagationPolicy") == "Orphan")
        return obj

    def _delete_collection(self, request: rendering.Request, info: kmock.ResourceInfo,
                           ns: str | None) -> dict[str, Any]:
        res = request.resource
        for obj in list(self._matching(request, res.group or "", res.plural or "", ns)):
            meta = obj["metadata"]
            self._delete((res.group or "", res.plural or "", meta.get("namespace"), meta["name"]), info, {})
        return {"apiVersion": "v1", "kind": "Status", "status": "Success"}

    def _remove(self, key: Key, orphan: bool = False) -> None:
        obj = self._store.get(key)
        if obj is None:
            return
        self._write(key, obj, "DELETED")
        self._after_delete(key, obj)
        if not orphan:  # the garbage collector is a controller: it acts after the owner is gone
            uid = obj["metadata"]["uid"]
            self._soon(self._collect_soon(uid))

    async def _collect_soon(self, uid: str) -> None:
        await asyncio.sleep(0.05)
        self._collect_garbage(uid)

    def _collect_garbage(self, uid: str) -> None:
        """Delete dependents whose owners are all gone (background propagation)."""
        alive = {o["metadata"].get("uid") for o in self._store.values()}
        for key, obj in list(self._store.items()):
            refs = (obj.get("metadata") or {}).get("ownerReferences") or []
            if any(r.get("uid") == uid for r in refs) and not any(r.get("uid") in alive for r in refs):
                meta = obj["metadata"]
                if meta.get("finalizers"):
                    if not meta.get("deletionTimestamp"):
                        self._write(key, {**obj, "metadata": {**meta, "deletionTimestamp": now()}}, "MODIFIED")
                else:
                    self._remove(key)
