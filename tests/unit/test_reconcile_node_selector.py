"""A deployment is sized only against the nodes its ``spec.nodeSelector`` matches.

Found by tests/e2e/test_fuzz_sandbox.py: an LLMDeployment with ``nodeSelector: {pool: gpu}`` on
a cluster where no GPU node carries that label was sized against every GPU node, planned
deployable, given a Deployment whose pods (which carry the selector) stayed Pending forever
(``Ready=False/NoReplicasReady``) and charged GPUs to nodes it could never use. Now the
inventory holds only matching nodes: with none, the sizer refuses it (DoesNotFit: no usable
GPU nodes) and nothing is created.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from test_reconcile_fakes import FakeCluster, ScriptedPlanner, facts_for, llmd

from kubellm.reconcile import Reconciler
from kubellm.sizing.commitments import committed_inventory
from kubellm.sizing.types import Inventory

L4 = "NVIDIA-L4"


def node(name: str, **labels: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"nvidia.com/gpu.product": L4, **labels}},
            "status": {"allocatable": {"nvidia.com/gpu": "8"},
                       "conditions": [{"type": "Ready", "status": "True"}]}}


NODES = [node("a0", pool="a"), node("a1", pool="a"), node("b0", pool="b")]


def test_committed_inventory_keeps_only_matching_nodes() -> None:
    assert sum(p.nodes for p in committed_inventory(NODES, [], []).pools) == 3
    only_b = committed_inventory(NODES, [], [], node_selector={"pool": "b"})
    assert [(p.nodes, p.gpu_product) for p in only_b.pools] == [(1, L4)]
    assert any("2 of 3 nodes skipped" in n and "pool" in n for n in only_b.notes), only_b.notes
    none = committed_inventory(NODES, [], [], node_selector={"pool": "gpu"})
    assert none.pools == ()


class RecordingPlanner(ScriptedPlanner):
    inventories: list[Inventory]

    def __call__(self, llmd: Any, facts: Any, policies: Any, inventory: Any,
                 **kwargs: Any) -> Any:
        self.inventories.append(inventory)
        return super().__call__(llmd, facts, policies, inventory, **kwargs)


def test_the_reconcile_sizes_against_the_selected_nodes() -> None:
    cluster = FakeCluster()
    for n in NODES:
        cluster.put(n)
    planner = RecordingPlanner()
    planner.inventories = []
    rec = Reconciler(cluster, facts_for, planner=planner,
                     now=lambda: datetime(2026, 12, 3, tzinfo=UTC))
    cluster.put(llmd("sel", nodeSelector={"pool": "a"}))
    rec.reconcile(cluster.body("sel"))
    assert sum(p.nodes for p in planner.inventories[-1].pools) == 2
