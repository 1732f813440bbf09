"""An in-memory ``ClusterPort`` for the reconcile and shell tests: objects by (kind, namespace,
name), every write recorded as a short string, applies diffed with the real adapter's
``kubellm.k8s.diff`` (hash annotation, drift), list filtered by kind and namespace."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from kubellm.k8s.diff import apply_reason, with_hash

Key = tuple[str, str | None, str]


@dataclass
class FakeCluster:
    objects: dict[Key, dict[str, Any]] = field(default_factory=dict)
    writes: list[str] = field(default_factory=list)
    events: list[tuple[str, str, str]] = field(default_factory=list)
    rv: int = 0

    def put(self, obj: dict[str, Any]) -> None:
        meta = obj["metadata"]
        self.rv += 1
        meta["resourceVersion"] = str(self.rv)
        self.objects[(obj["kind"], meta.get("namespace"), meta["name"])] = obj

    def get(self, api_version: str, kind: str, name: str, namespace: str | None) -> (
        dict[str, Any] | None
    ):
        obj = self.objects.get((kind, namespace, name))
        return copy.deepcopy(obj) if obj is not None else None

    def list(self, api_version: str, kind: str, namespace: str | None = None,
             label_selector: str | None = None) -> list[dict[str, Any]]:
        return [copy.deepcopy(o) for (k, ns, _), o in sorted(self.objects.items(),
                key=lambda kv: str(kv[0])) if k == kind and (namespace is None or ns == namespace)
                and matches(o, label_selector)]

    def secret_value(self, namespace: str, name: str, key: str) -> str | None:
        return None

    def apply(self, manifest: dict[str, Any], live: dict[str, Any] | bool | None = False) -> (
        tuple[str | None, dict[str, Any] | None]
    ):
        desired = with_hash(manifest)
        meta = desired["metadata"]
        current = self.objects.get((desired["kind"], meta.get("namespace"), meta["name"]))
        why = apply_reason(desired, current)
        if why is None:
            return None, copy.deepcopy(current)
        self.writes.append(f"apply {desired['kind']}/{meta['name']}")
        merged = copy.deepcopy(current) if current else {}
        merged.update(copy.deepcopy(desired))
        if current and "status" in current:
            merged["status"] = copy.deepcopy(current["status"])
        merged["metadata"].setdefault("uid", f"uid-{meta['name']}")
        self.put(merged)
        return why, copy.deepcopy(merged)

    def merge_patch(self, api_version: str, kind: str, name: str, namespace: str | None,
                    patch: dict[str, Any], subresource: str | None = None) -> dict[str, Any]:
        self.writes.append(f"patch{'/' + subresource if subresource else ''} {kind}/{name}")
        obj = self.objects[(kind, namespace, name)]
        _merge(obj, copy.deepcopy(patch))
        self.put(obj)
        return copy.deepcopy(obj)

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None) -> bool:
        self.writes.append(f"delete {kind}/{name}")
        return self.objects.pop((kind, namespace, name), None) is not None

    def event(self, involved: dict[str, Any], type_: str, reason: str, message: str) -> None:
        self.writes.append(f"event {reason}")
        self.events.append((type_, reason, message))

    # helpers for tests
    def body(self, name: str, namespace: str = "team") -> dict[str, Any]:
        return copy.deepcopy(self.objects[("LLMDeployment", namespace, name)])

    def set_status(self, kind: str, name: str, status: dict[str, Any],
                   namespace: str = "team") -> None:
        self.objects[(kind, namespace, name)]["status"] = status


def matches(obj: dict[str, Any], selector: str | None) -> bool:
    """An equality-based label selector as the apiserver reads it: ``k=v`` and ``k`` (exists),
    comma-separated, all of them."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for term in filter(None, (selector or "").split(",")):
        key, sep, value = term.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


def complete_job(cluster: FakeCluster, job: str, namespace: str = "team") -> None:
    cluster.set_status("Job", job, {"succeeded": 1, "conditions": [
        {"type": "Complete", "status": "True"}]}, namespace)


def ready(cluster: FakeCluster, name: str, n: int = 1, namespace: str = "team") -> None:
    """The Deployment's controller rolled ``n`` replicas of its current spec out, all ready."""
    generation = cluster.objects[("Deployment", namespace, name)]["metadata"].get("generation")
    cluster.set_status("Deployment", name, {
        "replicas": n, "readyReplicas": n, "updatedReplicas": n,
        "observedGeneration": generation or 1}, namespace)


def condition(cluster: FakeCluster, name: str, type_: str,
              namespace: str = "team") -> tuple[str, str]:
    for c in cluster.body(name, namespace)["status"]["conditions"]:
        if c["type"] == type_:
            return c["status"], c["reason"]
    raise AssertionError(f"{name} has no {type_} condition")
