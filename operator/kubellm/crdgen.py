"""Generate the kubellm CustomResourceDefinitions from the pydantic models (pure).

``kubellm.api.v1alpha1`` is the single source of truth; this module turns the JSON Schemas that
pydantic emits into Kubernetes *structural* OpenAPI v3 schemas:

- ``$ref`` inlined (the apiserver accepts no references);
- every node typed; ``X | None`` collapsed to ``X`` (optional fields are simply omitted);
  ``int | "auto"`` / ``int | str`` become ``x-kubernetes-int-or-string`` (the CEL rule in
  ``CEL_RULES`` then limits the string side); ``dict[str, Any]`` becomes an object with
  ``x-kubernetes-preserve-unknown-fields``;
- JSON-Schema-2020 ``exclusiveMinimum: 0.1`` rewritten to OpenAPI 3.0's ``minimum`` +
  ``exclusiveMinimum: true``; ``title`` / ``additionalProperties: false`` / ``const`` dropped
  (pruning already drops unknown fields; a ``const`` becomes a one-value ``enum``);
- descriptions, defaults, enums, required lists, list types and CEL ``x-kubernetes-validations``.

Hand-written rather than a library because the conversion is small, kubellm-specific (CEL,
int-or-string, printer columns) and must be deterministic byte for byte (the committed ``crds/``
are compared with it in tests). Structural rules: Kubernetes docs "Specifying a structural schema"
(kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from kubellm.api.v1alpha1 import (
    CEL_RULES,
    GROUP,
    VERSION,
    LicensePolicySpec,
    LLMDeploymentSpec,
    LLMDeploymentStatus,
)

Schema = dict[str, Any]

CRD_FILES = {
    "LLMDeployment": f"{GROUP}_llmdeployments.yaml",
    "LicensePolicy": f"{GROUP}_licensepolicies.yaml",
}

# Keys copied as they are from a pydantic schema node into the structural schema.
_KEEP = (
    "description",
    "type",
    "format",
    "default",
    "enum",
    "pattern",
    "minLength",
    "maxLength",
    "minimum",
    "maximum",
    "minItems",
    "maxItems",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "x-kubernetes-preserve-unknown-fields",
)


class SchemaError(ValueError):
    """The pydantic schema uses a construct this generator cannot express structurally."""


def _resolve(node: Schema, defs: Schema) -> Schema:
    """Inline a ``$ref``; sibling keys (a field's description, default) win over the target's."""
    if "$ref" not in node:
        return node
    target: Schema = copy.deepcopy(defs[node["$ref"].rsplit("/", 1)[-1]])
    for key, value in node.items():
        if key != "$ref":
            target[key] = value
    return target


def _is_null(node: Schema) -> bool:
    return node.get("type") == "null"


def _convert(node: Schema, defs: Schema, path: str) -> Schema:
    node = _resolve(node, defs)
    out: Schema = {}
    variants = node.get("anyOf") or node.get("oneOf")
    if variants is not None:
        branches = [_resolve(v, defs) for v in variants if not _is_null(v)]
        types = sorted({b.get("type", "?") for b in branches})
        if len(branches) == 1:
            merged = {k: v for k, v in node.items() if k not in ("anyOf", "oneOf")}
            merged.update({k: v for k, v in branches[0].items() if k not in merged})
            return _convert(merged, defs, path)
        if types == ["integer", "string"]:
            for key in ("description", "default", "maxLength", "pattern"):
                if node.get(key) is not None:
                    out[key] = node[key]
            out["x-kubernetes-int-or-string"] = True
            return _finish(out, path)
        raise SchemaError(f"{path}: cannot express a union of {types} structurally")

    for key in _KEEP:
        if key in node and not (key == "default" and node[key] is None):
            out[key] = copy.deepcopy(node[key])
    if "const" in node:
        out["enum"] = [node["const"]]
    if isinstance(node.get("exclusiveMinimum"), int | float):
        out["minimum"] = node["exclusiveMinimum"]
        out["exclusiveMinimum"] = True
    if isinstance(node.get("exclusiveMaximum"), int | float):
        out["maximum"] = node["exclusiveMaximum"]
        out["exclusiveMaximum"] = True
    if node.get("type") == "object" or "properties" in node:
        out["type"] = "object"
        props = node.get("properties")
        if props:
            out["properties"] = {
                name: _convert(sub, defs, f"{path}.{name}") for name, sub in props.items()
            }
            if node.get("required"):
                out["required"] = list(node["required"])
        else:
            extra = node.get("additionalProperties")
            if isinstance(extra, dict) and extra:
                out["additionalProperties"] = _convert(extra, defs, f"{path}[*]")
            else:  # dict[str, Any]: free-form, e.g. core/v1 objects embedded in the spec
                out["x-kubernetes-preserve-unknown-fields"] = True
    elif node.get("type") == "array":
        out["items"] = _convert(node.get("items", {}), defs, f"{path}[*]")
    if "type" not in out and not out.get("x-kubernetes-preserve-unknown-fields"):
        raise SchemaError(f"{path}: schema node has no type")
    return _finish(out, path)


def _tidy(text: str) -> str:
    """One line per paragraph (docstrings wrap at 100 columns), reST ``code`` as `code`."""
    paragraphs = [" ".join(p.split()) for p in text.replace("``", "`").split("\n\n")]
    return "\n".join(p for p in paragraphs if p)


def _finish(out: Schema, path: str) -> Schema:
    if "description" in out:
        out["description"] = _tidy(out["description"])
    rules = CEL_RULES.get(path)
    if rules:
        out["x-kubernetes-validations"] = [dict(rule) for rule in rules]
    return out


def structural_schema(model: type[BaseModel], path: str) -> Schema:
    """The structural OpenAPI v3 schema of ``model``; ``path`` keys CEL_RULES (``Kind.spec``)."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    defs = raw.pop("$defs", {})
    return _convert(raw, defs, path)


def _meta_schema() -> Schema:
    return {"type": "object"}


def _crd(
    *,
    kind: str,
    plural: str,
    scope: str,
    short_names: list[str],
    description: str,
    spec: Schema,
    status: Schema | None,
    columns: list[Schema],
    scale: bool,
) -> dict[str, Any]:
    properties: Schema = {
        "apiVersion": {"type": "string", "description": "Always kubellm.io/v1alpha1."},
        "kind": {"type": "string", "description": f"Always {kind}."},
        "metadata": _meta_schema(),
        "spec": spec,
    }
    if status is not None:
        properties["status"] = status
    root: Schema = {
        "type": "object",
        "description": description,
        "properties": properties,
    }
    root_rules = CEL_RULES.get(kind)
    if root_rules:
        root["x-kubernetes-validations"] = [dict(r) for r in root_rules]
    if "default" not in spec:
        root["required"] = ["spec"]
    subresources: Schema = {}
    if status is not None:
        subresources["status"] = {}
    if scale:
        subresources["scale"] = {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        }
    version: Schema = {
        "name": VERSION,
        "served": True,
        "storage": True,
        "schema": {"openAPIV3Schema": root},
    }
    if subresources:
        version["subresources"] = subresources
    version["additionalPrinterColumns"] = columns
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{GROUP}",
            "labels": {"app.kubernetes.io/part-of": "kubellm"},
        },
        "spec": {
            "group": GROUP,
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short_names,
                "categories": ["kubellm"],
            },
            "scope": scope,
            "versions": [version],
        },
    }


