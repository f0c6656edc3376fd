"""Hostile input: a corpus of bad HttpdSite objects (tests/corpus/), each with its verdict.

Every corpus file starts with `# expect: ...` (a document of a multi-document file may carry its
own), one of:

- `schema <field>`: the CRD's openAPIV3Schema rejects it at that field (a real server answers 422).
  The operator must refuse it too (InvalidSpec naming the field): objects can bypass the schema.
- `operator <Reason> <field>`: the schema accepts it; the operator refuses it with that condition
  reason and a message naming the field, and creates no children.
- `pruned <field>...`: no schema declares the field, so a real API server (structural schema, no
  preserve-unknown-fields at spec level) drops it silently; the operator must ignore it likewise.

Checked three ways: against the schema (jsonschema, with the server's regular-expression
semantics), through the pure path (`render_body`), and with the real operator against the
emulated API, which validates nothing: the operator must cope with anything.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import json
import pathlib
import re
from collections.abc import Iterator
from typing import Any

import jsonschema
import kmock
import kubernetes_validate
import pytest
import yaml
from support import CRD, SITES, Api, eventually, site

from httpd_operator.diff import is_subset
from httpd_operator.errors import SpecError
from httpd_operator.render import render_body
from httpd_operator.render.volumes import WAITING_REASONS
from httpd_operator.settings import Settings
from httpd_operator.spec import parse_site

CORPUS = pathlib.Path(__file__).resolve().parent / "corpus"
SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
SCHEMA = CRD["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
SETTINGS = Settings()  # what the emulated operator runs with: no host path allowed
CHILDREN = ("v1/persistentvolumeclaims", "apps/v1/deployments", "v1/services", "networking.k8s.io/v1/networkpolicies")

# Corpus files the operator gets wrong (strict xfails, so a fix turns them into failures that ask for
# this list to shrink). Emptied once overflowing sizes, scratch mount paths and field syntax were fixed.
KNOWN_BUGS: dict[str, str] = {}  # all fixed: overflowing sizes, scratch mount paths, field syntax


# -- the corpus ---------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Verdict:
    kind: str                    # schema | operator | pruned
    reason: str | None           # the condition reason (operator verdicts)
    fields: tuple[str, ...]      # field paths, e.g. spec.volume.size, spec.tolerations[0]


@dataclasses.dataclass(frozen=True)
class Case:
    file: str
    doc: dict[str, Any]
    verdict: Verdict

    @property
    def name(self) -> str:
        return self.doc["metadata"]["name"]


def _verdict(text: str) -> Verdict | None:
    match = re.search(r"(?m)^# expect: (\S+)(.*)$", text)
    if not match:
        return None
    kind, rest = match.group(1), match.group(2).split()
    if kind == "operator":
        return Verdict(kind, rest[0], tuple(rest[1:]))
    assert kind in ("schema", "pruned"), kind
    return Verdict(kind, None, tuple(rest))


def load(path: pathlib.Path) -> list[Case]:
    text = path.read_text()
    current = _verdict(text)
    assert current is not None, f"{path.name}: no leading '# expect:' comment"
    cases = []
    for chunk in re.split(r"(?m)^---\s*$", text):
        doc = yaml.safe_load(chunk)
        if doc is None:
            continue
        current = _verdict(chunk) or current
        assert current.fields, f"{path.name}: the verdict names no field"
        cases.append(Case(path.name, doc, current))
    return cases


FILES = sorted(CORPUS.glob("*.yaml"))
CASES = [case for path in FILES for case in load(path)]


def params(cases: list[Case], known_bugs: bool = True) -> list[Any]:
    """Cases as pytest parameters; with `known_bugs`, the operator's known failures are xfails."""
    return [pytest.param(c, id=f"{c.file}:{c.name[:20]}",
                         marks=[pytest.mark.xfail(strict=True, reason=KNOWN_BUGS[c.file])]
                         if known_bugs and c.file in KNOWN_BUGS else [])
            for c in cases]


def test_corpus_is_broad_and_well_formed() -> None:
    assert len(FILES) >= 30
    kinds = {c.verdict.kind for c in CASES}
    assert kinds == {"schema", "operator", "pruned"}
    assert set(KNOWN_BUGS) <= {p.name for p in FILES}
    for case in CASES:
        assert case.doc.get("kind") == "HttpdSite" and case.doc["metadata"].get("name"), case.file
    multi = [p for p in FILES if len(load(p)) > 1]
    assert len(multi) >= 3  # the fromSite cycles of two and three sites, a site mounting a bad one


# -- (1) the CRD's schema -------------------------------------------------------------------------

