"""In-memory ClusterPort and a scripted planner for the reconcile unit tests."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from kubellm import naming
from kubellm.errors import ModelNotFoundError
from kubellm.facts import ModelFacts
from kubellm.k8s.diff import apply_reason, with_hash
from kubellm.planner import Plan
from kubellm.sizing.types import Quant, SizingResult

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
                key=lambda kv: str(kv[0])) if k == kind and (namespace is None or ns == namespace)]

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


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if value is None:
            target.pop(key, None)
        elif isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


def llmd(name: str, repo: str = "Qwen/Qwen2.5-7B-Instruct", generation: int = 1,
         namespace: str = "team", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kubellm.io/v1alpha1",
        "kind": "LLMDeployment",
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}",
                     "generation": generation},
        "spec": {"model": {"repo": repo, **spec.pop("model", {})}, **spec},
    }


def facts_for(repo: str, revision: str = "main", **_: Any) -> ModelFacts:
    if repo.startswith("missing/"):
        raise ModelNotFoundError(f"{repo} does not exist on the Hub")
    sha = ("b" if revision != "main" else "a") * 40
    return ModelFacts(repo=repo, revision=revision, sha=sha, license="apache-2.0")


def decision(allowed: bool = True) -> Any:
    verdict = "Allowed" if allowed else "Denied"
    reasons = [SimpleNamespace(message="apache-2.0 is permissive" if allowed
                               else "research-only licence; policy requires commercial use")]
    status = {"class": "permissive" if allowed else "research-only", "decision": verdict,
              "allowed": allowed, "policy": "default"}
    return SimpleNamespace(allowed=allowed, decision=verdict, reasons=reasons,
                           to_status=lambda: status)


SIZED = SizingResult(fits=True, quant=Quant("none", 16, False), gpu_type="NVIDIA-L4",
                     gpus_per_replica=1, tensor_parallel_size=1, max_model_len=8192,
                     message="1 x NVIDIA-L4: 15.2 GiB weights + 3.1 GiB KV of 19.9 GiB")
UNFIT = SizingResult(fits=False, quant=Quant("none", 16, False),
                     message="needs 141.2 GiB per replica; the largest option is 8 x 80 GiB = 0")


@dataclass
class ScriptedPlanner:
    """plan_deployment's contract: names from the repo/revision, license/fit per repo."""

    denied: set[str] = field(default_factory=set)
    unfit: set[str] = field(default_factory=set)
    calls: int = 0

    def __call__(self, llmd: Any, facts: ModelFacts, policies: Any, inventory: Any,
                 *, cache_complete: bool | None = None, image: str | None = None,
                 hub_endpoint: str | None = None, today: Any = None) -> Plan:
        self.calls += 1
        name, ns = llmd.metadata.name, llmd.metadata.namespace
        key = f"k{facts.sha[:6] if facts.sha else 'none'}{abs(hash(facts.repo)) % 1000:03d}"
        allowed = facts.repo not in self.denied
        fits = facts.repo not in self.unfit
        base = Plan(name=name, namespace=ns, facts=facts, license=decision(allowed),
                    sizing=SIZED if fits else UNFIT, runtime="vllm")
        if not allowed:
            return _replace(base, refusal_reason="LicenseDenied", refusal="denied")
        if not fits:
            return _replace(base, refusal_reason="DoesNotFit", refusal=UNFIT.message)
        labels = {"app.kubernetes.io/managed-by": "kubellm", "kubellm.io/cache-key": key}
        pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
               "metadata": {"name": f"kubellm-cache-{key}", "namespace": ns, "labels": labels},
               "spec": {"accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "20Gi"}}}}
        job = {"apiVersion": "batch/v1", "kind": "Job",
               "metadata": {"name": f"kubellm-dl-{key}", "namespace": ns, "labels": labels},
               "spec": {"template": {"spec": {"containers": [
                   {"name": "download", "image": "kubellm",
                    "args": ["download", facts.repo, facts.sha]}]}}}}
        sel = {"kubellm.io/deployment": name}
        name = naming.serving_name(name)
        dep = {"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": name, "namespace": ns, "labels": sel},
               "spec": {"replicas": llmd.spec.replicas, "selector": {"matchLabels": sel},
                        "template": {"metadata": {"labels": sel}, "spec": {"containers": [
                            {"name": "server", "image": "vllm",
                             "args": ["--model", facts.repo, "--revision", facts.sha]}],
                            "volumes": [{"name": "cache", "persistentVolumeClaim": {
                                "claimName": f"kubellm-cache-{key}"}}]}}}}
        svc = {"apiVersion": "v1", "kind": "Service",
               "metadata": {"name": name, "namespace": ns, "labels": sel},
               "spec": {"selector": sel, "ports": [{"name": "http", "port": 8000}]}}
        serving = (dep, svc)
        return _replace(base, cache_objects=(pvc, job), serving_objects=serving,
                        objects=(pvc, job, *serving), cache_key=key)


def _replace(plan: Plan, **changes: Any) -> Plan:
    from dataclasses import replace

    return replace(plan, **changes)
