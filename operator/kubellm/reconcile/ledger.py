"""The operator's GPU ledger: GPUs promised by plans decided but not yet held by bound pods.

First come, first served: the inventory a plan sizes against counts, besides the GPUs of bound
pods, the GPUs promised to other deployments (their serving workloads, and this ledger's
entries: ``kubellm.sizing.commitments``), leaving out everything of the deployment being
sized. ``decide`` runs inventory + plan + ledger entry under one lock (no API calls inside), so
two concurrent reconciles cannot both take the last GPUs. An entry is dropped when its plan is
refused (a live workload then speaks for what it holds) or the LLMDeployment is gone
(``release``); at start-up it is seeded from the LLMDeployments' status (``seed``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, TypeVar

from kubellm.runtimes import lws
from kubellm.sizing.catalog import GpuCatalog
from kubellm.sizing.commitments import (
    Commitment,
    commitment_from_status,
    commitment_from_workload,
    committed_inventory,
    merge_commitments,
)
from kubellm.sizing.types import Inventory

# The kinds that run serving pods, by kind: a Deployment, or a LeaderWorkerSet when one replica
# spans several nodes (its CRD may be missing: then KindNotServed, and nothing is created).
WORKLOAD_KINDS = {"Deployment": "apps/v1", lws.KIND: lws.API_VERSION}
Key = tuple[str, str]  # (namespace, LLMDeployment name)
Observed = tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]
P = TypeVar("P")


class GpuLedger:
    """``gpus``: the catalogue the nodes' GPU products are read in (None: the built-in one)."""

    def __init__(self, gpus: GpuCatalog | None = None) -> None:
        self._gpus = gpus
        self._entries: dict[Key, Commitment] = {}
        self._lock = threading.Lock()

    def decide(self, own: Key, observed: Observed, node_selector: dict[str, str] | None,
               plan: Callable[[Inventory], P]) -> tuple[P, bool]:
        """``plan(inventory)`` against the live inventory for ``own``, and its serving
        workload entered in the ledger, atomically. Returns the plan and whether ``own`` now
        holds fewer GPUs than before (someone waiting may fit)."""
        with self._lock:
            result = plan(self._inventory(own, observed, node_selector))
            return result, self._commit(own, result)

    def _inventory(self, own: Key, observed: Observed,
                   node_selector: dict[str, str] | None) -> Inventory:
        """Free GPUs are allocatable minus bound pods minus GPUs committed to *other*
        deployments; ``own``'s pods, workload and entry do not count, so a running deployment
        never sizes against itself; only nodes its ``spec.nodeSelector`` matches."""
        nodes, pods, deployments = observed
        commitments = merge_commitments(self._entries, deployments)
        return committed_inventory(nodes, pods, commitments, own, node_selector, self._gpus)

    def _commit(self, key: Key, plan: Any) -> bool:
        dep = next((o for o in plan.serving_objects if o.get("kind") in WORKLOAD_KINDS), None)
        found = commitment_from_workload(dep) if plan.deployable and dep else None
        old = self._entries.get(key)
        released = old is not None and old.replicas * old.gpus_per_replica > (
            found.replicas * found.gpus_per_replica if found else 0)
        if found is None:
            self._entries.pop(key, None)
        else:
            self._entries[key] = Commitment(
                namespace=key[0], owner=key[1], replicas=found.replicas,
                gpus_per_replica=found.gpus_per_replica, selector=found.selector,
                node_selector=found.node_selector, node_terms=found.node_terms)
        return released

    def entry(self, key: Key) -> Commitment | None:
        """What ``key`` is promised now (None: nothing)."""
        with self._lock:
            return self._entries.get(key)

    def seed(self, llmds: list[dict[str, Any]]) -> int:
        """Enter what each LLMDeployment's status says it was promised (Sized=True), so a
        restart does not hand GPUs of deployments still downloading to whoever is reconciled
        first. Returns the number of entries added."""
        added = 0
        with self._lock:
            for obj in llmds:
                found = commitment_from_status(obj)
                if found is not None and found.key not in self._entries:
                    self._entries[found.key] = found
                    added += 1
        return added

    def release(self, key: Key) -> bool:
        """The LLMDeployment is gone: its promised GPUs are free (True if it held any)."""
        with self._lock:
            return self._entries.pop(key, None) is not None
