"""The API models: pydantic validators and the CRD's CEL rules refuse the same objects.

CEL rules are evaluated offline with cel-python against the node they sit on, so a rule that
drifts from its pydantic twin fails here, not at ``kubectl apply``.
"""

from __future__ import annotations

import copy
from typing import Any

import celpy
import pytest
from celpy.adapter import json_to_cel
from pydantic import ValidationError

from kubellm import crdgen
from kubellm.api.v1alpha1 import (
    CEL_RULES,
    LicensePolicySpec,
    LLMDeploymentSpec,
    ModelSpec,
    parse_parameters,
)

CEL = celpy.Environment()


def _node(obj: dict[str, Any], path: str) -> Any:
    """The value at a CEL_RULES key's path (``Kind.spec.a.b`` -> obj['a']['b']), or a sentinel."""
    value: Any = obj
    for part in path.split(".")[2:]:
        if not isinstance(value, dict) or part not in value:
            return _MISSING
        value = value[part]
    return value


_MISSING = object()


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """Structural defaulting as the apiserver does it before running CEL rules."""
    if isinstance(value, dict) and "properties" in schema:
        for name, sub in schema["properties"].items():
            if name not in value and "default" in sub:
                value[name] = copy.deepcopy(sub["default"])
            if name in value:
                value[name] = apply_defaults(sub, value[name])
    elif isinstance(value, list) and "items" in schema:
        value = [apply_defaults(schema["items"], item) for item in value]
    return value


SPEC_SCHEMAS = {
    "LLMDeployment": crdgen.structural_schema(LLMDeploymentSpec, "LLMDeployment.spec"),
    "LicensePolicy": crdgen.structural_schema(LicensePolicySpec, "LicensePolicy.spec"),
}


def cel_errors(kind: str, spec: dict[str, Any]) -> list[str]:
    """Messages of the CEL rules (of ``kind``) that ``spec``, once defaulted, violates."""
    spec = apply_defaults(SPEC_SCHEMAS[kind], copy.deepcopy(spec))
    failed = []
    for key, rules in CEL_RULES.items():
        if not key.startswith(f"{kind}.spec"):
            continue
        value = _node(spec, key)
        if value is _MISSING:
            continue
        for rule in rules:
            program = CEL.program(CEL.compile(rule["rule"]))
            if not program.evaluate({"self": json_to_cel(value)}):
                failed.append(rule["message"])
    return failed


