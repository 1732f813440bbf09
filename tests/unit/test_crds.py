"""The generated CRDs: fresh on disk, structural, with the CEL rules, enums and subresources."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubellm import crdgen
from kubellm.api.v1alpha1 import CEL_RULES

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "crds"
REGENERATE = "regenerate with: .venv/bin/python -m kubellm crds --write crds"


@pytest.mark.parametrize("name", sorted(crdgen.all_crds()))
def test_committed_crds_are_fresh(name: str) -> None:
    path = CRD_DIR / name
    assert path.exists(), f"{path} is missing; {REGENERATE}"
    expected = crdgen.to_yaml(crdgen.all_crds()[name])
    assert path.read_text(encoding="utf-8") == expected, (
        f"{path} is stale (the pydantic models changed); {REGENERATE}"
    )


def test_output_is_deterministic() -> None:
    assert crdgen.render_all() == crdgen.render_all()


def _nodes(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    yield path, schema
    for name, sub in schema.get("properties", {}).items():
        yield from _nodes(sub, f"{path}.{name}")
    if isinstance(schema.get("items"), dict):
        yield from _nodes(schema["items"], f"{path}[*]")
    if isinstance(schema.get("additionalProperties"), dict):
        yield from _nodes(schema["additionalProperties"], f"{path}{{*}}")


def _schema(crd: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


ALL = sorted(crdgen.all_crds().items())


@pytest.mark.parametrize(("name", "crd"), ALL)
def test_structural_schema(name: str, crd: dict[str, Any]) -> None:
    """Rules of "Specifying a structural schema" (kubernetes.io, CRD docs)."""
    problems = []
    for path, node in _nodes(_schema(crd)):
        int_or_string = node.get("x-kubernetes-int-or-string") is True
        preserve = node.get("x-kubernetes-preserve-unknown-fields") is True
        if "type" not in node and not (int_or_string or preserve):
            problems.append(f"{path}: no type")
        for banned in ("$ref", "oneOf", "allOf", "not", "title", "const", "nullable"):
            if banned in node:
                problems.append(f"{path}: {banned}")
        if "anyOf" in node:
            problems.append(f"{path}: anyOf at property level")
        if "properties" in node and "additionalProperties" in node:
            problems.append(f"{path}: properties and additionalProperties together")
        if node.get("additionalProperties") is False:
            problems.append(f"{path}: additionalProperties false")
        if node.get("default", 0) is None:
            problems.append(f"{path}: null default")
        if node.get("type") == "array" and "items" not in node:
            problems.append(f"{path}: array without items")
        if node.get("exclusiveMinimum", True) is not True:
            problems.append(f"{path}: JSON-Schema-2020 exclusiveMinimum (OpenAPI 3.0 wants bool)")
        for key in node.get("required", []):
            if key not in node.get("properties", {}):
                problems.append(f"{path}: required {key} not a property")
        strings = node.get("type") == "string"
        if strings and not all(isinstance(v, str) for v in node.get("enum", [])):
            problems.append(f"{path}: non-string enum value")
    metadata = _schema(crd)["properties"]["metadata"]
    assert metadata == {"type": "object"}, "metadata may only be typed object"
    assert not problems, "\n".join(problems)


def _node(crd: dict[str, Any], dotted: str) -> dict[str, Any]:
    node = _schema(crd)
    for part in dotted.split("."):
        items = part.endswith("[*]")  # a list's items (CEL_RULES keys them name[*])
        node = node["properties"][part.removesuffix("[*]")]
        if items:
            node = node["items"]
    return node


LLMD = crdgen.llmdeployment_crd()
POLICY = crdgen.licensepolicy_crd()


@pytest.mark.parametrize(
    ("crd", "path", "values"),
    [
        (LLMD, "spec.quantization", {"auto", "none", "fp8", "awq", "gptq", "gguf"}),
        (LLMD, "spec.runtime", {"auto", "vllm", "tgi"}),
        (LLMD, "spec.context.kvCacheDtype", {"auto", "fp8"}),
        (LLMD, "spec.cache.accessMode", {"ReadWriteOnce", "ReadWriteMany"}),
        (LLMD, "status.license.class", {"permissive", "research-only", "unknown"}),
        (LLMD, "status.license.decision", {"Allowed", "AllowedWithWarnings", "Denied"}),
        (POLICY, "spec.mode", {"Enforce", "Warn"}),
        (POLICY, "spec.unknownLicense", {"Deny", "Warn"}),
    ],
)
def test_enums(crd: dict[str, Any], path: str, values: set[str]) -> None:
    assert values <= set(_node(crd, path)["enum"])


@pytest.mark.parametrize(
    ("crd", "path", "key"),
    [
        (crd, path.split(".", 1)[1], key)
        for key, rules in CEL_RULES.items()
        for crd, kind in ((LLMD, "LLMDeployment"), (POLICY, "LicensePolicy"))
        if key.startswith(kind + ".")
        for path in [key]
    ],
)
def test_cel_rules_present(crd: dict[str, Any], path: str, key: str) -> None:
    node = _node(crd, path)
    assert node["x-kubernetes-validations"] == CEL_RULES[key]
    for rule in node["x-kubernetes-validations"]:
        assert rule["message"], f"{key}: every rule needs a message users can act on"


def test_every_cel_rule_lands_in_a_crd() -> None:
    emitted = [
        rule
        for doc in yaml.safe_load_all(crdgen.render_all())
        for _, node in _nodes(_schema(doc))
        for rule in node.get("x-kubernetes-validations", [])
    ]
    expected = [rule for rules in CEL_RULES.values() for rule in rules]
    assert sorted(map(str, emitted)) == sorted(map(str, expected))


@pytest.mark.parametrize(
    ("path", "rule_part"),
    [
        ("spec.context.maxModelLen", "self == 'auto'"),
        ("spec.gpu.count", "self == 'auto'"),
    ],
)
def test_int_or_string_accepts_only_auto(path: str, rule_part: str) -> None:
    node = _node(LLMD, path)
    assert node["x-kubernetes-int-or-string"] is True
    assert "type" not in node
    assert any(rule_part in r["rule"] for r in node["x-kubernetes-validations"])


def test_bounds_and_defaults() -> None:
    util = _node(LLMD, "spec.gpu.memoryUtilization")
    assert util == {**util, "minimum": 0.1, "exclusiveMinimum": True, "maximum": 0.99}
    assert _node(LLMD, "spec.replicas")["minimum"] == 0
    assert _node(LLMD, "spec.gpu")["default"] == {}
    # the revision's default depends on spec.model.source (main / master): filled by the API's
    # validator, not by the apiserver
    assert "default" not in _node(LLMD, "spec.model.revision")
    assert _node(LLMD, "spec.model.source")["default"] == "huggingface"
    assert _node(LLMD, "spec.model.source")["enum"] == ["huggingface", "modelscope"]
    classes = _node(POLICY, "spec.allowedClasses")["default"]
    assert classes == ["permissive", "restrictive-community"]
    assert _schema(LLMD)["required"] == ["spec"]
    assert _node(LLMD, "spec.model")["required"] == ["repo"]


def test_conditions_are_a_list_map_keyed_by_type() -> None:
    conditions = _node(LLMD, "status.conditions")
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert "type" in conditions["items"]["required"]


def test_free_form_fields_preserve_unknown() -> None:
    assert _node(LLMD, "spec.resources")["x-kubernetes-preserve-unknown-fields"] is True
    assert _node(LLMD, "spec.env")["items"]["x-kubernetes-preserve-unknown-fields"] is True
    assert _node(LLMD, "spec.nodeSelector")["additionalProperties"] == {"type": "string"}


def test_llmdeployment_names_subresources_and_columns() -> None:
    spec = LLMD["spec"]
    assert spec["scope"] == "Namespaced"
    assert spec["names"]["shortNames"] == ["llmd"]
    assert "kubellm" in spec["names"]["categories"]
    version = spec["versions"][0]
    assert version["subresources"]["status"] == {}
    assert version["subresources"]["scale"] == {
        "specReplicasPath": ".spec.replicas",
        "statusReplicasPath": ".status.replicas",
        "labelSelectorPath": ".status.selector",
    }
    columns = {c["name"]: c["jsonPath"] for c in version["additionalPrinterColumns"]}
    assert columns == {
        "Model": ".spec.model.repo",
        "Runtime": ".status.runtime",
        "GPUs": ".status.gpus",
        "Ready": ".status.ready",
        "Reason": ".status.reason",
        "Age": ".metadata.creationTimestamp",
    }
    # Every printer column points at a declared field.
    for column in version["additionalPrinterColumns"][:-1]:
        _node(LLMD, column["jsonPath"].lstrip("."))


def test_licensepolicy_is_cluster_scoped() -> None:
    spec = POLICY["spec"]
    assert spec["scope"] == "Cluster"
    version = spec["versions"][0]
    assert [c["name"] for c in version["additionalPrinterColumns"]] == ["Mode", "Classes", "Age"]
    assert "scale" not in version.get("subresources", {})


def test_kubectl_explain_text_present() -> None:
    assert "GPU" in _node(LLMD, "spec.gpu")["description"]


def test_cli_prints_and_writes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from kubellm.cli import main

    assert main(["crds"]) == 0
    printed = capsys.readouterr().out
    docs = list(yaml.safe_load_all(printed))
    assert [d["spec"]["names"]["kind"] for d in docs] == ["LLMDeployment", "LicensePolicy"]
    assert main(["crds", "--write", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(crdgen.all_crds())
