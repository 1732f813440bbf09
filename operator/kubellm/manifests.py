"""Read kubellm manifests (LLMDeployment, LicensePolicy) from YAML files or stdin (pure).

Used by ``kubellm plan``; validation goes through the pydantic API models, and every failure
becomes a ``SpecError`` naming the file, the document (1-based; ``item`` inside a ``List``), the
field path and the fix, never a traceback::

    f.yaml document 2 (LLMDeployment web): spec.gpu.count: ...
    f.yaml document 1 item 3: metadata: must be a mapping ...
    f.yaml document 3 line 14 column 5: not valid YAML: ...

The YAML is read as kubectl reads it: a key given twice in one mapping is an error (kubectl:
"key already set in map"), an unquoted date stays a string (JSON has no dates), documents of
other API groups are ignored, and a document of the kubellm.io group must be a kind it serves.
``status`` is ignored, as the apiserver ignores it on create (status subresource); object names
follow the apiserver's rules (DNS-1123).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from kubellm.api.v1alpha1 import API_VERSION, GROUP, LicensePolicy, LLMDeployment
from kubellm.errors import SpecError

KINDS = ("LLMDeployment", "LicensePolicy")
_EXPLAIN = {"LLMDeployment": "kubectl explain llmd.spec", "LicensePolicy":
            "kubectl explain licensepolicy.spec"}
# metadata.name of a custom resource: a DNS-1123 subdomain; namespace: a DNS-1123 label
# (k8s.io/apimachinery/pkg/util/validation IsDNS1123Subdomain / IsDNS1123Label).
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


@dataclass
class Manifests:
    deployments: list[LLMDeployment] = field(default_factory=list)
    policies: list[LicensePolicy] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # "Kind/name" of documents not for kubellm
    documents: int = 0  # documents read (List items count one each)


def field_path(loc: Iterable[int | str]) -> str:
    """pydantic's ``loc`` tuple -> ``spec.gpu.count`` / ``spec.tolerations[0]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in {"int", "str", "literal['auto']", "function-after[_len(), int]"}:
            continue  # union branch names, not fields
        elif part == "[key]":
            out += "(key)"
        elif _PLAIN_KEY.match(part):
            out += ("." if out else "") + part
        else:  # an unknown key such as ":cache" or "app.kubernetes.io/name": quoted
            out += f"[{json.dumps(part, ensure_ascii=False)}]"
    return out


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def validate(model: type[BaseModel], doc: dict[str, Any], where: str) -> Any:
    """Validate ``doc`` as ``model``; the first error becomes a SpecError with the field path."""
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        first = errors[0]
        path = field_path(first["loc"])
        msg = first["msg"].removeprefix("Value error, ")
        extra = f" (+{len(errors) - 1} more)" if len(errors) > 1 else ""
        kind = str(model.model_fields["kind"].default)
        raise SpecError(
            f"{where}: {path or '<document>'}",
            msg + extra,
            f"see `{_EXPLAIN.get(kind, 'kubectl explain')}` for the schema",
        ) from None


# ---------------------------------------------------------------- YAML, as kubectl reads it


MAX_DEPTH = 100  # nesting levels of one document: a Kubernetes object needs a dozen


class _TooDeep(yaml.YAMLError):
    def __init__(self, mark: yaml.Mark) -> None:
        super().__init__(f"nested more than {MAX_DEPTH} levels deep")
        self.problem = str(self)
        self.problem_mark = mark


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and deep nesting, and marks every construction
    error (so a document never costs Python's recursion limit)."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _TooDeep(self.peek_event().start_mark)  # type: ignore[no-untyped-call]
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep=deep)
        except yaml.YAMLError:
            raise
        except (ValueError, TypeError, AttributeError, OverflowError) as exc:
            value = node.value if isinstance(node, yaml.ScalarNode) else node.tag
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read {value!r} as {node.tag.rsplit(':', 1)[-1]} ({exc})",
                node.start_mark,
            ) from None

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                key = key_node.value
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} is given twice in one mapping",
                        key_node.start_mark,
                    )
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


# JSON has no dates, and kubectl sends YAML as JSON: an unquoted 2027-01-31 stays a string.
def _timestamp_as_text(loader: _Loader, node: yaml.Node) -> str:
    return str(loader.construct_scalar(node))  # type: ignore[arg-type]


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_text)


def _documents(text: str, source: str) -> Iterator[tuple[int, Any]]:
    """(1-based index, document) of a multi-document YAML text; a SpecError names the
    document, line and column of the first problem."""
    index = 0
    try:
        loader = _Loader(text)
    except yaml.YAMLError as exc:  # the reader refuses control characters up front
        raise _yaml_error(exc, text, source, None) from None
    try:
        while True:
            try:
                if not loader.check_data():  # type: ignore[no-untyped-call]
                    return
                doc = loader.get_data()
            except yaml.YAMLError as exc:
                raise _yaml_error(exc, text, source, index + 1) from None
            except RecursionError:
                mark = loader.get_mark()
                raise SpecError(
                    f"{source} document {index + 1} line {mark.line + 1} column "
                    f"{mark.column + 1}",
                    "not valid YAML: nested too deeply",
                ) from None
            index += 1
            yield index, doc
    finally:
        loader.dispose()


