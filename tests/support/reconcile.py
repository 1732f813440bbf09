"""A ``Reconciler`` with the real planner over an in-memory cluster with GPU nodes."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from kubellm.reconcile import Reconciler, Settings
from support.cluster import FakeCluster
from support.objects import facts_for, node

NOW = datetime(2026, 11, 27, 11, 0, tzinfo=UTC)


def make(cluster: FakeCluster | None = None, facts: Callable[..., Any] = facts_for,
         nodes: int = 2, **kwargs: Any) -> tuple[FakeCluster, Reconciler]:
    """``cluster`` (default: a new one with ``nodes`` 8 x L4 nodes) and a reconciler over it;
    snapshots are not reused between reconciles (inventory_ttl 0), so a test's change to the
    cluster is seen by the next one."""
    if cluster is None:
        cluster = FakeCluster()
        for i in range(nodes):
            cluster.put(node(f"l4-{i}"))
    kwargs.setdefault("now", lambda: NOW)
    settings = kwargs.pop("settings", Settings(inventory_ttl=0.0, policy_ttl=0.0))
    return cluster, Reconciler(cluster, facts, settings, **kwargs)


def run(cluster: FakeCluster, rec: Reconciler, name: str,
        namespace: str = "team") -> tuple[Any, list[str]]:
    """Reconcile ``name`` as it is in ``cluster``: its outcome and the writes it made."""
    before = len(cluster.writes)
    out = rec.reconcile(cluster.body(name, namespace))
    return out, cluster.writes[before:]
