"""Read-through cache of watched objects in front of ``KubeCluster`` (an informer, by hand).

The operator already watches its LLMDeployments and its own children (kopf event handlers); those
events feed ``CachingCluster.observe``. ``get`` of a watched kind answers from that store and
falls back to the apiserver on a miss (so a store that has not seen an object yet is never taken
as "the object does not exist"). Writes go through to the apiserver and their responses update
the store (``write-through``), and a watch event never replaces a newer resourceVersion — so the
next reconcile sees what was just written and makes no second write.

Eventual consistency is fine for a level-triggered reconciler: a stale hit can at worst cause one
redundant (idempotent) server-side apply, and the watch event that follows requeues the object.
Nodes, Pods and kubellm's serving Deployments (the GPU inventory and its commitments, read
cluster-wide) come from ``informers`` instead (``kubellm.k8s.informer``: list once, then watch,
trimmed views): ``list`` of such a kind, for all namespaces and with exactly the informer's label
selector, answers from it once it has synced.

Hand-written because the kubernetes client has no informer for Python; ~80 lines.
"""

from __future__ import annotations

import threading
from typing import Any

from kubellm.k8s.cluster import KubeCluster
from kubellm.k8s.informer import Informer

Key = tuple[str, str | None, str]


def _rv(obj: dict[str, Any]) -> int | None:
    value = (obj.get("metadata") or {}).get("resourceVersion")
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


class CachingCluster:
    """A ``ClusterPort``: ``KubeCluster`` plus a store for ``kinds``."""

    def __init__(self, cluster: KubeCluster, kinds: set[str],
                 informers: dict[str, Informer] | None = None) -> None:
        self.cluster = cluster
        self.kinds = set(kinds)
        self.informers = dict(informers or {})
        self._store: dict[Key, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    # ---- the store ---------------------------------------------------------------------
    def observe(self, kind: str, obj: dict[str, Any], deleted: bool = False) -> None:
        """Record a watch event (or a write response) unless the store holds something newer."""
        meta = obj.get("metadata") or {}
        key = (kind, meta.get("namespace"), meta.get("name", ""))
        with self._lock:
            if deleted:
                self._store.pop(key, None)
                return
            old = self._store.get(key)
            new_rv, old_rv = _rv(obj), (_rv(old) if old is not None else None)
            if old is not None and new_rv is not None and old_rv is not None and new_rv < old_rv:
                return
            self._store[key] = obj

    def forget(self, kind: str, name: str, namespace: str | None) -> None:
        with self._lock:
            self._store.pop((kind, namespace, name), None)

    def cached(self, kind: str, name: str, namespace: str | None) -> dict[str, Any] | None:
        with self._lock:
            return self._store.get((kind, namespace, name))

    # ---- ClusterPort -------------------------------------------------------------------
    def get(self, api_version: str, kind: str, name: str, namespace: str | None) -> (
        dict[str, Any] | None
    ):
        if kind in self.kinds:
            hit = self.cached(kind, name, namespace)
            if hit is not None:
                self.hits += 1
                return hit
            self.misses += 1
        obj = self.cluster.get(api_version, kind, name, namespace)
        if obj is not None and kind in self.kinds:
            self.observe(kind, obj)
        return obj

    def list(self, api_version: str, kind: str, namespace: str | None = None,
             label_selector: str | None = None) -> list[dict[str, Any]]:
        informer = self.informers.get(kind)
        if (informer is not None and namespace is None
                and label_selector == informer.label_selector and informer.synced.is_set()):
            return informer.items()
        return self.cluster.list(api_version, kind, namespace, label_selector)

    def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        return self.cluster.secret_value(namespace, name, key)

    def apply(self, manifest: dict[str, Any], live: dict[str, Any] | bool | None = False) -> (
        tuple[str | None, dict[str, Any] | None]
    ):
        meta = manifest["metadata"]
        if live is False:
            live = self.get(manifest["apiVersion"], manifest["kind"], meta["name"],
                            meta.get("namespace"))
        why, result = self.cluster.apply(manifest, live)
        if why is not None and result is not None and manifest["kind"] in self.kinds:
            self.observe(manifest["kind"], result)
        return why, result

    def merge_patch(self, api_version: str, kind: str, name: str, namespace: str | None,
                    patch: dict[str, Any], subresource: str | None = None) -> dict[str, Any]:
        result = self.cluster.merge_patch(api_version, kind, name, namespace, patch, subresource)
        if kind in self.kinds:
            self.observe(kind, result)
        return result

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None) -> bool:
        self.forget(kind, name, namespace)
        return self.cluster.delete(api_version, kind, name, namespace)

    def event(self, involved: dict[str, Any], type_: str, reason: str, message: str) -> None:
        self.cluster.event(involved, type_, reason, message)
