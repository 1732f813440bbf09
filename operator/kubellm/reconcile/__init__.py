"""Reconcile LLMDeployments: observe -> plan -> apply -> status (no kopf import).

Public API: ``Reconciler`` (``reconcile(body) -> Outcome``), ``Settings``, ``Outcome``,
``ClusterPort`` / ``FactsPort`` (what it needs from outside); ``reconcile.status`` (pure status
computations) and ``reconcile.cachegc.CacheCollector`` (shared cache garbage collection).
"""

from kubellm.reconcile.core import Outcome, Reconciler, Settings
from kubellm.reconcile.ports import ClusterPort, FactsPort

__all__ = ["ClusterPort", "FactsPort", "Outcome", "Reconciler", "Settings"]
