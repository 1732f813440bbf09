"""No lost wake-up: a shared cache completing while a reconcile of one of its users is in flight
reaches that user, however far its status got (issue: with the default 300 s resync, deployments
whose first reconcile was running when the download Job completed waited for the resync, because
the cache event woke only deployments whose status already named the cache).

The interleaving is forced: the fake cluster runs the "Job completed" watch event (store update,
then ``users_of_cache``) exactly when the reconcile reads the Job, i.e. after it planned and
before it sees the Job. Either the event finds the deployment, or the reconcile sees the
completed Job; the test checks the event finds it.
"""

from __future__ import annotations

import threading
from typing import Any

from test_reconcile import NOW, complete_job
from test_reconcile_fakes import FakeCluster, ScriptedPlanner, facts_for, llmd

from kubellm.handlers import Runtime
from kubellm.reconcile import Reconciler
from kubellm.sizing.types import Inventory


def _runtime_without_cluster() -> Runtime:
    """The handlers' Runtime with only what users_of_cache and the hook need (no API client)."""
    rt = Runtime.__new__(Runtime)
    rt.known = {}
    rt.planned = {}
    rt._planned_lock = threading.Lock()
    return rt


class RacingCluster(FakeCluster):
    """Completes the cache Job, and asks the handlers who to wake, at the reconcile's Job read."""

    def __init__(self, rt: Runtime) -> None:
        super().__init__()
        self.rt = rt
        self.woken: list[Any] = []

    def get(self, api_version: str, kind: str, name: str, namespace: str | None
            ) -> dict[str, Any] | None:  # fmt: skip
        if kind == "Job" and not self.woken:
            job = self.objects.get(("Job", namespace, name))
            if job is not None:  # the Job exists (an earlier reconcile made it): it completes now
                complete_job(self, name)
                key = job["metadata"]["labels"]["kubellm.io/cache-key"]
                self.woken.append(self.rt.users_of_cache(namespace or "default", key))
        return super().get(api_version, kind, name, namespace)


def test_cache_completing_mid_reconcile_wakes_the_deployment() -> None:
    rt = _runtime_without_cluster()
    cluster = RacingCluster(rt)
    rec = Reconciler(cluster, facts_for, planner=ScriptedPlanner(), now=lambda: NOW,
                     inventory_builder=lambda nodes, pods: Inventory(source="test"),
                     on_planned=rt.note_planned_cache)
    # another deployment of the same model created the shared PVC and Job already
    cluster.put(llmd("first"))
    rec.reconcile(cluster.body("first"))
    cluster.woken.clear()
    # a second deployment's first reconcile: its status names no cache yet (rt.known is empty)
    cluster.put(llmd("second"))
    rt.known[("team", "second")] = None
    rec.reconcile(cluster.body("second"))
    assert cluster.woken, "the reconcile never read the cache Job"
    assert ("team", "second") in cluster.woken[0]


def test_users_of_cache_from_status_and_from_plans() -> None:
    rt = _runtime_without_cluster()
    rt.known = {("a", "x"): "k1", ("a", "y"): "k2", ("b", "x"): "k1"}
    rt.note_planned_cache("a", "z", "k1")
    rt.note_planned_cache("a", "y", "k1")  # planned a new cache; status still says k2
    assert rt.users_of_cache("a", "k1") == [("a", "x"), ("a", "y"), ("a", "z")]
    assert rt.users_of_cache("a", "k2") == [("a", "y")]
    assert rt.users_of_cache("a", None) == []
    rt.note_planned_cache("a", "z", None)  # deleted
    assert ("a", "z") not in rt.users_of_cache("a", "k1")
