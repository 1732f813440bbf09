"""GPU commitments in the reconciler: concurrent reconciles cannot both take the last GPUs, the
first keeps its GPUs on resyncs, and a deleted deployment's GPUs go to the one waiting."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from test_reconcile_fakes import FakeCluster, ScriptedPlanner, facts_for, llmd

from kubellm.planner import Plan
from kubellm.reconcile import Reconciler
from kubellm.sizing.types import Inventory

H100 = "NVIDIA-H100-80GB-HBM3"


def node(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"nvidia.com/gpu.product": H100}},
            "status": {"allocatable": {"nvidia.com/gpu": "8"},
                       "conditions": [{"type": "Ready", "status": "True"}]}}


class WholeNodePlanner(ScriptedPlanner):
    """Each deployment needs one whole 8 x H100 node; slow on purpose (widens any race)."""

    def __call__(self, llmd: Any, facts: Any, policies: Any, inventory: Inventory,
                 **kwargs: Any) -> Plan:
        plan = super().__call__(llmd, facts, policies, inventory, **kwargs)
        time.sleep(0.05)
        frees = [f for p in inventory.pools for f in p.free_gpus_per_node or ()]
        if not any(f >= 8 for f in frees):
            return replace(plan, refusal_reason="GpusBusy", objects=(), cache_objects=(),
                           serving_objects=(), refusal=f"free per node: {frees}; needs 8")
        plan = replace(plan, sizing=replace(plan.sizing, gpu_type=H100, gpus_per_replica=8,
                                            tensor_parallel_size=8))
        dep = plan.serving_objects[0]
        spec = dep["spec"]["template"]["spec"]
        spec["containers"][0]["resources"] = {"limits": {"nvidia.com/gpu": "8"}}
        spec["nodeSelector"] = {"nvidia.com/gpu.product": H100}
        return plan


def make() -> tuple[FakeCluster, Reconciler]:
    cluster = FakeCluster()
    for name in ("h1", "h2"):
        cluster.put(node(name))
    rec = Reconciler(cluster, facts_for, planner=WholeNodePlanner(),
                     now=lambda: datetime(2026, 11, 27, tzinfo=UTC))
    return cluster, rec


def sized(cluster: FakeCluster, name: str) -> str:
    conds = cluster.body(name)["status"]["conditions"]
    c = next(c for c in conds if c["type"] == "Sized")
    return f"{c['status']}/{c['reason']}"


def deployments(cluster: FakeCluster) -> list[str]:
    return sorted(n for (k, _, n) in cluster.objects if k == "Deployment")


def test_three_concurrent_reconciles_two_nodes() -> None:
    cluster, rec = make()
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

    # the cache completes: the two winners get their Deployments, the loser nothing
    for kind, _, name in list(cluster.objects):
        if kind == "Job":
            cluster.set_status("Job", name, {"succeeded": 1})
    for n in names:
        rec.reconcile(cluster.body(n))
    winners = sorted(n for n in names if n != loser)
    assert deployments(cluster) == winners
    # resyncs later (snapshots expired, Deployments listed, still no pods): nobody flips
    rec.settings.inventory_ttl = 0.0
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
    restarted = Reconciler(cluster, facts_for, planner=WholeNodePlanner(),
                           now=lambda: datetime(2026, 11, 27, tzinfo=UTC))
    assert restarted.seed(cluster.list("kubellm.io/v1alpha1", "LLMDeployment")) == 2
    restarted.reconcile(cluster.body("c"))
    assert sized(cluster, "c") == "False/GpusBusy"
    restarted.reconcile(cluster.body("a"))  # a still fits: its own entry does not count
    assert sized(cluster, "a") == "True/Fits"
    # without the seed, c would have taken a node promised to a or b
    cold = Reconciler(cluster, facts_for, planner=WholeNodePlanner(),
                      now=lambda: datetime(2026, 11, 27, tzinfo=UTC))
    cold.reconcile(cluster.body("c"))
    assert sized(cluster, "c") == "True/Fits"
