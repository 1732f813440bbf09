"""GPU commitments in the reconciler: concurrent reconciles cannot both take the last GPUs, the
first keeps its GPUs on resyncs, and a deleted deployment's GPUs go to the one waiting. Real
planner; each deployment asks for one whole 8 x H100 node."""

from __future__ import annotations

import threading
from typing import Any

from kubellm.reconcile import Reconciler
from support.cluster import FakeCluster
from support.objects import H100, node
from support.objects import llmd as _llmd
from support.reconcile import make as _make


def llmd(name: str, **spec: Any) -> dict[str, Any]:
    return _llmd(name, gpu={"type": "h100", "count": 8}, **spec)


class ObservingTogether(FakeCluster):
    """Holds each reconcile after it listed the Pods until ``parties`` have: all of them then
    plan against the same observed cluster (the widest race the ledger must win)."""

    def __init__(self, parties: int) -> None:
        super().__init__()
        self.barrier: threading.Barrier | None = threading.Barrier(parties, timeout=10)

    def list(self, api_version: str, kind: str, namespace: str | None = None,
             label_selector: str | None = None) -> list[dict[str, Any]]:
        items = super().list(api_version, kind, namespace, label_selector)
        if kind == "Pod" and self.barrier is not None:
            self.barrier.wait()
        return items


def make(cluster: FakeCluster | None = None) -> tuple[FakeCluster, Reconciler]:
    cluster = cluster or FakeCluster()
    for name in ("h1", "h2"):
        cluster.put(node(name, H100))
    return _make(cluster)


def sized(cluster: FakeCluster, name: str) -> str:
    conds = cluster.body(name)["status"]["conditions"]
    c = next(c for c in conds if c["type"] == "Sized")
    return f"{c['status']}/{c['reason']}"


def deployments(cluster: FakeCluster) -> list[str]:
    return sorted(n for (k, _, n) in cluster.objects if k == "Deployment")


def test_three_concurrent_reconciles_two_nodes() -> None:
    racing = ObservingTogether(3)
    cluster, rec = make(racing)
    names = ["a", "b", "c"]
    for n in names:
        cluster.put(llmd(n))
    start = threading.Barrier(len(names))

    def go(n: str) -> None:
        start.wait()
        rec.reconcile(cluster.body(n))

    threads = [threading.Thread(target=go, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results = {n: sized(cluster, n) for n in names}
    assert sorted(results.values()) == ["False/GpusBusy", "True/Fits", "True/Fits"], results
    loser = next(n for n, r in results.items() if r == "False/GpusBusy")
    racing.barrier = None

    # the cache completes: the two winners get their Deployments, the loser nothing
    for kind, _, name in list(cluster.objects):
        if kind == "Job":
            cluster.set_status("Job", name, {"succeeded": 1})
    for n in names:
        rec.reconcile(cluster.body(n))
    winners = sorted(n for n in names if n != loser)
    assert deployments(cluster) == winners
    # resyncs later (Deployments listed, still no pods): nobody flips
    for _ in range(2):
        for n in names:
            rec.reconcile(cluster.body(n))
    assert {n: sized(cluster, n) for n in names} == results

    # a winner is deleted: its GPUs are released and the loser fits on the next reconcile
    gone = winners[0]
    cluster.objects.pop(("LLMDeployment", "team", gone))
    cluster.objects.pop(("Deployment", "team", gone))
    assert rec.release("team", gone)
    out = rec.reconcile(cluster.body(loser))
    assert sized(cluster, loser) == "True/Fits", out
    assert deployments(cluster) == sorted([winners[1], loser])


def test_scaling_down_reports_released_gpus() -> None:
    cluster, rec = make()
    cluster.put(llmd("a", replicas=2))
    assert not rec.reconcile(cluster.body("a")).gpus_released
    body = cluster.body("a")
    body["spec"]["replicas"] = 1
    assert rec.reconcile(body).gpus_released


def test_a_restart_keeps_gpus_promised_to_deployments_still_downloading() -> None:
    """a and b fit and wait for their download (no Deployment yet); the operator restarts and
    reconciles c first: seeded from the status, the ledger still holds a's and b's GPUs."""
    cluster, rec = make()
    for n in ("a", "b"):
        cluster.put(llmd(n))
        rec.reconcile(cluster.body(n))
    assert deployments(cluster) == []
    cluster.put(llmd("c"))
    _, restarted = _make(cluster)
    assert restarted.seed(cluster.list("kubellm.io/v1alpha1", "LLMDeployment")) == 2
    restarted.reconcile(cluster.body("c"))
    assert sized(cluster, "c") == "False/GpusBusy"
    restarted.reconcile(cluster.body("a"))  # a still fits: its own entry does not count
    assert sized(cluster, "a") == "True/Fits"
    # without the seed, c would have taken a node promised to a or b
    _, cold = _make(cluster)
    cold.reconcile(cluster.body("c"))
    assert sized(cluster, "c") == "True/Fits"
