"""`-f` as kubectl reads it: files, directories and `-` (stdin), repeatable.

Every document keeps where it came from, so a mistake is reported as `FILE:LINE:COL: message`
(where the user looks), never as a parser's traceback. What the API server would do silently
(drop an unknown field, refuse a wrong apiVersion, keep only the last of two objects of one
name) is said here as a warning, before anything is rendered.
"""

from __future__ import annotations

import pathlib
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import yaml

from httpd_operator import GROUP, KIND, VERSION

SUFFIXES = (".yaml", ".yml", ".json")  # what kubectl reads from a directory
Path = tuple[str | int, ...]


class InputError(Exception):
    """Input the user must fix before anything is done (exit 2); one line per mistake."""


@dataclass
class Document:
    body: dict[str, Any]
    source: str  # a path as given, or <stdin>
    line: int  # where the document starts, from 1
    positions: dict[Path, tuple[int, int]] = field(default_factory=dict)  # field path -> (line, column)

    def where(self, path: Path = ()) -> str:
        line, column = self.positions.get(path, (self.line, 0))
        return f"{self.source}:{line}:{column}" if column else f"{self.source}:{line}"

    @property
    def key(self) -> tuple[str, str]:
        meta = self.body.get("metadata")
        meta = meta if isinstance(meta, dict) else {}
        return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def files(paths: Sequence[str], recursive: bool = False) -> tuple[list[str], list[str]]:
    """The files `paths` name (a directory's *.yaml, *.yml, *.json, sorted), and the errors."""
    found, errors = [], []
    for given in paths:
        if given == "-":
            found.append("-")
            continue
        path = pathlib.Path(given)
        if path.is_dir():
            walk = path.rglob("*") if recursive else path.iterdir()
            found.extend(str(p) for p in sorted(walk) if p.suffix in SUFFIXES and p.is_file())
        elif path.exists():
            found.append(given)
        else:
            errors.append(f"{given}: no such file or directory")
    return found, errors


class _Cycle(Exception):
    def __init__(self, node: yaml.Node) -> None:
        self.node = node


def _positions(node: yaml.Node, path: Path, into: dict[Path, tuple[int, int]],
               above: frozenset[int] = frozenset()) -> None:
    if id(node) in above:  # `a: &x [*x]`: an object containing itself (a manifest never does)
        raise _Cycle(node)
    above = above | {id(node)}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                into[(*path, key.value)] = (key.start_mark.line + 1, key.start_mark.column + 1)
                _positions(value, (*path, key.value), into, above)
    elif isinstance(node, yaml.SequenceNode):
        for index, value in enumerate(node.value):
            into[(*path, index)] = (value.start_mark.line + 1, value.start_mark.column + 1)
            _positions(value, (*path, index), into, above)


def located(source: str, exc: yaml.YAMLError) -> str:
    """A YAML error as `FILE:LINE:COL: problem (context at LINE:COL)`, as compilers print them."""
    if not isinstance(exc, yaml.MarkedYAMLError):
        return f"{source}: {exc}"
    mark = exc.problem_mark or exc.context_mark
    problem = exc.problem or exc.context or "invalid YAML"
    where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
    if exc.problem and exc.context and exc.context_mark and exc.context_mark is not mark:
        problem += f" ({exc.context} at {exc.context_mark.line + 1}:{exc.context_mark.column + 1})"
    return f"{where}: {problem}"


def parse(text: str, source: str) -> list[Document]:
    """The documents of one file; raises InputError naming the line and column of a YAML error."""
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
        documents = []
        for node in nodes:
            if node is None:
                continue
            positions: dict[Path, tuple[int, int]] = {}
            _positions(node, (), positions)
            body = yaml.SafeLoader("").construct_document(node)
            documents.append((node.start_mark.line + 1, body, positions))
    except yaml.YAMLError as exc:
        raise InputError(located(source, exc)) from None
    except _Cycle as exc:
        mark = exc.node.start_mark
        raise InputError(f"{source}:{mark.line + 1}:{mark.column + 1}: a recursive alias "
                         "(an object that contains itself)") from None
    except RecursionError:
        raise InputError(f"{source}: nested too deeply") from None
    out = []
    for line, body, positions in documents:
        if not isinstance(body, dict):
            raise InputError(f"{source}:{line}: expected an object (apiVersion, kind, metadata...), "
                             f"got {type(body).__name__}")
        if body.get("kind") == "List" and isinstance(body.get("items"), list):  # as kubectl get -o yaml prints
            for index, item in enumerate(body["items"]):
                if not isinstance(item, dict):
                    raise InputError(f"{source}:{positions.get(('items', index), (line, 0))[0]}: "
                                     "expected an object in items")
                sub = {p[2:]: at for p, at in positions.items() if p[:2] == ("items", index)}
                out.append(Document(item, source, sub.get((), (line, 0))[0], sub))
        else:
            out.append(Document(body, source, line, positions))
    return out


