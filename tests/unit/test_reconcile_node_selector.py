"""A deployment is sized only against the nodes its ``spec.nodeSelector`` matches.

Found by tests/e2e/test_fuzz_sandbox.py: an LLMDeployment with ``nodeSelector: {pool: gpu}`` on
a cluster where no GPU node carries that label was sized against every GPU node, planned
deployable, given a Deployment whose pods (which carry the selector) stayed Pending forever
(``Ready=False/NoReplicasReady``) and charged GPUs to nodes it could never use. Now the
inventory holds only matching nodes: with none, the sizer refuses it (DoesNotFit: no usable
GPU nodes) and nothing is created.
"""

from __future__ import annotations

from kubellm.sizing.commitments import committed_inventory
from support.cluster import FakeCluster, condition
from support.objects import L4, llmd, node
from support.reconcile import make

NODES = [node("a0", pool="a"), node("a1", pool="a"), node("b0", pool="b")]


def test_committed_inventory_keeps_only_matching_nodes() -> None:
    assert sum(p.nodes for p in committed_inventory(NODES, [], []).pools) == 3
    only_b = committed_inventory(NODES, [], [], node_selector={"pool": "b"})
    assert [(p.nodes, p.gpu_product) for p in only_b.pools] == [(1, L4)]
    assert any("2 of 3 nodes skipped" in n and "pool" in n for n in only_b.notes), only_b.notes
    none = committed_inventory(NODES, [], [], node_selector={"pool": "gpu"})
    assert none.pools == ()


def test_the_reconcile_sizes_against_the_selected_nodes() -> None:
    cluster = FakeCluster()
    for n in NODES:
        cluster.put(n)
    _, rec = make(cluster)
    # pool a: two nodes of 8 x L4; 12 replicas of one L4 each fit there only with both nodes
    cluster.put(llmd("sel", nodeSelector={"pool": "a"}, replicas=12, gpu={"count": 1}))
    rec.reconcile(cluster.body("sel"))
    assert condition(cluster, "sel", "Sized")[0] == "True"
    # 17 do not fit the 16 GPUs of pool a, although the cluster has 24
    cluster.put(llmd("more", nodeSelector={"pool": "a"}, replicas=17, gpu={"count": 1}))
    rec.reconcile(cluster.body("more"))
    assert condition(cluster, "more", "Sized")[0] == "False"
    # no node carries the label: nothing to size against, nothing created
    cluster.put(llmd("none", nodeSelector={"pool": "gpu"}))
    out = rec.reconcile(cluster.body("none"))
    assert condition(cluster, "none", "Sized") == ("False", "DoesNotFit"), out.status
    assert not any(n == "none" for (k, _, n) in cluster.objects if k != "LLMDeployment")