MODEL = {"repo": "Qwen/Qwen3-8B"}


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ({"model": MODEL}, None),
        ({"model": MODEL, "quantization": "gguf", "runtime": "tgi"}, "runtime tgi cannot serve"),
        ({"model": MODEL, "quantization": "gguf", "runtime": "vllm"}, None),
        ({"model": MODEL, "quantization": "awq", "runtime": "tgi"}, None),
        ({"model": {**MODEL, "file": "m-Q4_K_M.gguf"}, "quantization": "awq"}, "model.file"),
        ({"model": {**MODEL, "file": "m-Q4_K_M.gguf"}}, None),
        ({"model": {**MODEL, "parameters": "8B"}}, None),
        ({"model": {**MODEL, "parameters": "70.6B"}}, None),
        ({"model": {**MODEL, "parameters": 7_000_000_000}}, None),
        ({"model": {**MODEL, "parameters": "eight"}}, "parameters"),
        ({"model": {**MODEL, "parameters": 0}}, "parameters"),
        ({"model": MODEL, "context": {"maxModelLen": "auto"}}, None),
        ({"model": MODEL, "context": {"maxModelLen": 32768}}, None),
        ({"model": MODEL, "context": {"maxModelLen": "big"}}, "maxModelLen"),
        ({"model": MODEL, "context": {"maxModelLen": 8}}, "maxModelLen"),
        ({"model": MODEL, "context": {"maxModelLen": 10_485_761}}, "maxModelLen"),
        ({"model": MODEL, "gpu": {"count": "auto"}}, None),
        ({"model": MODEL, "gpu": {"count": 4}}, None),
        ({"model": MODEL, "gpu": {"count": 0}}, "gpu.count"),
        ({"model": MODEL, "gpu": {"count": "two"}}, "gpu.count"),
        # spec.args: flags that select the model/revision/source/code or that kubellm sets
        ({"model": MODEL, "args": ["--enforce-eager", "--max-num-seqs", "8"]}, None),
        ({"model": MODEL, "args": ["--model-impl", "transformers"]}, None),  # not --model
        ({"model": MODEL, "args": ["--model", "other/repo"]}, "not permitted"),
        ({"model": MODEL, "args": ["--model=other/repo"]}, "not permitted"),
        ({"model": MODEL, "args": ["--model-id", "other/repo"]}, "not permitted"),
        ({"model": MODEL, "args": ["--trust_remote_code"]}, "not permitted"),
        ({"model": MODEL, "args": ["--speculative-config.model", "d"]}, "not permitted"),
        ({"model": MODEL, "args": ["--port=9000"]}, "not permitted"),
    ],
)
def test_pydantic_and_cel_agree(spec: dict[str, Any], error: str | None) -> None:
    cel = cel_errors("LLMDeployment", spec)
    try:
        LLMDeploymentSpec.model_validate(spec)
        pydantic_error = None
    except ValidationError as exc:
        pydantic_error = str(exc)
    if error is None:
        assert pydantic_error is None and cel == []
    else:
        assert pydantic_error is not None and error in pydantic_error
        assert cel and any(error in message for message in cel), cel


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ({}, None),
        ({"allowedLicenses": ["gemma"], "deniedLicenses": ["llama4"]}, None),
        ({"allowedLicenses": ["gemma"], "deniedLicenses": ["gemma"]}, "both"),
    ],
)
def test_policy_pydantic_and_cel_agree(spec: dict[str, Any], error: str | None) -> None:
    cel = cel_errors("LicensePolicy", spec)
    try:
        LicensePolicySpec.model_validate(spec)
        ok = True
    except ValidationError:
        ok = False
    assert ok is (error is None)
    assert bool(cel) is (error is not None)


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"model": MODEL, "quantization": "int3"}, "quantization"),
        ({"model": MODEL, "runtime": "llama.cpp"}, "runtime"),
        ({"model": MODEL, "replicas": -1}, "replicas"),
        ({"model": {"repo": "not a repo"}}, "model.repo"),
        ({"model": MODEL, "gpu": {"memoryUtilization": 0.1}}, "gpu.memoryUtilization"),
        ({"model": MODEL, "gpu": {"memoryUtilization": 1.0}}, "gpu.memoryUtilization"),
        ({"model": MODEL, "cache": {"size": "lots"}}, "cache.size"),
        ({"model": MODEL, "unknownField": 1}, "unknownField"),
        ({}, "model"),
    ],
)
def test_schema_errors_name_the_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        LLMDeploymentSpec.model_validate(spec)
    locs = [".".join(str(p) for p in err["loc"]) for err in info.value.errors()]
    assert any(loc.startswith(field) for loc in locs), locs


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"jurisdiction": "Europe"}, "jurisdiction"),
        ({"mode": "Audit"}, "mode"),
        ({"unknownLicense": "Allow"}, "unknownLicense"),
        ({"monthlyActiveUsers": -1}, "monthlyActiveUsers"),
        ({"allowedClasses": ["open"]}, "allowedClasses"),
        ({"exceptions": [{"model": "a/*", "reason": "r", "expires": "2026-02-30"}]}, "exceptions"),
        ({"exceptions": [{"model": "a/*"}]}, "exceptions"),
    ],
)
def test_policy_errors_name_the_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as info:
        LicensePolicySpec.model_validate(spec)
    locs = [".".join(str(p) for p in err["loc"]) for err in info.value.errors()]
    assert any(loc.startswith(field) for loc in locs), locs


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("8B", 8_000_000_000),
        ("70.6B", 70_600_000_000),
        ("560M", 560_000_000),
        ("1.5t", 1_500_000_000_000),
        (" 7b ", 7_000_000_000),
        ("7000000000", 7_000_000_000),
        (123, 123),
    ],
)
def test_parse_parameters(text: int | str, value: int) -> None:
    assert parse_parameters(text) == value


@pytest.mark.parametrize("text", ["", "B", "eight", "-3B", 0, -5])
def test_parse_parameters_refuses(text: int | str) -> None:
    with pytest.raises(ValueError):
        parse_parameters(text)


def test_defaults_and_wire_form() -> None:
    spec = LLMDeploymentSpec.model_validate({"model": MODEL})
    wire = spec.dump()
    assert wire["context"] == {"maxModelLen": "auto", "concurrency": 1, "kvCacheDtype": "auto"}
    assert wire["gpu"]["count"] == "auto"
    assert ModelSpec(repo="a/b").revision == "main"
    policy = LicensePolicySpec()
    assert policy.allowed_classes == ["permissive", "restrictive-community"]
    assert policy.unknown_license == "Deny" and policy.commercial_use is True


def test_exception_expiry_accepts_yaml_dates() -> None:
    import datetime

    spec = LicensePolicySpec.model_validate(
        {"exceptions": [{"model": "a/*", "reason": "r", "expires": datetime.date(2027, 1, 31)}]}
    )
    assert spec.exceptions[0].expires == "2027-01-31"
