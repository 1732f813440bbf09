"""The Node/Pod informer (kubellm.k8s.informer) and the trimmed views it keeps
(kubellm.sizing.inventory node_view/pod_view): the views answer every GPU-accounting question
exactly as the whole objects do, and the store follows list, watch, bookmarks and 410 Gone."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from kubellm import naming
from kubellm.k8s.informer import Gone, Informer
from kubellm.k8s.store import CachingCluster
from kubellm.sizing.commitments import commitment_from_deployment, committed_inventory
from kubellm.sizing.inventory import gpus_freed, node_view, pod_view
from support.cluster import FakeCluster

PRODUCTS = ("NVIDIA-L4", "NVIDIA-L4", "NVIDIA-H100-80GB-HBM3", "Tesla-T4-SHARED", None)
OWNERS = ("a", "b", None)


@st.composite
def nodes(draw: st.DrawFn, i: int) -> dict[str, Any]:
    product = draw(st.sampled_from(PRODUCTS))
    labels = {"kubernetes.io/hostname": f"n{i}", "zone": draw(st.sampled_from("xy"))}
    if product:
        labels["nvidia.com/gpu.product"] = product
    conditions = [{"type": "MemoryPressure", "status": "False", "reason": "KubeletHasMemory"},
                  {"type": "Ready", "status": draw(st.sampled_from(["True", "True", "False"])),
                   "lastHeartbeatTime": "2026-12-04T00:00:00Z"}]
    allocatable: dict[str, Any] = {"cpu": "16", "memory": "64Gi"}
    gpus = draw(st.sampled_from([None, 0, 1, 4, 8, 8, "8"]))
    if gpus is not None:
        allocatable["nvidia.com/gpu"] = gpus
    return {"metadata": {"name": f"n{i}", "labels": labels, "uid": f"u{i}",
                         "annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
            "spec": {"unschedulable": True} if draw(st.booleans()) and i % 3 == 0 else
            {"podCIDR": "10.0.0.0/24"},
            "status": {"allocatable": allocatable, "capacity": allocatable,
                       "conditions": conditions, "images": [{"names": ["x"], "sizeBytes": 1}]}}


@st.composite
def pods(draw: st.DrawFn, i: int, node_names: list[str]) -> dict[str, Any]:
    owner = draw(st.sampled_from(OWNERS))
    labels = naming.selector_labels(owner) if owner else {"app": "other"}
    gpus = draw(st.integers(0, 8))
    resources: dict[str, Any] = {draw(st.sampled_from(["limits", "requests"])):
                                 {"nvidia.com/gpu": str(gpus), "cpu": "1"}}
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "x", "resources": resources},
                                           {"name": "sidecar", "image": "y"}]}
    if draw(st.booleans()):
        spec["initContainers"] = [{"name": "i", "resources": {"limits": {
            "nvidia.com/gpu": draw(st.integers(0, 8))}}}]
    bound = draw(st.sampled_from([None, *node_names])) if node_names else None
    if bound:
        spec["nodeName"] = bound
    meta: dict[str, Any] = {"name": f"p{i}", "labels": labels, "uid": f"pu{i}",
                            "namespace": draw(st.sampled_from(["team", "team", "x"]))}
    if draw(st.integers(0, 4)) == 0:
        meta["deletionTimestamp"] = "2026-12-04T00:00:00Z"
    phase = draw(st.sampled_from(["Pending", "Running", "Running", "Succeeded", "Failed"]))
    return {"metadata": meta, "spec": spec,
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": "True"}]}}


@st.composite
def clusters(draw: st.DrawFn) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    ns = [draw(nodes(i)) for i in range(draw(st.integers(0, 4)))]
    names = [n["metadata"]["name"] for n in ns] + ["gone-node"]
    ps = [draw(pods(i, names)) for i in range(draw(st.integers(0, 10)))]
    return ns, ps


def serving(owner: str, replicas: int, gpus: int) -> dict[str, Any]:
    sel = naming.selector_labels(owner)
    return {"metadata": {"name": naming.serving_name(owner), "namespace": "team",
                         "ownerReferences": [{"kind": "LLMDeployment", "name": owner}]},
            "spec": {"replicas": replicas, "selector": {"matchLabels": sel},
                     "template": {"metadata": {"labels": sel}, "spec": {"containers": [
                         {"name": "s", "resources": {"limits": {"nvidia.com/gpu": gpus}}}]}}}}


@settings(max_examples=500, deadline=None)
@given(clusters(), st.sampled_from([None, ("team", "a"), ("team", "b")]),
       st.sampled_from([None, {"zone": "x"}]), st.integers(0, 3), st.integers(1, 8))
def test_views_give_the_same_inventory_as_whole_objects(
    cluster: tuple[list[dict[str, Any]], list[dict[str, Any]]], own: Any, selector: Any,
    replicas: int, gpus: int,
) -> None:
    ns, ps = cluster
    promised = [c for c in (commitment_from_deployment(serving(o, replicas, gpus))
                            for o in ("a", "b")) if c is not None]
    views = [v for v in (pod_view(p) for p in ps) if v is not None]
    whole = committed_inventory(ns, ps, promised, own, selector)
    trimmed = committed_inventory([node_view(n) for n in ns], views, promised, own, selector)
    assert trimmed == whole


def test_a_pod_view_is_small_and_drops_pods_without_gpus() -> None:
    gpu = {"metadata": {"name": "p", "namespace": "t", "labels": {"a": "b"},
                        "managedFields": [{"manager": "kubelet"}] * 20},
           "spec": {"nodeName": "n", "containers": [
               {"name": "c", "image": "vllm", "env": [{"name": "X", "value": "1"}] * 30,
                "resources": {"limits": {"nvidia.com/gpu": "2"}}}]},
           "status": {"phase": "Running", "containerStatuses": [{"name": "c"}]}}
    assert pod_view(gpu) == {
        "metadata": {"name": "p", "namespace": "t", "labels": {"a": "b"}},
        "spec": {"nodeName": "n", "containers": [{"resources": {"requests": {
            "nvidia.com/gpu": 2}}}]},
        "status": {"phase": "Running"}}
    cpu_only = {**gpu, "spec": {"containers": [{"name": "c"}]}}
    assert pod_view(cpu_only) is None
    assert pod_view({**gpu, "status": {"phase": "Succeeded"}}) is None


def test_gpus_freed() -> None:
    bound = pod_view({"metadata": {"name": "p"}, "spec": {"nodeName": "n", "containers": [
        {"resources": {"limits": {"nvidia.com/gpu": 1}}}]}, "status": {"phase": "Running"}})
    pending = {**(bound or {}), "spec": {"containers": [{"resources": {"requests": {
        "nvidia.com/gpu": 1}}}]}}
    assert gpus_freed("Pod", bound, None)
    assert not gpus_freed("Pod", pending, None)  # it held nothing
    assert not gpus_freed("Pod", None, bound)
    assert not gpus_freed("Pod", pending, bound)  # scheduled: takes GPUs

    def n(gpus: int, ready: str = "True", cordoned: bool = False) -> dict[str, Any]:
        return node_view({"metadata": {"name": "n"},
                          "spec": {"unschedulable": cordoned},
                          "status": {"allocatable": {"nvidia.com/gpu": gpus},
                                     "conditions": [{"type": "Ready", "status": ready}]}})

    assert gpus_freed("Node", None, n(8))
    assert gpus_freed("Node", n(8, ready="False"), n(8))
    assert gpus_freed("Node", n(8, cordoned=True), n(8))
    assert gpus_freed("Node", n(4), n(8))
    assert not gpus_freed("Node", n(8), n(8, ready="False"))
    assert not gpus_freed("Node", n(8), None)
    assert not gpus_freed("Node", n(8), n(8))


# ---- the informer ------------------------------------------------------------------------
def obj(name: str, rv: str, value: int = 1, namespace: str | None = "t") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": namespace, "resourceVersion": rv},
            "spec": {"value": value, "noise": "x" * 100}}


def keep(o: dict[str, Any]) -> dict[str, Any] | None:
    """A view: the name and value, nothing for value 0 (like a pod without GPUs)."""
    value = o["spec"]["value"]
    return {"name": o["metadata"]["name"], "value": value} if value else None


class Script:
    """Pages for each LIST and event lists for each watch, in order; records the calls."""

    def __init__(self, lists: list[list[dict[str, Any]]],
                 watches: list[list[dict[str, Any]] | Exception]) -> None:
        self.lists, self.watches = lists, watches
        self.calls: list[tuple[str, str | None]] = []
        self.done = threading.Event()
        self.release = threading.Event()

    def list_page(self, token: str | None) -> dict[str, Any]:
        self.calls.append(("list", token))
        pages = self.lists[0]
        page = pages[int(token or 0)]
        if page is pages[-1]:
            self.lists.pop(0)
        return page

    def watch(self, rv: str) -> list[dict[str, Any]]:
        self.calls.append(("watch", rv))
        if not self.watches:  # the script is over: hold the loop until the test stops it
            self.done.set()
            self.release.wait(10)
            raise ConnectionError("script finished")
        step = self.watches.pop(0)
        if isinstance(step, Exception):
            raise step
        return step


def page(items: list[dict[str, Any]], rv: str, cont: str | None = None) -> dict[str, Any]:
    return {"items": items, "metadata": {"resourceVersion": rv, "continue": cont}}


def run_until_done(informer: Informer, script: Script) -> None:
    thread = threading.Thread(target=informer.run, daemon=True)
    thread.start()
    assert script.done.wait(10), script.calls
    informer.stop()
    script.release.set()
    thread.join(10)
    assert not thread.is_alive()


def test_list_pages_then_watch_events_bookmarks_and_a_410_relist() -> None:
    changes: list[tuple[Any, Any]] = []
    script = Script(
        lists=[[page([obj("a", "5"), obj("zero", "6", 0)], "10", "1"),
                page([obj("b", "7")], "10")],
               [page([obj("a", "40", 3), obj("c", "41")], "42")]],
        watches=[
            [{"type": "ADDED", "object": obj("d", "11")},
             {"type": "MODIFIED", "object": obj("a", "12", 2)},
             {"type": "MODIFIED", "object": obj("b", "13", 0)},  # no longer kept
             {"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "20"}}}],
            [{"type": "DELETED", "object": obj("d", "21")},
             {"type": "ERROR", "object": {"code": 410, "message": "too old"}}],
            ConnectionError("apiserver restarting"),
        ])
    informer = Informer("Thing", script.list_page, script.watch, keep,
                        on_change=lambda old, new: changes.append((old, new)))
    informer._stop.wait = lambda delay: False  # type: ignore[method-assign]  # no real sleep
    run_until_done(informer, script)
    assert script.calls == [("list", None), ("list", "1"), ("watch", "10"), ("watch", "20"),
                            ("list", None), ("watch", "42"), ("watch", "42")]
    assert sorted(informer.items(), key=lambda v: v["name"]) == [
        {"name": "a", "value": 3}, {"name": "c", "value": 1}]
    assert informer.synced.is_set() and informer.relists == 2
    assert changes == [
        (None, {"name": "d", "value": 1}),
        ({"name": "a", "value": 1}, {"name": "a", "value": 2}),
        ({"name": "b", "value": 1}, None),
        ({"name": "d", "value": 1}, None),
        # the relist after 410: a changed (2 -> 3), c appeared
        ({"name": "a", "value": 2}, {"name": "a", "value": 3}),
        (None, {"name": "c", "value": 1}),
    ]


def test_a_410_on_watch_start_lists_again() -> None:
    script = Script(lists=[[page([obj("a", "1")], "1")], [page([], "9")]],
                    watches=[Gone("expired"), []])
    informer = Informer("Thing", script.list_page, script.watch, keep)
    informer._stop.wait = lambda delay: False  # type: ignore[method-assign]
    run_until_done(informer, script)
    assert script.calls[:4] == [("list", None), ("watch", "1"), ("list", None), ("watch", "9")]
    assert informer.items() == []


def test_the_store_answers_lists_of_all_nodes_only_once_synced() -> None:
    api = FakeCluster()
    api.put({"kind": "Node", "metadata": {"name": "live", "labels": {"a": "b"}}})
    script = Script(lists=[[page([obj("n1", "3", namespace=None)], "3")]], watches=[])
    informer = Informer("Node", script.list_page, script.watch, keep)
    cache = CachingCluster(api, set(), {"Node": informer})  # type: ignore[arg-type]
    before = cache.list("v1", "Node")
    informer.relist()
    assert cache.list("v1", "Node") == [{"name": "n1", "value": 1}]
    assert cache.list("v1", "Node", label_selector="a=b") == api.list("v1", "Node", None, "a=b")
    assert before == api.list("v1", "Node")


def test_a_selector_informer_answers_only_lists_with_its_selector() -> None:
    api = FakeCluster()
    api.put({"kind": "Deployment", "metadata": {"name": "live", "namespace": "ns",
                                                "labels": {"a": "b"}}})
    script = Script(lists=[[page([obj("d1", "3")], "3")]], watches=[])
    informer = Informer("Deployment", script.list_page, script.watch, keep, label_selector="a=b")
    cache = CachingCluster(api, set(), {"Deployment": informer})  # type: ignore[arg-type]
    informer.relist()
    assert cache.list("apps/v1", "Deployment", label_selector="a=b") == [{"name": "d1",
                                                                           "value": 1}]
    for args in ((None, None), ("ns", "a=b"), (None, "a=c")):
        assert cache.list("apps/v1", "Deployment", *args) == api.list("apps/v1", "Deployment",
                                                                      *args)


def test_workload_views_commit_what_the_rendered_workloads_commit() -> None:
    """Every rendered serving workload in the goldens (Deployments, LeaderWorkerSets; nodeSelector,
    affinity, init containers as rendered) commits the same GPUs from its view."""
    import yaml

    from kubellm.sizing.commitments import commitment_from_workload, workload_view

    golden = Path(__file__).resolve().parents[1] / "golden"
    workloads = [doc for f in sorted(golden.glob("*.yaml")) for doc in yaml.safe_load_all(
        f.read_text()) if doc and doc.get("kind") in ("Deployment", "LeaderWorkerSet")]
    assert len(workloads) >= 20
    lws = [w for w in workloads if w["kind"] == "LeaderWorkerSet"]
    assert lws, "no multi-node golden"
    for w in workloads:
        placed = {**w, "spec": {**w["spec"], "replicas": 3}}
        placed["spec"].setdefault("template", {}).setdefault("spec", {})["nodeSelector"] = {
            "pool": "a"}
        for obj in (w, placed):
            found = commitment_from_workload(obj)
            assert found is not None and found.gpus_per_replica > 0
            assert commitment_from_workload(workload_view(obj)) == found
            assert len(str(workload_view(obj))) < len(str(obj)) / 2  # live ones: + status
    deleting = {**workloads[0], "metadata": {**workloads[0]["metadata"],
                                             "deletionTimestamp": "2026-12-04T00:00:00Z"}}
    assert commitment_from_workload(workload_view(deleting)) is None
