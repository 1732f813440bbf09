"""Unit tests of the watch-fed read-through store (kubellm.k8s.store.CachingCluster)."""

from __future__ import annotations

from typing import Any

from kubellm.k8s.store import CachingCluster
from support.cluster import FakeCluster


class CountingCluster(FakeCluster):
    def __init__(self) -> None:
        super().__init__()
        self.gets = 0

    def get(self, api_version: str, kind: str, name: str, namespace: str | None) -> (
        dict[str, Any] | None
    ):
        self.gets += 1
        return super().get(api_version, kind, name, namespace)


def dep(rv: str, replicas: int = 1) -> dict[str, Any]:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "d", "namespace": "ns", "resourceVersion": rv},
            "spec": {"replicas": replicas}}


def make() -> tuple[CountingCluster, CachingCluster]:
    api = CountingCluster()
    return api, CachingCluster(api, {"Deployment"})  # type: ignore[arg-type]


def test_hit_after_observe_miss_falls_back_to_the_apiserver() -> None:
    api, cache = make()
    assert cache.get("apps/v1", "Deployment", "d", "ns") is None and api.gets == 1
    cache.observe("Deployment", dep("5"))
    assert cache.get("apps/v1", "Deployment", "d", "ns")["spec"]["replicas"] == 1
    assert api.gets == 1 and cache.hits == 1
    # unwatched kinds always go to the apiserver
    cache.get("v1", "Service", "d", "ns")
    assert api.gets == 2


def test_an_older_event_never_replaces_a_newer_write() -> None:
    _, cache = make()
    cache.observe("Deployment", dep("7", replicas=3))  # our write's response
    cache.observe("Deployment", dep("6", replicas=1))  # a late watch event
    assert cache.cached("Deployment", "d", "ns")["spec"]["replicas"] == 3
    cache.observe("Deployment", dep("8", replicas=2))
    assert cache.cached("Deployment", "d", "ns")["spec"]["replicas"] == 2
    cache.observe("Deployment", dep("9"), deleted=True)
    assert cache.cached("Deployment", "d", "ns") is None


def test_writes_go_through_and_update_the_store() -> None:
    api, cache = make()
    why, _ = cache.apply(dep("1") | {"metadata": {"name": "d", "namespace": "ns"}})
    assert why == "missing" and api.writes == ["apply Deployment/d"]
    assert cache.cached("Deployment", "d", "ns") is not None
    # the same desired object again: served from the store, no read, no write
    gets = api.gets
    why, _ = cache.apply({"apiVersion": "apps/v1", "kind": "Deployment",
                          "metadata": {"name": "d", "namespace": "ns"}, "spec": {"replicas": 1}})
    assert why is None and api.gets == gets and len(api.writes) == 1
    cache.delete("apps/v1", "Deployment", "d", "ns")
    assert cache.cached("Deployment", "d", "ns") is None
