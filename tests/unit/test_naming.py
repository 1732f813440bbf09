"""kubellm.naming: DNS-safe, stable, collision-resistant names and the label sets."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubellm import naming

DNS1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

# DNS-1123 subdomains: what an LLMDeployment name can be.
subdomain = st.from_regex(
    r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?){0,5}", fullmatch=True
)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("llama", "llama"),  # safe names are kept as they are
        ("llama-3-8b", "llama-3-8b"),
        ("a" * 63, "a" * 63),
        ("llama.3", "llama-3-" + naming._hash("llama.3")),  # dots: sanitised + hash
        ("7b-chat", "llm-7b-chat-" + naming._hash("7b-chat")),  # must start with a letter
        ("a" * 64, "a" * 54 + "-" + naming._hash("a" * 64)),  # too long: truncated + hash
    ],
)
def test_serving_name_table(name: str, expected: str) -> None:
    assert naming.serving_name(name) == expected


@given(subdomain)
def test_serving_name_is_a_dns1035_label(name: str) -> None:
    out = naming.serving_name(name)
    assert len(out) <= 63
    assert DNS1035.match(out), out
    assert naming.serving_name(name) == out  # stable


@given(subdomain, subdomain)
def test_serving_names_do_not_collide(a: str, b: str) -> None:
    if a != b:
        assert naming.serving_name(a) != naming.serving_name(b)


@given(st.text(min_size=0, max_size=300))
def test_label_value_always_valid(text: str) -> None:
    out = naming.label_value(text)
    assert len(out) <= 63 and LABEL_VALUE.match(out), out


@given(subdomain)
def test_labels_are_valid_and_sorted(name: str) -> None:
    labels = naming.labels(name, naming.COMPONENT_SERVER)
    assert list(labels) == sorted(labels)
    assert all(len(v) <= 63 and LABEL_VALUE.match(v) for v in labels.values())
    assert naming.selector_labels(name).items() <= labels.items()


def test_labels_content() -> None:
    assert naming.labels("chat", "server") == {
        "app.kubernetes.io/component": "server",
        "app.kubernetes.io/instance": "chat",
        "app.kubernetes.io/managed-by": "kubellm",
        "app.kubernetes.io/name": "kubellm",
        "kubellm.io/deployment": "chat",
    }
    assert naming.selector_string("chat") == (
        "app.kubernetes.io/component=server,app.kubernetes.io/instance=chat,"
        "app.kubernetes.io/name=kubellm"
    )


def test_cache_key_is_a_content_address() -> None:
    sha = "0" * 40
    key = naming.cache_key("meta-llama/Llama-3.1-8B", sha, ["b.json", "a.safetensors"])
    assert key == naming.cache_key("meta-llama/Llama-3.1-8B", sha, ["a.safetensors", "b.json"])
    assert key == naming.cache_key(
        "meta-llama/Llama-3.1-8B", sha, ["a.safetensors", "b.json", "a.safetensors"]
    )
    assert key != naming.cache_key("meta-llama/Llama-3.1-8B", "1" * 40, ["a.safetensors", "b.json"])
    assert key != naming.cache_key("meta-llama/Llama-3.1-8B", sha, ["a.safetensors"])
    assert key != naming.cache_key("meta-llama/Llama-3.1-70B", sha, ["a.safetensors", "b.json"])
    assert re.fullmatch(r"[0-9a-f]{16}", key)
    # Pinned: changing the hashing would orphan every existing cache PVC.
    assert naming.cache_key("org/m", "abc", ["x"]) == "51e6b62163f194f3"


@pytest.mark.parametrize(
    ("repo", "pvc", "job"),
    [
        (
            "Qwen/Qwen2.5-7B-Instruct",
            "kubellm-cache-qwen2-5-7b-instruct-{k}",
            "kubellm-dl-qwen2-5-7b-instruct-{k}",
        ),
        ("x/" + "Very-Long-Model-Name" * 5, None, None),
        ("org/___", "kubellm-cache-{k}", "kubellm-dl-{k}"),
    ],
)
def test_cache_object_names(repo: str, pvc: str | None, job: str | None) -> None:
    key = naming.cache_key(repo, "s", ["f"])
    for name, expected in (
        (naming.cache_pvc_name(key, repo), pvc),
        (naming.cache_job_name(key, repo), job),
    ):
        assert len(name) <= 63 and DNS1035.match(name), name
        assert name.endswith(key)
        if expected:
            assert name == expected.format(k=key)


@given(st.text(min_size=1, max_size=120))
def test_cache_names_always_valid(repo: str) -> None:
    key = naming.cache_key(repo, "sha", ["*.json"])
    for name in (naming.cache_pvc_name(key, repo), naming.cache_job_name(key, repo)):
        assert len(name) <= 63 and DNS1035.match(name), name
    assert LABEL_VALUE.match(naming.cache_labels(key)["kubellm.io/cache-key"])


def test_owner_reference_and_with_owner() -> None:
    owner = naming.owner_reference("kubellm.io/v1alpha1", "LLMDeployment", "chat", "uid-1")
    assert owner == {
        "apiVersion": "kubellm.io/v1alpha1",
        "kind": "LLMDeployment",
        "name": "chat",
        "uid": "uid-1",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    obj = {"kind": "PersistentVolumeClaim", "metadata": {"name": "p"}}
    shared = naming.owner_reference(
        "kubellm.io/v1alpha1", "LLMDeployment", "b", "uid-2", controller=False
    )
    once = naming.with_owner(naming.with_owner(obj, owner), owner)
    twice = naming.with_owner(once, shared)
    assert [r["uid"] for r in twice["metadata"]["ownerReferences"]] == ["uid-1", "uid-2"]
    assert "ownerReferences" not in obj["metadata"]  # the input is not modified
