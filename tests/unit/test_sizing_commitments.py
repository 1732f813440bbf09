"""Committed GPU accounting (kubellm.sizing.commitments): bound pods + unbound commitments."""

from __future__ import annotations

from typing import Any

from kubellm import naming
from kubellm.sizing.commitments import (
    Commitment,
    commitment_from_deployment,
    commitment_from_status,
    commitment_from_workload,
    committed_inventory,
    merge_commitments,
    reserved_by_node,
)

H100 = "NVIDIA-H100-80GB-HBM3"
A100 = "NVIDIA-A100-SXM4-80GB"


def node(name: str, product: str = H100, gpus: int = 8) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"nvidia.com/gpu.product": product}},
            "status": {"allocatable": {"nvidia.com/gpu": str(gpus)},
                       "conditions": [{"type": "Ready", "status": "True"}]}}


def deployment(owner: str, replicas: int = 1, gpus: int = 8, product: str = H100,
               namespace: str = "team", **meta: Any) -> dict[str, Any]:
    """A serving Deployment as kubellm renders it (affinity on the product, GPU limits)."""
    sel = naming.selector_labels(owner)
    term = {"key": "nvidia.com/gpu.product", "operator": "In", "values": [product]}
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": naming.serving_name(owner), "namespace": namespace,
                     "labels": naming.labels(owner, naming.COMPONENT_SERVER),
                     "ownerReferences": [{"kind": "LLMDeployment", "name": owner}], **meta},
        "spec": {"replicas": replicas, "selector": {"matchLabels": sel},
                 "template": {"metadata": {"labels": sel}, "spec": {
                     "affinity": {"nodeAffinity": {
                         "requiredDuringSchedulingIgnoredDuringExecution": {
                             "nodeSelectorTerms": [{"matchExpressions": [term]}]}}},
                     "containers": [{"name": "server",
                                     "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}]}}},
    }


def pod(owner: str | None, node_name: str | None, gpus: int = 8, namespace: str = "team",
        **meta: Any) -> dict[str, Any]:
    labels = naming.selector_labels(owner) if owner else {"app": "other"}
    spec: dict[str, Any] = {"containers": [
        {"name": "c", "resources": {"limits": {"nvidia.com/gpu": str(gpus)}}}]}
    if node_name:
        spec["nodeName"] = node_name
    return {"metadata": {"name": f"{owner}-{node_name}", "namespace": namespace,
                         "labels": labels, **meta},
            "spec": spec, "status": {"phase": "Running" if node_name else "Pending"}}


def free(inventory: Any, product: str = H100) -> dict[str, int]:
    pool = next(p for p in inventory.pools if p.gpu_product == product)
    return dict(zip(pool.node_names, pool.free_gpus_per_node, strict=True))


NODES = [node("h1"), node("h2"), node("a1", A100, 4)]


def commitments(*deps: dict[str, Any]) -> list[Commitment]:
    return merge_commitments({}, list(deps))


def test_unscheduled_deployments_commit_whole_nodes() -> None:
    """Two 8 x H100 Deployments without pods yet: a third deployment sees no free H100."""
    inv = committed_inventory(NODES, [], commitments(deployment("a"), deployment("b")),
                              own=("team", "c"))
    assert free(inv) == {"h1": 0, "h2": 0}
    assert free(inv, A100) == {"a1": 4}  # affinity: another product is untouched


def test_a_bound_replica_is_counted_once() -> None:
    """a's pod is bound on h1: h1 is used by the pod, a's Deployment adds nothing more."""
    inv = committed_inventory(NODES, [pod("a", "h1")], commitments(deployment("a")),
                              own=("team", "c"))
    assert free(inv) == {"h1": 0, "h2": 8}


def test_own_pods_deployment_and_ledger_do_not_count() -> None:
    deps = commitments(deployment("a"), deployment("b"))
    pods = [pod("a", "h1")]
    # a's pod on h1 is its own: h1 looks free, and b's pending replica takes one whole node
    assert free(committed_inventory(NODES, pods, deps, own=("team", "a"))) == {"h1": 0, "h2": 8}
    # the same name in another namespace is someone else
    assert free(committed_inventory(NODES, pods, deps, own=("other", "a"))) == {"h1": 0, "h2": 0}
    ledger = {("team", "c"): commitment_from_deployment(deployment("c"))}
    merged = merge_commitments({k: v for k, v in ledger.items() if v}, [deployment("a")])
    assert free(committed_inventory(NODES, pods, merged, own=("team", "c"))) == {"h1": 0, "h2": 8}
    assert free(committed_inventory(NODES, pods, merged, own=("team", "x"))) == {"h1": 0, "h2": 0}


def test_a_pending_replica_is_charged_to_the_node_with_most_free_gpus() -> None:
    """h2 runs a 4-GPU pod of something else; a pending 4-GPU replica goes to h1 (most free),
    so an 8-GPU request finds no whole node, as with a spreading scheduler."""
    pods = [pod(None, "h2", 4)]
    reserved = reserved_by_node(NODES, pods, commitments(deployment("a", gpus=4)))
    assert reserved == {"h1": 4}
    inv = committed_inventory(NODES, pods, commitments(deployment("a", gpus=4)), own=None)
    assert free(inv) == {"h1": 4, "h2": 4}


def test_replicas_partly_bound_and_scaled() -> None:
    """3 replicas of 4 GPUs, one bound on h1: two more are charged (h2, then h1)."""
    inv = committed_inventory(NODES, [pod("a", "h1", 4)], commitments(deployment("a", 3, 4)),
                              own=None)
    assert free(inv) == {"h1": 0, "h2": 4}


def test_terminating_pods_hold_gpus_but_are_not_bound_replicas() -> None:
    """A replacement pending while the old pod terminates: both count (conservative)."""
    old = pod("a", "h1", deletionTimestamp="2026-11-27T11:00:00Z")
    inv = committed_inventory(NODES, [old], commitments(deployment("a")), own=None)
    assert free(inv) == {"h1": 0, "h2": 0}
    done = {**pod("a", "h1"), "status": {"phase": "Succeeded"}}
    assert free(committed_inventory(NODES, [done], [], own=None)) == {"h1": 8, "h2": 8}


def test_deployments_that_ask_for_nothing_commit_nothing() -> None:
    assert commitment_from_deployment(deployment("a", replicas=0)) is None
    assert commitment_from_deployment(deployment("a", gpus=0)) is None
    gone = deployment("a", deletionTimestamp="2026-11-27T11:00:00Z")
    assert commitment_from_deployment(gone) is None


def test_commitment_from_a_rendered_deployment() -> None:
    c = commitment_from_deployment(deployment("a", replicas=2, gpus=4))
    assert c is not None and c.key == ("team", "a") and (c.replicas, c.gpus_per_replica) == (2, 4)
    assert c.matches_node({"nvidia.com/gpu.product": H100})
    assert not c.matches_node({"nvidia.com/gpu.product": A100})
    selected = deployment("b")
    selected["spec"]["template"]["spec"]["nodeSelector"] = {"pool": "x"}
    c2 = commitment_from_deployment(selected)
    assert c2 is not None and not c2.matches_node({"nvidia.com/gpu.product": H100})
    assert c2.matches_node({"nvidia.com/gpu.product": H100, "pool": "x"})


def test_the_ledger_is_fresher_than_a_listed_deployment() -> None:
    """Scaled from 1 to 2 replicas: the ledger (2) wins over the listed Deployment (1)."""
    two = commitment_from_deployment(deployment("a", replicas=2))
    assert two is not None
    merged = merge_commitments({("team", "a"): two}, [deployment("a", replicas=1),
                                                      deployment("b")])
    assert [(c.owner, c.replicas) for c in merged] == [("a", 2), ("b", 1)]
    inv = committed_inventory(NODES, [], merged, own=("team", "c"))
    assert free(inv) == {"h1": 0, "h2": 0}  # 3 x 8 promised on 2 nodes: charged until full


def test_commitment_from_status() -> None:
    def obj(sized: str, **extra: Any) -> dict[str, Any]:
        return {"metadata": {"name": "a", "namespace": "team", **extra},
                "spec": {"replicas": 2, "nodeSelector": {"pool": "x"}},
                "status": {"conditions": [{"type": "Sized", "status": sized}],
                           "sizing": {"gpuType": H100, "gpusPerReplica": 8}}}

    c = commitment_from_status(obj("True"))
    assert c is not None and c.key == ("team", "a") and (c.replicas, c.gpus_per_replica) == (2, 8)
    assert c.matches_node({"nvidia.com/gpu.product": H100, "pool": "x"})
    assert not c.matches_node({"nvidia.com/gpu.product": A100, "pool": "x"})
    assert commitment_from_status(obj("False")) is None
    assert commitment_from_status(obj("True", deletionTimestamp="2026-11-27T11:00:00Z")) is None


def leader_worker_set(owner: str, replicas: int = 1, size: int = 2,
                      gpus: int = 8) -> dict[str, Any]:
    """A multi-node serving LeaderWorkerSet: ``size`` pods of ``gpus`` GPUs per replica."""
    template = deployment(owner, gpus=gpus)["spec"]["template"]
    return {
        "apiVersion": "leaderworkerset.x-k8s.io/v1", "kind": "LeaderWorkerSet",
        "metadata": {"name": naming.serving_name(owner), "namespace": "team",
                     "ownerReferences": [{"kind": "LLMDeployment", "name": owner}]},
        "spec": {"replicas": replicas, "leaderWorkerTemplate": {
            "size": size, "leaderTemplate": template, "workerTemplate": template}},
    }


def test_a_leader_worker_set_commits_one_node_per_pod() -> None:
    """One 2-node group of 8 x H100 pods without pods yet: both H100 nodes are committed."""
    found = commitment_from_workload(leader_worker_set("big"))
    assert found is not None
    assert (found.replicas, found.gpus_per_replica) == (2, 8)
    assert dict(found.selector) == naming.selector_labels("big")
    inv = committed_inventory(NODES, [], commitments(leader_worker_set("big")), own=("team", "c"))
    assert free(inv) == {"h1": 0, "h2": 0}
    assert commitment_from_workload(leader_worker_set("big", replicas=0)) is None