_AGE: Schema = {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


def llmdeployment_crd() -> dict[str, Any]:
    """The CRD of ``LLMDeployment`` (namespaced, shortName llmd, status + scale subresources)."""
    spec = structural_schema(LLMDeploymentSpec, "LLMDeployment.spec")
    status = structural_schema(LLMDeploymentStatus, "LLMDeployment.status")
    return _crd(
        kind="LLMDeployment",
        plural="llmdeployments",
        scope="Namespaced",
        short_names=["llmd"],
        description=(
            "An open LLM served on Kubernetes: kubellm checks its licence against the "
            "LicensePolicy, sizes the GPUs, caches the weights once and rolls out vLLM or TGI."
        ),
        spec=spec,
        status=status,
        columns=[
            {"name": "Model", "type": "string", "jsonPath": ".spec.model.repo"},
            {"name": "Runtime", "type": "string", "jsonPath": ".status.runtime"},
            {"name": "GPUs", "type": "integer", "jsonPath": ".status.gpus"},
            {"name": "Ready", "type": "string", "jsonPath": ".status.ready"},
            {"name": "Reason", "type": "string", "jsonPath": ".status.reason"},
            _AGE,
        ],
        scale=True,
    )


def licensepolicy_crd() -> dict[str, Any]:
    """The CRD of ``LicensePolicy`` (cluster-scoped, no status)."""
    spec = structural_schema(LicensePolicySpec, "LicensePolicy.spec")
    spec["default"] = {}
    return _crd(
        kind="LicensePolicy",
        plural="licensepolicies",
        scope="Cluster",
        short_names=["llmpolicy"],
        description=(
            "Which model licences this organisation may run, for the namespaces it covers "
            "(licence classes, commercial use, user thresholds, jurisdiction, exceptions)."
        ),
        spec=spec,
        status=None,
        columns=[
            {"name": "Mode", "type": "string", "jsonPath": ".spec.mode"},
            {"name": "Classes", "type": "string", "jsonPath": ".spec.allowedClasses"},
            _AGE,
        ],
        scale=False,
    )


def all_crds() -> dict[str, dict[str, Any]]:
    """File name (under ``crds/``) -> CRD, in a fixed order."""
    return {
        CRD_FILES["LLMDeployment"]: llmdeployment_crd(),
        CRD_FILES["LicensePolicy"]: licensepolicy_crd(),
    }


def to_yaml(crd: dict[str, Any]) -> str:
    """Deterministic YAML (insertion order kept, which is itself deterministic)."""
    return yaml.safe_dump(crd, sort_keys=False, default_flow_style=False, width=100)


def render_all() -> str:
    """Every CRD as one multi-document YAML stream."""
    return "---\n".join(to_yaml(crd) for crd in all_crds().values())


def write_all(directory: Path) -> list[Path]:
    """Write each CRD to ``directory``/<file>; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, crd in all_crds().items():
        path = directory / name
        path.write_text(to_yaml(crd), encoding="utf-8")
        written.append(path)
    return written