def _yaml_error(exc: yaml.YAMLError, text: str, source: str, index: int | None) -> SpecError:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    if mark is not None:
        line, column = mark.line + 1, mark.column + 1
    else:  # ReaderError: a position in the text
        pos = int(getattr(exc, "position", 0) or 0)
        line = text.count("\n", 0, pos) + 1
        column = pos - (text.rfind("\n", 0, pos) + 1) + 1
    if index is None:
        index = _document_at(text, line)
    problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or str(exc)
    context = getattr(exc, "context", None)
    if context and problem != context:
        problem = f"{context}: {problem}"
    return SpecError(
        f"{source} document {index} line {line} column {column}",
        f"not valid YAML: {' '.join(str(problem).split())}",
    )


def _document_at(text: str, line: int) -> int:
    """The document a line belongs to, counting ``---`` separators (used before parsing)."""
    index, content = 1, False
    for raw in text.splitlines()[: line - 1]:
        if re.match(r"^---(\s|$)", raw):
            index += 1 if content else 0
            content = True
        elif raw.strip() and not raw.strip().startswith("#"):
            content = True
    return index


# ---------------------------------------------------------------- documents -> objects


def parse_documents(text: str, source: str) -> Manifests:
    """Parse a multi-document YAML text into validated kubellm objects."""
    out = Manifests()
    for index, doc in _documents(text, source):
        if doc is None:
            continue
        where = f"{source} document {index}"
        if isinstance(doc, dict) and doc.get("kind") == "List" and "items" in doc:
            items = doc["items"]
            if items is None:
                continue
            if not isinstance(items, list):
                raise SpecError(f"{where}: items", f"must be a list of objects, not "
                                f"{_describe(items)}")
            for number, item in enumerate(items, start=1):
                if item is not None:
                    _add(out, item, f"{where} item {number}")
        else:
            _add(out, doc, where)
    return out


def _name_of(meta: Any) -> str:
    name = meta.get("name") if isinstance(meta, dict) else None
    return name if isinstance(name, str) and name else "?"


def _check_metadata(doc: dict[str, Any], where: str, kind: str) -> None:
    meta = doc.get("metadata")
    if not isinstance(meta, dict):
        raise SpecError(
            f"{where}: metadata",
            "is required" if meta is None else f"must be a mapping, not {_describe(meta)}",
            "write metadata: {name: my-model, namespace: team-a}",
        )
    name = meta.get("name")
    if name is None or name == "":
        raise SpecError(f"{where}: metadata.name", "is required")
    if not isinstance(name, str):
        raise SpecError(f"{where}: metadata.name", f"must be a string, not {_describe(name)}")
    if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        raise SpecError(
            f"{where}: metadata.name",
            f"{name[:60]!r} is not a valid {kind} name (the apiserver refuses it)",
            "lower-case letters, digits, '-' and '.', starting and ending with a letter or "
            "digit, at most 253 characters",
        )
    namespace = meta.get("namespace")
    if namespace is not None and (
        not isinstance(namespace, str) or len(namespace) > 63 or not _DNS_LABEL.match(namespace)
    ):
        raise SpecError(
            f"{where}: metadata.namespace",
            f"{namespace!r} is not a valid namespace name",
            "lower-case letters, digits and '-', starting and ending with a letter or digit, "
            "at most 63 characters",
        )


def _add(out: Manifests, doc: Any, where: str) -> None:
    out.documents += 1
    if not isinstance(doc, dict):
        raise SpecError(
            f"{where}: <document>",
            f"expected a Kubernetes object (a mapping with apiVersion and kind), not "
            f"{_describe(doc)}",
        )
    kind, api_version = doc.get("kind"), doc.get("apiVersion")
    for key, value in (("apiVersion", api_version), ("kind", kind)):
        if not isinstance(value, str) or not value:
            raise SpecError(
                f"{where}: {key}",
                "is required" if value is None else f"must be a string, not {_describe(value)}",
                "every Kubernetes object has apiVersion and kind",
            )
    assert isinstance(kind, str) and isinstance(api_version, str)
    ours = api_version.split("/", 1)[0] == GROUP
    if kind in KINDS and api_version != API_VERSION:
        raise SpecError(
            f"{where}: apiVersion",
            f"{api_version!r} is not served",
            f"use apiVersion: {API_VERSION}",
        )
    if ours and kind not in KINDS:
        raise SpecError(
            f"{where}: kind",
            f"{kind!r} is not a kind of {GROUP}",
            f"use one of {', '.join(KINDS)}",
        )
    if kind not in KINDS:
        out.ignored.append(f"{kind}/{_name_of(doc.get('metadata'))}")
        return
    _check_metadata(doc, where, kind)
    body = {k: v for k, v in doc.items() if k != "status"}  # the apiserver ignores it on create
    label = f"{where} ({kind} {_name_of(doc['metadata'])})"
    if kind == "LLMDeployment":
        out.deployments.append(validate(LLMDeployment, body, label))
    else:
        out.policies.append(validate(LicensePolicy, body, label))
