"""Unit tests of the shared cache garbage collector (kubellm.reconcile.cachegc)."""

from __future__ import annotations

from typing import Any

from kubellm import naming
from kubellm.reconcile.cachegc import CacheCollector
from support.cluster import FakeCluster


def cache_objects(cluster: FakeCluster, key: str) -> None:
    labels = naming.cache_labels(key)
    for kind, api in (("PersistentVolumeClaim", "v1"), ("Job", "batch/v1")):
        cluster.put({"apiVersion": api, "kind": kind,
                     "metadata": {"name": f"{kind.lower()}-{key}", "namespace": "ns",
                                  "labels": labels}})


def user(key: str) -> dict[str, Any]:
    return {"metadata": {"name": "u", "namespace": "ns"}, "status": {"cache": {"key": key}}}


def test_unused_cache_is_deleted_only_after_the_grace_period() -> None:
    cluster = FakeCluster()
    cache_objects(cluster, "aaaa")
    cache_objects(cluster, "bbbb")
    now = {"t": 0.0}
    gc = CacheCollector(cluster, grace_seconds=60, clock=lambda: now["t"])
    assert gc.collect("ns", [user("aaaa")]) == []  # bbbb unused since t=0
    now["t"] = 59
    assert gc.collect("ns", [user("aaaa")]) == []
    now["t"] = 61
    assert gc.collect("ns", [user("aaaa")]) == ["Job/job-bbbb",
                                                 "PersistentVolumeClaim/persistentvolumeclaim-bbbb"]
    assert ("Job", "ns", "job-aaaa") in cluster.objects
    assert ("Job", "ns", "job-bbbb") not in cluster.objects


def test_used_again_resets_the_clock_and_mounted_pvcs_count_as_used() -> None:
    cluster = FakeCluster()
    cache_objects(cluster, "aaaa")
    now = {"t": 0.0}
    gc = CacheCollector(cluster, grace_seconds=10, clock=lambda: now["t"])
    gc.collect("ns", [])
    now["t"] = 5
    gc.collect("ns", [user("aaaa")])  # referenced again: forget the unused-since time
    now["t"] = 12
    assert gc.collect("ns", []) == []  # unused again since t=12 only
    # old pods of a revision bump still mount it: in use even with no status naming it
    cluster.put({"apiVersion": "apps/v1", "kind": "Deployment",
                 "metadata": {"name": "d", "namespace": "ns",
                              "labels": {naming.LABEL_MANAGED_BY: naming.MANAGED_BY}},
                 "spec": {"template": {"spec": {"volumes": [{"name": "c", "persistentVolumeClaim": {
                     "claimName": "persistentvolumeclaim-aaaa"}}]}}}})
    now["t"] = 100
    assert gc.collect("ns", []) == []


def test_objects_already_being_deleted_are_left_alone() -> None:
    cluster = FakeCluster()
    cache_objects(cluster, "aaaa")
    for key in list(cluster.objects):
        cluster.objects[key]["metadata"]["deletionTimestamp"] = "2026-11-27T11:00:00Z"
    now = {"t": 0.0}
    gc = CacheCollector(cluster, grace_seconds=0, clock=lambda: now["t"])
    assert gc.collect("ns", []) == [] and not [w for w in cluster.writes if "delete" in w]
