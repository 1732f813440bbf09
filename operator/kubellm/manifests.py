"""Read kubellm manifests (LLMDeployment, LicensePolicy) from YAML files or stdin (pure).

Used by ``kubellm plan``; validation goes through the pydantic API models, and a validation
failure becomes a ``SpecError`` naming the document, the field path and the fix, never a
traceback.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from kubellm.api.v1alpha1 import API_VERSION, LicensePolicy, LLMDeployment
from kubellm.errors import SpecError


@dataclass
class Manifests:
    deployments: list[LLMDeployment] = field(default_factory=list)
    policies: list[LicensePolicy] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)  # "Kind/name" of documents not for kubellm


def field_path(loc: Iterable[int | str]) -> str:
    """pydantic's ``loc`` tuple -> ``spec.gpu.count`` / ``spec.tolerations[0]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in {"int", "str", "literal['auto']", "function-after[_len(), int]"}:
            continue  # union branch names, not fields
        else:
            out += ("." if out else "") + str(part)
    return out


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
        raise SpecError(
            f"{where}: {path or '<document>'}",
            msg + extra,
            "see `kubectl explain llmd.spec` for the schema",
        ) from None


def parse_documents(text: str, source: str) -> Manifests:
    """Parse a multi-document YAML text into validated kubellm objects."""
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise SpecError(source + line, f"not valid YAML: {getattr(exc, 'problem', exc)}") from None
    out = Manifests()
    for index, doc in enumerate(docs):
        if doc is None:
            continue
        if (
            isinstance(doc, dict)
            and doc.get("kind") == "List"
            and isinstance(doc.get("items"), list)
        ):
            sub = [d for d in doc["items"] if d is not None]
        else:
            sub = [doc]
        for item in sub:
            _add(out, item, f"{source} document {index + 1}")
    return out


def _add(out: Manifests, doc: Any, where: str) -> None:
    if not isinstance(doc, dict):
        raise SpecError(where, "expected a Kubernetes object (a mapping with apiVersion and kind)")
    kind = doc.get("kind")
    api_version = doc.get("apiVersion")
    name = (doc.get("metadata") or {}).get("name", "?")
    if kind in ("LLMDeployment", "LicensePolicy") and api_version != API_VERSION:
        raise SpecError(
            f"{where}: apiVersion",
            f"{api_version!r} is not served",
            f"use apiVersion: {API_VERSION}",
        )
    if kind == "LLMDeployment":
        if not name or name == "?":
            raise SpecError(f"{where}: metadata.name", "is required")
        out.deployments.append(validate(LLMDeployment, doc, f"{where} (LLMDeployment {name})"))
    elif kind == "LicensePolicy":
        out.policies.append(validate(LicensePolicy, doc, f"{where} (LicensePolicy {name})"))
    else:
        out.ignored.append(f"{kind}/{name}")
