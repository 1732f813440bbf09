"""kubellm.manifests: YAML -> validated objects, and errors that name the field."""

from __future__ import annotations

import pytest

from kubellm.errors import SpecError
from kubellm.manifests import parse_documents

GOOD = """
apiVersion: kubellm.io/v1alpha1
kind: LLMDeployment
metadata: {name: a, namespace: team}
spec:
  model: {repo: Qwen/Qwen2.5-7B-Instruct}
---
apiVersion: kubellm.io/v1alpha1
kind: LicensePolicy
metadata: {name: p}
spec: {mode: Warn}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: other}
"""


def test_parses_deployments_policies_and_ignores_others() -> None:
    m = parse_documents(GOOD, "f.yaml")
    assert [d.metadata.name for d in m.deployments] == ["a"]
    assert m.deployments[0].metadata.namespace == "team"
    assert m.deployments[0].spec.gpu.count == "auto"
    assert [p.spec.mode for p in m.policies] == ["Warn"]
    assert m.ignored == ["ConfigMap/other"]


def test_list_kind_is_unpacked() -> None:
    text = """
apiVersion: v1
kind: List
items:
- apiVersion: kubellm.io/v1alpha1
  kind: LLMDeployment
  metadata: {name: x}
  spec: {model: {repo: a/b}}
"""
    assert [d.metadata.name for d in parse_documents(text, "l").deployments] == ["x"]


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        ("{model: {repo: a/b}, gpu: {count: 0}}", "spec.gpu.count", "at least 1"),
        ("{model: {repo: a/b}, gpu: {count: many}}", "spec.gpu.count", ""),
        ("{model: {repo: a/b}, runtime: llamacpp}", "spec.runtime", "vllm"),
        ("{model: {repo: a/b}, replicas: -1}", "spec.replicas", "greater than or equal"),
        ("{model: {repo: 'not a repo!'}}", "spec.model.repo", "pattern"),
        ("{model: {repo: a/b, parameters: lots}}", "spec.model.parameters", "70.6B"),
        ("{model: {repo: a/b}, context: {maxModelLen: 2}}", "spec.context.maxModelLen", "16"),
        ("{model: {repo: a/b}, quantization: gguf, runtime: tgi}", "spec", "tgi"),
        ("{model: {repo: a/b}, gpuz: {}}", "spec.gpuz", "Extra"),
        ("{}", "spec.model", "required"),
    ],
)
def test_invalid_spec_names_the_field(spec: str, field: str, words: str) -> None:
    text = f"""
apiVersion: kubellm.io/v1alpha1
kind: LLMDeployment
metadata: {{name: bad}}
spec: {spec}
"""
    with pytest.raises(SpecError) as err:
        parse_documents(text, "bad.yaml")
    message = str(err.value)
    assert f": {field}:" in message, message
    assert "bad.yaml document 1 (LLMDeployment bad)" in message
    assert words in message


def test_wrong_api_version_says_which_to_use() -> None:
    text = "apiVersion: kubellm.io/v1\nkind: LLMDeployment\nmetadata: {name: a}\nspec: {}\n"
    with pytest.raises(SpecError, match=r"use apiVersion: kubellm\.io/v1alpha1"):
        parse_documents(text, "f")


def test_broken_yaml_names_the_line() -> None:
    with pytest.raises(SpecError, match=r"f line 2: not valid YAML"):
        parse_documents("a: b\n  c: [\n", "f")


def test_scalar_document_is_refused() -> None:
    with pytest.raises(SpecError, match="expected a Kubernetes object"):
        parse_documents("just a string\n", "f")
