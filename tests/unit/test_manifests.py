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
    with pytest.raises(SpecError, match=r"f document 1 line 2 column \d+: not valid YAML"):
        parse_documents("a: b\n  c: [\n", "f")


def test_scalar_document_is_refused() -> None:
    with pytest.raises(SpecError, match="expected a Kubernetes object"):
        parse_documents("just a string\n", "f")


# Regressions found by tests/unit/test_fuzz_plan.py: each crashed `kubellm plan` with a traceback
# (the exception named), now a SpecError naming the document and the field.
HEAD = "apiVersion: kubellm.io/v1alpha1\nkind: LLMDeployment\n"


@pytest.mark.parametrize(
    ("text", "where", "words"),
    [
        # AttributeError in _add: metadata.get on an int / a list
        (HEAD + "metadata: 5\nspec: {model: {repo: a/b}}\n", "document 1: metadata",
         "must be a mapping, not int 5"),
        ("apiVersion: kubellm.io/v1alpha1\nkind: LicensePolicy\nmetadata: [1]\n",
         "document 1: metadata", "not list"),
        # OverflowError in parse_parameters: float('1e999') * 1e9 is inf
        (HEAD + "metadata: {name: a}\nspec: {model: {repo: a/b, parameters: 1e999B}}\n",
         "spec.model.parameters", "is not a number"),
        (HEAD + "metadata: {name: a}\nspec: {model: {repo: a/b, parameters: " + "9" * 30
         + "}}\n", "spec.model.parameters", "at most"),
        # ValueError from PyYAML's timestamp constructor (day out of range): a string, as in kubectl
        ("apiVersion: kubellm.io/v1alpha1\nkind: LicensePolicy\nmetadata: {name: p}\n"
         "spec: {exceptions: [{model: a, reason: b, expires: 2027-02-30}]}\n",
         "spec.exceptions[0].expires", "not a calendar date"),
        # RecursionError in the YAML composer
        ("a: " + "[" * 600 + "]" * 600 + "\n", "document 1 line 1 column 103",
         "nested more than 100 levels deep"),
        # TypeError in the renderer's spec hash (json.dumps sort_keys over int and str keys)
        (HEAD + "metadata: {name: a}\nspec: {model: {repo: a/b}, env: [{name: A, value: "
         "{0: x, b: y}}]}\n", "spec.env", "env[0].value must be a string"),
        (HEAD + "metadata: {name: a}\nspec: {model: {repo: a/b}, tolerations: [{effect: Now}]}\n",
         "spec.tolerations", "tolerations[0].effect"),
        (HEAD + "metadata: {name: a}\nspec: {model: {repo: a/b}, resources: {limits: {cpu: "
         "lots}}}\n", "spec.resources", "not a quantity"),
        ("apiVersion: v1\nkind: List\nitems: 5\n", "document 1: items", "must be a list"),
        ("apiVersion: v1\nkind: List\nitems: [5]\n", "document 1 item 1: <document>", "int 5"),
        (HEAD + "metadata: {name: a}\nspec: {}\nspec: {}\n", "document 1 line 5 column 1",
         "key 'spec' is given twice"),
        (HEAD + "metadata: {name: Not_A_Name}\nspec: {model: {repo: a/b}}\n",
         "metadata.name", "not a valid LLMDeployment name"),
        ("apiVersion: kubellm.io/v1alpha1\nkind: Model\nmetadata: {name: a}\n", "kind",
         "not a kind of kubellm.io"),
        ("apiVersion: kubellm.io/v1alpha1\n---\nkind: [1]\n", "document 1: kind", "is required"),
    ],
)
def test_fuzzed_crashes_are_spec_errors(text: str, where: str, words: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_documents(text, "f.yaml")
    message = str(err.value)
    assert message.startswith("f.yaml document "), message
    assert where in message and words in message, message


def test_status_is_ignored_as_the_apiserver_does() -> None:
    text = HEAD + "metadata: {name: a}\nspec: {model: {repo: a/b}}\nstatus: {conditions: 5}\n"
    assert parse_documents(text, "f").deployments[0].status is None


def test_broken_yaml_in_a_later_document_names_it() -> None:
    text = HEAD + "metadata: {name: a}\nspec: {model: {repo: a/b}}\n---\na: [\n"
    with pytest.raises(SpecError, match=r"f document 2 line \d+ column \d+: not valid YAML"):
        parse_documents(text, "f")
