"""Unit tests of the zero-write decision (kubellm.k8s.diff)."""

from __future__ import annotations

import copy
from typing import Any

from kubellm.k8s.diff import HASH_ANNOTATION, apply_reason, desired_hash, with_hash

DESIRED: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "chat", "namespace": "team", "labels": {"a": "1"}},
    "spec": {
        "replicas": 1,
        "template": {"spec": {"containers": [
            {"name": "server", "image": "vllm", "ports": [{"containerPort": 8000}],
             "resources": {"limits": {"nvidia.com/gpu": 1}},
             "env": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}]}]}},
    },
}


def live_of(desired: dict[str, Any]) -> dict[str, Any]:
    """What the apiserver returns: defaults added, quantities as strings, env reordered."""
    live = copy.deepcopy(with_hash(desired))
    live["metadata"].update(uid="u", resourceVersion="7", managedFields=[{"manager": "kubellm"}])
    live["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = "1"
    container = live["spec"]["template"]["spec"]["containers"][0]
    container["ports"][0]["protocol"] = "TCP"
    container["resources"]["limits"]["nvidia.com/gpu"] = "1"
    container["env"].reverse()
    container["terminationMessagePath"] = "/dev/termination-log"
    live["spec"]["strategy"] = {"type": "RollingUpdate"}
    live["status"] = {"readyReplicas": 1}
    return live


def test_hash_is_stable_and_ignores_its_own_annotation() -> None:
    assert desired_hash(DESIRED) == desired_hash(copy.deepcopy(DESIRED))
    assert desired_hash(with_hash(DESIRED)) == desired_hash(DESIRED)
    changed = copy.deepcopy(DESIRED)
    changed["spec"]["replicas"] = 2
    assert desired_hash(changed) != desired_hash(DESIRED)


def test_defaults_and_normalisation_are_not_drift() -> None:
    assert apply_reason(with_hash(DESIRED), live_of(DESIRED)) is None


def test_missing_changed_and_drifted() -> None:
    desired = with_hash(DESIRED)
    assert apply_reason(desired, None) == "missing"
    other = copy.deepcopy(DESIRED)
    other["spec"]["replicas"] = 3
    assert apply_reason(with_hash(other), live_of(DESIRED)) == "changed"
    edited = live_of(DESIRED)
    edited["spec"]["replicas"] = 5
    assert apply_reason(desired, edited) == "drifted:.spec.replicas"
    edited = live_of(DESIRED)
    edited["spec"]["template"]["spec"]["containers"][0]["image"] = "evil"
    assert apply_reason(desired, edited) == "drifted:.spec.template.spec.containers[server].image"
    edited = live_of(DESIRED)
    del edited["metadata"]["annotations"][HASH_ANNOTATION]
    assert apply_reason(desired, edited) == "changed"


def test_removed_desired_field_is_caught_by_the_hash() -> None:
    fewer = copy.deepcopy(DESIRED)
    fewer["spec"]["template"]["spec"]["containers"][0]["env"].pop()
    # the live object still contains everything `fewer` wants: only the hash tells
    assert apply_reason(with_hash(fewer), live_of(DESIRED)) == "changed"


def test_extra_items_added_by_others_are_not_drift() -> None:
    live = live_of(DESIRED)
    live["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "x"})
    live["metadata"]["labels"]["team"] = "b"
    assert apply_reason(with_hash(DESIRED), live) is None
