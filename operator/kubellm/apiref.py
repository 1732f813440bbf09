"""The API reference in Markdown, generated from the CRDs' OpenAPI schemas (pure).

``render(crd)`` turns one CustomResourceDefinition (as ``kubellm.crdgen`` builds it and
``crds/*.yaml`` holds it) into a Markdown page: names, scope and subresources, printer columns,
one table row per schema field (path, type, required, default, validation, description) for
``spec`` and ``status``, and the CEL rules with their messages. ``write_all`` writes one page per
CRD into a directory (the repository keeps them in ``docs/reference/``; a unit test fails when
they are stale). Output is deterministic: schema order as generated, no timestamps.

Hand-written rather than a generic OpenAPI-to-Markdown tool: the schemas are small, the output
must be byte-stable for the staleness test, and the Kubernetes extensions (int-or-string,
preserve-unknown-fields, list-map keys, CEL rules) need their own wording.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Schema = dict[str, Any]

DOC_FILES = {"LLMDeployment": "llmdeployment.md", "LicensePolicy": "licensepolicy.md"}
REGENERATE = "kubellm crds --docs docs/reference"


@dataclass(frozen=True)
class Field:
    """One row of a field table."""

    path: str
    node: Schema
    required: bool


def fields(node: Schema, path: str, required: bool = False) -> Iterator[Field]:
    """``node`` and every field below it, depth first in schema order. Array items are written
    ``path[]``, map values ``path{}``."""
    yield Field(path, node, required)
    needed = set(node.get("required", []))
    for name, sub in node.get("properties", {}).items():
        yield from fields(sub, f"{path}.{name}", name in needed)
    items = node.get("items")
    if isinstance(items, dict) and ("properties" in items or "items" in items):
        yield from fields(items, f"{path}[]")
    values = node.get("additionalProperties")
    if isinstance(values, dict) and "properties" in values:
        yield from fields(values, f"{path}{{}}")


def type_of(node: Schema) -> str:
    """The type as a reader says it: ``string``, ``[]string``, ``map[string]string``,
    ``int-or-string``, ``object (free-form)``."""
    if node.get("x-kubernetes-int-or-string"):
        return "int-or-string"
    kind = str(node.get("type", "any"))
    if kind == "array":
        items = node.get("items") or {}
        return "[]" + type_of(items)
    if kind == "object":
        values = node.get("additionalProperties")
        if isinstance(values, dict):
            return "map[string]" + type_of(values)
        if node.get("x-kubernetes-preserve-unknown-fields") and "properties" not in node:
            return "object (free-form)"
    return kind


def _value(value: Any) -> str:
    if isinstance(value, str):
        return value if value else '""'
    return json.dumps(value, sort_keys=True)


def _code(text: str, *, cell: bool = True) -> str:
    """A Markdown code span; in a table ``cell`` its pipes are escaped (GFM tables)."""
    if cell:
        text = text.replace("|", "\\|")
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def constraints(node: Schema) -> list[str]:
    """The validation a node carries, one phrase each, in a fixed order."""
    out: list[str] = []
    if "enum" in node:
        out.append("one of " + ", ".join(_code(_value(v)) for v in node["enum"]))
    if "pattern" in node:
        out.append("pattern " + _code(node["pattern"]))
    if "minLength" in node or "maxLength" in node:
        out.append(_bounds("length", node.get("minLength"), node.get("maxLength")))
    if "minimum" in node or "maximum" in node:
        low = node.get("minimum")
        text = _bounds("value", low, node.get("maximum"))
        if node.get("exclusiveMinimum") and low is not None:
            text = text.replace(f"{low} ≤", f"{low} <", 1)
        out.append(text)
    if "minItems" in node or "maxItems" in node:
        out.append(_bounds("items", node.get("minItems"), node.get("maxItems")))
    if node.get("x-kubernetes-list-type") == "map":
        keys = ", ".join(node.get("x-kubernetes-list-map-keys", []))
        out.append(f"list map keyed by {keys}")
    for rule in node.get("x-kubernetes-validations", []):
        out.append("CEL: " + str(rule["message"]))
    return out


def _bounds(what: str, low: Any, high: Any) -> str:
    if low is not None and high is not None:
        return f"{low} ≤ {what} ≤ {high}"
    if low is not None:
        return f"{what} ≥ {low}"
    return f"{what} ≤ {high}"


def field_table(root: Schema, path: str, required: bool = False) -> list[str]:
    """A Markdown table of ``root`` (at ``path``) and every field below it."""
    lines = [
        "| Field | Type | Required | Default | Validation | Description |",
        "|---|---|---|---|---|---|",
    ]
    for f in fields(root, path, required):
        default = _code(_value(f.node["default"])) if "default" in f.node else ""
        lines.append(
            f"| {_code(f.path)} | {_cell(type_of(f.node))} | {'yes' if f.required else ''} "
            f"| {default} | {'; '.join(constraints(f.node))} "
            f"| {_cell(str(f.node.get('description', '')))} |"
        )
    return lines


def rules(found: Iterator[Field] | list[Field]) -> list[str]:
    """The CEL rules of ``found`` fields: where, the expression, the message users see."""
    out: list[str] = []
    for f in found:
        for rule in f.node.get("x-kubernetes-validations", []):
            where = f.path + str(rule.get("fieldPath", ""))
            out += [
                f"- on {_code(f.path)}" + (f", reported at {_code(where)}" if where != f.path
                                           else ""),
                f"  - rule: {_code(str(rule['rule']), cell=False)}",
                f"  - message: {rule['message']}",
            ]
    return out


def render(crd: dict[str, Any], source: str) -> str:
    """The Markdown reference page of one CRD; ``source`` names the file it was generated from."""
    spec = crd["spec"]
    names = spec["names"]
    version = spec["versions"][0]
    root: Schema = version["schema"]["openAPIV3Schema"]
    kind = names["kind"]
    props = root.get("properties", {})
    lines = [
        f"# {kind} ({spec['group']}/{version['name']})",
        "",
        f"<!-- Generated from {source} by `{REGENERATE}`. Do not edit by hand. -->",
        "",
        _cell(str(root.get("description", ""))),
        "",
        "| | |",
        "|---|---|",
        f"| API version | `{spec['group']}/{version['name']}` |",
        f"| Kind | `{kind}` (list: `{names['listKind']}`) |",
        f"| Plural / singular | `{names['plural']}` / `{names['singular']}` |",
        f"| Short names | {', '.join(_code(n) for n in names.get('shortNames', []))} |",
        f"| Categories | {', '.join(_code(c) for c in names.get('categories', []))} |",
        f"| Scope | {spec['scope']} |",
    ]
    subresources = version.get("subresources", {})
    sub_text = ", ".join(sorted(subresources)) or "none"
    lines.append(f"| Subresources | {sub_text} |")
    scale = subresources.get("scale")
    if scale:
        lines.append(
            f"| Scale | replicas {_code(scale['specReplicasPath'])}, status "
            f"{_code(scale['statusReplicasPath'])}, selector {_code(scale['labelSelectorPath'])} |"
        )
    lines += ["", "## Printer columns (`kubectl get`)", "",
              "| Column | Type | JSONPath |", "|---|---|---|"]
    for column in version.get("additionalPrinterColumns", []):
        lines.append(f"| {column['name']} | {column['type']} | {_code(column['jsonPath'])} |")
    for part, title in (("spec", "Spec"), ("status", "Status")):
        if part not in props:
            continue
        lines += ["", f"## {title}", ""]
        if part == "status":
            lines += ["Written by the operator only (status subresource).", ""]
        lines += field_table(props[part], part, part in root.get("required", []))
    found = rules([Field(kind, root, True)])
    for part in ("spec", "status"):
        if part in props:
            found += rules(fields(props[part], part))
    if found:
        lines += ["", "## Validation rules (CEL, checked by the API server)", "",
                  "`kubellm plan` runs the same checks offline.", "", *found]
    return "\n".join(lines) + "\n"


def render_all(crds: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Page file name -> Markdown, for ``crds`` (CRD file name -> CRD, as ``crdgen.all_crds``)."""
    out: dict[str, str] = {}
    for file_name, crd in crds.items():
        kind = crd["spec"]["names"]["kind"]
        out[DOC_FILES[kind]] = render(crd, f"crds/{file_name}")
    return out


def write_all(crds: dict[str, dict[str, Any]], directory: Path) -> list[Path]:
    """Write each page into ``directory``; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_all(crds).items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
