"""Which child watch events wake the owner (kubellm.reconcile.childview): two versions of a child
with equal views give the owner's reconcile equal answers, so skipping the event loses nothing;
the echo of the operator's own write and controller bookkeeping are skipped, readiness is not."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kubellm import naming
from kubellm.evaluation.hooks import finished
from kubellm.reconcile.childview import child_view, is_news
from kubellm.reconcile.evaluate import rolled_out
from kubellm.reconcile.status import available, job_state, selector_string

SMALL = st.sampled_from([None, 0, 1, 2])
STAMP = st.sampled_from(["2026-12-04T00:00:00Z", "2026-12-04T00:00:09Z"])


def deployment(rolled_out: bool = False) -> dict[str, Any]:
    labels = naming.selector_labels("a")
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "a", "namespace": "t", "generation": 1, "resourceVersion": "5",
                         "labels": dict(labels), "annotations": {}},
            "spec": {"replicas": 1, "selector": {"matchLabels": dict(labels)},
                     "template": {"metadata": {"labels": dict(labels)}}},
            "status": {"replicas": 1, "readyReplicas": 1, "updatedReplicas": 1,
                       "observedGeneration": 1} if rolled_out else {}}


def job() -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "dl", "namespace": "t", "generation": 1, "resourceVersion": "7",
                         "labels": {naming.LABEL_MANAGED_BY: naming.MANAGED_BY}},
            "spec": {"backoffLimit": 4}, "status": {}}


# (path, values): any of these may change between two versions of the object
DEPLOYMENT_FIELDS: list[tuple[tuple[str, ...], Any]] = [
    (("status", "replicas"), SMALL), (("status", "readyReplicas"), SMALL),
    (("status", "updatedReplicas"), SMALL), (("status", "availableReplicas"), SMALL),
    (("status", "unavailableReplicas"), SMALL), (("status", "observedGeneration"), SMALL),
    (("status", "conditions"), st.sampled_from([[], [
        {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]])),
    (("metadata", "resourceVersion"), st.sampled_from(["5", "6", "9"])),
    (("metadata", "managedFields"), st.sampled_from([[], [{"manager": "kube-controller"}]])),
]
JOB_FIELDS: list[tuple[tuple[str, ...], Any]] = [
    (("status", "active"), SMALL), (("status", "succeeded"), SMALL),
    (("status", "failed"), SMALL), (("status", "ready"), SMALL),
    (("status", "startTime"), STAMP), (("status", "terminating"), SMALL),
    (("status", "uncountedTerminatedPods"), st.sampled_from([{}, {"succeeded": ["u1"]}])),
    (("status", "conditions"), st.sampled_from([
        [], [{"type": "Complete", "status": "True", "lastTransitionTime": "x"}],
        [{"type": "SuccessCriteriaMet", "status": "True"}],
        [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "m"}],
        [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "n"}],
        [{"type": "FailureTarget", "status": "True", "reason": "PodFailurePolicy"}],
        [{"type": "Failed", "status": "False"}]])),
    (("metadata", "resourceVersion"), st.sampled_from(["7", "8"])),
]


def mutate(draw: st.DrawFn, obj: dict[str, Any], fields: list[tuple[tuple[str, ...], Any]],
           which: int) -> None:
    """Change one thing of ``obj``: field ``which`` of ``fields``, or past them a condition's
    message or reason, the spec (the apiserver bumps the generation) or a label."""
    extra = which - len(fields)
    if extra < 0:
        path, values = fields[which]
        node = obj
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = draw(values)
    elif extra in (0, 1):
        conditions = (obj.get("status") or {}).get("conditions") or []
        if conditions:
            conditions[0]["message" if extra == 0 else "reason"] = draw(
                st.sampled_from([None, "m", "n", "PodFailurePolicy"]))
    elif extra == 2:
        obj["spec"]["replicas" if obj["kind"] == "Deployment" else "backoffLimit"] = draw(
            st.sampled_from([0, 1, 3]))
        obj["metadata"]["generation"] += 1
    else:
        obj["metadata"]["labels"] = {**obj["metadata"]["labels"], "edited": draw(st.text(
            "ab", max_size=1))}


@st.composite
def versions(draw: st.DrawFn, base: dict[str, Any],
             fields: list[tuple[tuple[str, ...], Any]], changes: int) -> dict[str, Any]:
    obj = copy.deepcopy(base)
    for _ in range(changes):
        mutate(draw, obj, fields, draw(st.integers(0, len(fields) + 3)))
    return obj


def owner_reads(obj: dict[str, Any]) -> Any:
    """Everything the owner's reconcile computes from this child."""
    if obj["kind"] == "Deployment":
        st_ = obj.get("status") or {}
        return (available(obj, []), rolled_out(obj), selector_string(obj),
                st_.get("replicas") or 0, st_.get("readyReplicas") or 0,
                obj["metadata"].get("labels"), obj["spec"])
    return (job_state(obj), finished(obj), obj["metadata"].get("labels"), obj["spec"])