def _re2_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[jsonschema.ValidationError]:
    """`pattern` as the API server applies it: Go's RE2, where `$` matches only at the very end
    of the text (Python's `$` also matches before a final newline)."""
    if validator.is_type(instance, "string") and not re.search(re.sub(r"(?<!\\)\$", lambda _: r"\Z", pattern),
                                                               instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


Validator = jsonschema.validators.extend(jsonschema.Draft7Validator, {"pattern": _re2_pattern})


def field_path(path: Any) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out


def schema_errors(doc: dict[str, Any]) -> set[str]:
    return {field_path(e.absolute_path) for e in Validator(SCHEMA).iter_errors(doc)}


def declared(path: str) -> bool:
    """Whether the schema keeps the field: declared, or under preserve-unknown-fields / a map."""
    node = SCHEMA
    for part in path.split("."):
        if node.get("x-kubernetes-preserve-unknown-fields") or isinstance(node.get("additionalProperties"), dict):
            return True
        node = (node.get("properties") or {}).get(part)
        if node is None:
            return False
    return True


def get_path(doc: dict[str, Any], path: str) -> Any:
    for part in path.split("."):
        doc = doc[part]
    return doc


def pruned(doc: dict[str, Any], fields: tuple[str, ...]) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    for path in fields:
        *parents, last = path.split(".")
        del (get_path(doc, ".".join(parents)) if parents else doc)[last]
    return doc


def test_re2_semantics_matter() -> None:
    """Python's `$` would let a trailing newline through; the server's RE2 does not."""
    assert re.search(r"^[^\s]+$", "httpd:2.4\n")
    assert "spec.image" in schema_errors(site("x", image="httpd:2.4\n"))
    assert not schema_errors(site("x", image="httpd:2.4"))


@pytest.mark.parametrize("case", params(CASES, known_bugs=False))
def test_schema_verdict(case: Case) -> None:
    errors = schema_errors(case.doc)
    if case.verdict.kind == "schema":
        assert case.verdict.fields[0] in errors, errors
        return
    assert errors == set(), f"the schema rejects what the corpus says it accepts: {errors}"
    if case.verdict.kind == "pruned":
        for path in case.verdict.fields:
            get_path(case.doc, path)  # present in the file...
            assert not declared(path), f"{path} is declared (or preserved): a server would keep it"
        assert schema_errors(pruned(case.doc, case.verdict.fields)) == set()


# -- (2) the pure path ----------------------------------------------------------------------------

def with_identity(doc: dict[str, Any], namespace: str = "ns") -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    doc["metadata"].update(namespace=namespace, uid=f"uid-{doc['metadata']['name']}")
    return doc


def render_case(case: Case) -> Any:
    """Render one site as the operator does: the other sites of its file are the namespace."""
    sites: dict[str, Any] = {}
    for other in CASES:
        if other.file == case.file and other.name != case.name:
            try:
                sites[other.name] = parse_site(with_identity(other.doc), SETTINGS)
            except SpecError as exc:
                sites[other.name] = exc
    return render_body(with_identity(case.doc), SETTINGS, sites)


@pytest.mark.parametrize("case", params([c for c in CASES if c.verdict.kind != "pruned"]))
def test_operator_refuses_with_reason_naming_the_field(case: Case) -> None:
    """Schema-rejected objects too: the emulator, an old CRD or a hand-made object skip the schema."""
    reason = case.verdict.reason or "InvalidSpec"
    field = case.verdict.fields[0]
    with pytest.raises(SpecError) as exc:
        render_case(case)
    assert (exc.value.reason, exc.value.field) == (reason, field), exc.value.message
    assert field in exc.value.message


@pytest.mark.parametrize("case", params([c for c in CASES if c.verdict.kind == "pruned"]))
def test_pruned_fields_change_nothing_the_operator_renders(case: Case) -> None:
    """What the server would drop, the operator ignores: same objects with or without it."""
    raw = render_body(with_identity(case.doc), SETTINGS).objects
    assert raw == render_body(with_identity(pruned(case.doc, case.verdict.fields)), SETTINGS).objects
    for obj in raw:
        kubernetes_validate.validate(obj, "1.33.0", strict=True)


# -- (3) the real operator against the emulated API --------------------------------------------------

def namespace_of(file: str) -> str:
    return "h-" + re.sub(r"[^a-z0-9-]", "-", file.removesuffix(".yaml"))[:50]


def children(api: Api, namespace: str) -> list[dict[str, Any]]:
    return [o for resource in CHILDREN for o in api.server.list(resource, namespace)]


def warnings(api: Api, namespace: str, name: str) -> list[dict[str, Any]]:
    return [e for e in api.server.list("v1/events", namespace)
            if e["involvedObject"]["name"] == name and e["type"] == "Warning"]


def refused_as(api: Api, ns: str, name: str, reason: str, field: str) -> bool:
    status = api.site_status(ns, name)
    ready = next((c for c in status.get("conditions") or [] if c["type"] == "Ready"), {})
    phase = "Pending" if reason in WAITING_REASONS else "Failed"
    return status.get("phase") == phase and ready.get("status") == "False" and \
        ready.get("reason") == reason and field in ready.get("message", "") and \
        any(e["reason"] == reason and field in e["message"] for e in warnings(api, ns, name))


def converged(api: Api, ns: str, name: str) -> bool:
    status = api.site_status(ns, name)
    return status.get("phase") == "Ready" and \
        status.get("observedGeneration") == api.get(SITES, ns, name)["metadata"]["generation"]


async def test_operator_copes_with_the_whole_corpus_at_once(api: Api, operator) -> None:
    op = await operator()
    good = site("good", "valid", replicas=2, volume={"size": "2Gi"})
    bodies = [good] + [{**copy.deepcopy(c.doc), "metadata": {**c.doc["metadata"], "namespace": namespace_of(c.file)}}
                       for c in CASES]
    # One burst, the valid site among them. Names that are no RFC 1123 subdomain are refused by the
    # API server itself (422 on metadata.name), as a real one does, before any operator sees them.
    results = await asyncio.gather(*(api.create_site(b) for b in bodies), return_exceptions=True)
    unnamed = {b["metadata"]["name"] for b, r in zip(bodies, results, strict=True) if isinstance(r, Exception)}
    assert all("422" in str(r) and "metadata.name" in str(r) for r in results if isinstance(r, Exception))
    assert unnamed == {c.name for c in CASES if not SUBDOMAIN.match(c.name) or len(c.name) > 253}

    await eventually(lambda: converged(api, "valid", "good"), timeout=60)
    checked = [c for c in CASES if c.file not in KNOWN_BUGS and c.name not in unnamed]
    for case in checked:
        if case.verdict.kind == "pruned":
            await eventually(lambda case=case: converged(api, namespace_of(case.file), case.name), timeout=60)
        else:
            reason, field = case.verdict.reason or "InvalidSpec", case.verdict.fields[0]
            ns = namespace_of(case.file)
            await eventually(lambda ns=ns, case=case, r=reason, f=field: refused_as(api, ns, case.name, r, f),
                             timeout=60)

    for case in checked:
        ns = namespace_of(case.file)
        if case.verdict.kind != "pruned":
            assert children(api, ns) == [], f"{case.file}: a refused site got children"
            continue
        # What a server would prune never reaches the children; they are what the pruned site wants.
        live = api.get(SITES, ns, case.name)
        want = render_body(pruned(live, case.verdict.fields), SETTINGS).objects
        have = {(o["kind"], o["metadata"]["name"]): o for o in children(api, ns)}
        assert len(have) == len(want)
        for obj in want:
            assert is_subset(obj, have[(obj["kind"], obj["metadata"]["name"])]), obj["kind"]
        text = json.dumps(list(have.values()))
        for word in ("evil", "pwned", "hostNetwork", "privileged", "tmpfs"):
            assert word not in text, f"{case.file}: {word!r} reached a child"

    # Still running and still serving: the thread is alive and a site created now converges.
    assert op._thread.is_alive() and op.error is None
    await api.create_site(site("after", "valid"))
    await eventually(lambda: converged(api, "valid", "after"), timeout=30)
    assert converged(api, "valid", "good")


async def test_operator_reports_an_overflowing_size(api: Api, operator) -> None:
    await operator()
    await api.create_site(site("huge", volume={"size": "1e999999999"}))
    await api.create_site(site("fine"))
    await eventually(lambda: converged(api, "ns", "fine"), timeout=30)
    await eventually(lambda: refused_as(api, "ns", "huge", "InvalidSpec", "spec.volume.size"), timeout=5)


async def test_a_child_the_api_server_refuses_is_reported(api: Api, operator) -> None:
    """What a real server does with the Deployment of nodeselector-shell.yaml: 422 Invalid."""
    def invalid(request: Any) -> bool:
        return request.method.value == "POST" and request.url.path.endswith("/deployments") and \
            ((request.data or {}).get("metadata") or {}).get("name") == "sel"

    api.server[invalid] << kmock.KubernetesError(
        status=422, reason="Invalid", message='Deployment.apps "sel" is invalid: spec.template.spec.nodeSelector: '
        'Invalid value: "$(reboot)": a valid label must be an empty string or consist of alphanumeric characters')
    await operator()
    await api.create_site(site("sel", nodeSelector={"disktype": "$(reboot)"}))
    await api.create_site(site("fine"))
    await eventually(lambda: converged(api, "ns", "fine"), timeout=30)
    await eventually(lambda: any(c["type"] == "Ready" and c["status"] == "False" and "nodeSelector" in c["message"]
                                 for c in api.site_status("ns", "sel").get("conditions") or []), timeout=5)
