"""One operator shard's node pool: the nodes its deployments are sized for and scheduled on.

``kubellm run --shard-selector`` gives an operator the LLMDeployments one label selector matches;
``--shard-node-selector`` gives it the GPU nodes of its own: every deployment it reconciles is
sized against those nodes only and its pods carry them as ``nodeSelector``, so two shards never
promise the same GPUs (each GPU ledger is in one process and sees only its own promises).
docs/sharding.md says how to split a cluster.
"""

from __future__ import annotations

from kubellm.api.v1alpha1 import LLMDeployment
from kubellm.errors import SpecError

NodePool = tuple[tuple[str, str], ...]  # sorted (label, value) pairs; () = every node


def in_node_pool(llmd: LLMDeployment, pool: NodePool) -> LLMDeployment:
    """``llmd`` with the pool's labels added to its ``spec.nodeSelector`` (a copy; the object
    in the cluster is never changed). A ``SpecError`` when the spec asks for other nodes."""
    if not pool:
        return llmd
    own = dict(llmd.spec.node_selector or {})
    for key, value in pool:
        if own.get(key, value) != value:
            raise SpecError(
                f"spec.nodeSelector.{key}",
                f"is {own[key]!r}, but this operator shard serves only nodes with "
                f"{key}={value}",
                "remove it, or give the deployment the shard label of the operator serving "
                "that node pool")
    spec = llmd.spec.model_copy(update={"node_selector": {**own, **dict(pool)}})
    return llmd.model_copy(update={"spec": spec})