@settings(max_examples=600, deadline=None)
@given(st.data())
def test_equal_views_mean_equal_reconcile_inputs(data: st.DataObject) -> None:
    base, fields = data.draw(st.sampled_from([(deployment(), DEPLOYMENT_FIELDS),
                                              (deployment(rolled_out=True), DEPLOYMENT_FIELDS),
                                              (job(), JOB_FIELDS)]))
    one = data.draw(versions(base, fields, 6))  # some state of the child
    two = data.draw(versions(one, fields, 1))  # its next version: one thing changed
    kind = one["kind"]
    if child_view(kind, one) == child_view(kind, two):
        assert owner_reads(one) == owner_reads(two)
        assert not is_news(kind, one, two)
    else:
        assert is_news(kind, one, two)


def test_echo_and_bookkeeping_are_not_news_readiness_is() -> None:
    dep = deployment()
    echo = {**dep, "metadata": {**dep["metadata"], "resourceVersion": "6",
                                "managedFields": [{"manager": "kubellm"}]}}
    assert not is_news("Deployment", dep, echo)
    progressing = copy.deepcopy(dep)
    progressing["status"] = {"conditions": [{"type": "Progressing", "status": "True"}],
                             "unavailableReplicas": 1}
    assert not is_news("Deployment", dep, progressing)
    ready = copy.deepcopy(progressing)
    ready["status"]["readyReplicas"] = 1
    assert is_news("Deployment", progressing, ready)
    started = job()
    started["status"] = {"startTime": "2026-12-04T00:00:00Z", "ready": 0}
    assert not is_news("Job", job(), started)
    active = copy.deepcopy(started)
    active["status"]["active"] = 1  # its pod started: status says the same ("downloading")
    assert not is_news("Job", started, active)
    retrying = copy.deepcopy(active)
    retrying["status"]["failed"] = 1
    assert is_news("Job", active, retrying)
    assert is_news("Job", None, job())  # nothing stored yet
    assert is_news("Job", job(), job(), deleted=True)


def test_spec_edits_of_kinds_without_generation_are_news() -> None:
    svc = {"kind": "Service", "metadata": {"name": "a", "namespace": "t"},
           "spec": {"ports": [{"port": 8000}]}}
    edited = {**svc, "spec": {"ports": [{"port": 9000}]}}
    assert is_news("Service", svc, edited)
    bound = {**svc, "status": {"loadBalancer": {}}}
    assert not is_news("Service", svc, bound)
    pvc = {"kind": "PersistentVolumeClaim", "metadata": {"name": "c", "namespace": "t"},
           "spec": {"resources": {"requests": {"storage": "10Gi"}}}, "status": {}}
    assert not is_news("PersistentVolumeClaim", pvc, {**pvc, "status": {"phase": "Bound"}})
    assert is_news("PersistentVolumeClaim", pvc, {**pvc, "spec": {
        "resources": {"requests": {"storage": "20Gi"}}}})
    assert is_news("ConfigMap", {"kind": "ConfigMap"}, {"kind": "ConfigMap"})  # unknown kind
