"""Garbage-collect shared model caches no LLMDeployment uses any more.

Ownership: a cache (PVC + download Job, labelled ``kubellm.io/cache-key``) belongs to no single
LLMDeployment — any number of them share it — so the Kubernetes garbage collector cannot remove it.
The operator does, on its periodic resync, per namespace:

- a cache is *in use* when an LLMDeployment's ``status.cache.key`` names it, or when a kubellm
  Deployment's pod template mounts its PVC (old pods still serving during a revision bump);
- an unused cache is remembered with the time it was first seen unused (in memory: no writes; an
  operator restart restarts the clock, which can only delay a deletion, never hasten it);
- once unused for ``grace_seconds`` (``kubellm run --cache-grace-period``, default 1 h), its Job
  and PVC are deleted. A deployment that needs the model again later downloads it again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from kubellm import naming
from kubellm.reconcile.ports import ClusterPort

log = logging.getLogger("kubellm.cachegc")



class CacheCollector:
    def __init__(self, cluster: ClusterPort, grace_seconds: float, clock: Callable[[], float]):
        self.cluster = cluster
        self.grace_seconds = grace_seconds
        self.clock = clock
        self._unused_since: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def in_use(self, namespace: str, llmds: Iterable[dict[str, Any]]) -> tuple[set[str], set[str]]:
        """(cache keys named by LLMDeployment statuses, PVC names mounted by kubellm pods)."""
        keys = {
            ((d.get("status") or {}).get("cache") or {}).get("key") for d in llmds
        }
        claims: set[str] = set()
        for dep in self.cluster.list("apps/v1", "Deployment", namespace,
                                     naming.MANAGED_SELECTOR):
            for vol in (((dep.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
                    "volumes") or []:
                claim = (vol.get("persistentVolumeClaim") or {}).get("claimName")
                if claim:
                    claims.add(claim)
        return {k for k in keys if k}, claims

    def collect(self, namespace: str, llmds: Iterable[dict[str, Any]]) -> list[str]:
        """Delete the caches of ``namespace`` unused for the grace period; returns what went."""
        keys, claims = self.in_use(namespace, list(llmds))
        now = self.clock()
        removed: list[str] = []
        # list items carry no kind/apiVersion: remember them as (order, api_version, kind, name)
        caches: dict[str, list[tuple[int, str, str, str]]] = {}
        for order, (kind, api_version) in enumerate(
                (("Job", "batch/v1"), ("PersistentVolumeClaim", "v1"))):
            for obj in self.cluster.list(api_version, kind, namespace, naming.CACHE_SELECTOR):
                meta = obj["metadata"]
                if meta.get("deletionTimestamp"):
                    continue  # already going (e.g. its namespace is being deleted)
                key = meta["labels"][naming.LABEL_CACHE_KEY]
                caches.setdefault(key, []).append((order, api_version, kind, meta["name"]))
        for key, objs in sorted(caches.items()):
            mounted = any(kind == "PersistentVolumeClaim" and name in claims
                          for _, _, kind, name in objs)
            marker = (namespace, key)
            if key in keys or mounted:
                with self._lock:
                    self._unused_since.pop(marker, None)
                continue
            with self._lock:
                since = self._unused_since.setdefault(marker, now)
            if now - since < self.grace_seconds:
                continue
            for _, api_version, kind, name in sorted(objs):  # the Job before its PVC
                self.cluster.delete(api_version, kind, name, namespace)
                removed.append(f"{kind}/{name}")
            log.info("cache %s/%s unused for %.0fs: deleted %s", namespace, key, now - since,
                     ", ".join(removed))
            with self._lock:
                self._unused_since.pop(marker, None)
        return removed