def read(paths: Sequence[str], recursive: bool = False, stdin: IO[str] | None = None) -> list[Document]:
    """Every document of every input, in order; InputError lists every input mistake at once."""
    names, errors = files(paths, recursive)
    documents: list[Document] = []
    for name in names:
        source = "<stdin>" if name == "-" else name
        try:
            text = (stdin or sys.stdin).read() if name == "-" else pathlib.Path(name).read_text(encoding="utf-8")
            documents.extend(parse(text, source))
        except InputError as exc:
            errors.append(str(exc))
        except UnicodeDecodeError:
            errors.append(f"{source}: not UTF-8 text")
        except OSError as exc:
            errors.append(f"{source}: {exc.strerror or exc}")
    if errors:
        raise InputError("\n".join(errors))
    return documents


def _field(path: Path) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def unknown_fields(value: Any, schema: Mapping[str, Any], path: Path = ()) -> Iterator[Path]:
    """Paths in `value` that the structural `schema` does not know: the API server prunes them
    without a word (kubectl's field validation only warns), so a typo would vanish."""
    if not isinstance(schema, Mapping) or schema.get("x-kubernetes-preserve-unknown-fields"):
        return
    if isinstance(value, dict):
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            if properties is not None and key in properties:
                if path or key != "metadata":  # ObjectMeta is the server's, not the CRD's
                    yield from unknown_fields(item, properties[key], (*path, key))
            elif isinstance(extra, Mapping):
                yield from unknown_fields(item, extra, (*path, key))
            elif properties is not None and extra is not True:
                yield (*path, key)
    elif isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(value):
            yield from unknown_fields(item, schema["items"], (*path, index))


def sites(documents: Iterable[Document], schema: Mapping[str, Any] | None = None
          ) -> tuple[list[Document], list[str]]:
    """The HttpdSites among `documents` (the last of two with one namespace and name, as
    `kubectl apply` leaves it), and warnings: a likely wrong kind, a wrong apiVersion, unknown
    fields (against the CRD's `schema`), duplicates. Other kinds are left out without a word."""
    found: dict[tuple[str, str], Document] = {}
    warnings: list[str] = []
    expected = f"{GROUP}/{VERSION}"
    for doc in documents:
        kind, api_version = doc.body.get("kind"), doc.body.get("apiVersion")
        if not kind or not api_version:
            missing = " and ".join(k for k, v in (("apiVersion", api_version), ("kind", kind)) if not v)
            warnings.append(f"{doc.where()}: no {missing}: skipped")
            continue
        if kind != KIND:
            if str(kind).lower() in (KIND.lower(), "httpdsites", "hs") or str(api_version).startswith(f"{GROUP}/"):
                warnings.append(f"{doc.where(('kind',))}: kind {kind!r} is not served by {GROUP} "
                                f"(did you mean {KIND}?): skipped")
            continue
        meta = doc.body.get("metadata")
        if meta is not None and not isinstance(meta, dict):
            warnings.append(f"{doc.where(('metadata',))}: {KIND}: metadata must be an object: skipped")
            continue
        wrong = [k for k in ("name", "namespace") if not isinstance((meta or {}).get(k, ""), str)]
        if wrong:
            warnings.append(f"{doc.where(('metadata', wrong[0]))}: {KIND}: metadata.{wrong[0]} must be a "
                            "string: skipped")
            continue
        name = _label(doc)
        if api_version != expected:
            warnings.append(f"{doc.where(('apiVersion',))}: {name}: apiVersion {api_version!r} is not served "
                            f"(the API server would refuse it; use {expected})")
        if schema is not None:
            for path in unknown_fields(doc.body, schema):
                warnings.append(f"{doc.where(path)}: {name}: unknown field \"{_field(path)}\" "
                                "(the API server would drop it)")
        if doc.key in found:
            warnings.append(f"{doc.where()}: {name}: defined again (first at {found[doc.key].where()}); "
                            "the last one wins, as with kubectl apply")
            del found[doc.key]  # keep the order of the last definition
        found[doc.key] = doc
    return list(found.values()), warnings


def _label(doc: Document) -> str:
    namespace, name = doc.key
    return f"{KIND} {namespace + '/' if namespace else ''}{name or '(no name)'}"
