"""Reconcile LLMDeployments: observe -> plan -> apply -> status (no kopf import).

Public API: ``Reconciler`` (``reconcile(body) -> Outcome``), ``Settings``, ``Outcome``,
``ClusterPort`` / ``FactsPort`` (what it needs from outside), ``collect_caches`` (shared cache GC).
"""

from kubellm.reconcile.core import Outcome, Reconciler, Settings
from kubellm.reconcile.ports import ClusterPort, FactsPort

__all__ = ["ClusterPort", "FactsPort", "Outcome", "Reconciler", "Settings"]
