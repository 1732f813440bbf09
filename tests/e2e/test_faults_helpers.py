"""Helpers for the fault and sandbox-fuzz e2e tests (issue 12): extra kwok GPU nodes, a rollout
that knows what every LLMDeployment should become, the invariants checked after each fault, and
the records ``benchmarks/hardening_report.py`` prints.

(Named test_faults_helpers so it stays within the fault tests' files; it holds no tests.)

Invariants (:meth:`Rollout.check`), after convergence:

- every LLMDeployment applied and not deleted exists (none lost) and is in its expected state:
  Ready, or refused with the expected reason; ``observedGeneration == generation``;
- no user field changed: ``spec`` and ``metadata.generation`` are what the user's last apply
  left, and no field manager but the user's owns a field under ``spec``;
- no duplicate or orphaned objects: one Deployment and one Service per LLMDeployment at most,
  each owned (ownerReference uid) by a live LLMDeployment, none for one that never got past a
  refusal; one PVC and one Job per cache key, each key used by a live LLMDeployment, and every
  Ready one's key present;
- serving pods: as many Running, bound pods as the Deployment's replicas, none Pending;
- no GPU double-booked: per node the GPU requests of its non-terminated pods <= allocatable, and
  the GPUs the Ready LLMDeployments were sized for fit the pool.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from test_operator_helpers import wait_until

from kubellm.sandbox import nodes

USER_MANAGER = "e2e-user"
GPU = "nvidia.com/gpu"
CACHE_KEY = "kubellm.io/cache-key"
COMPONENT = "app.kubernetes.io/component"
INSTANCE = "app.kubernetes.io/instance"


# ---------------------------------------------------------------- records for the report


def records_dir() -> Path:
    """Where the e2e hardening tests leave their figures (read by hardening_report.py)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "kubellm" / "hardening"


def write_record(name: str, data: dict[str, Any]) -> Path:
    path = records_dir() / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**data, "recorded_at": time.time()}, indent=2, default=str))
    return path


# ---------------------------------------------------------------- extra kwok nodes


def add_gpu_nodes(cluster: Any, pool: str, count: int, product: str, gpus: int,
                  memory_mib: int) -> list[str]:
    """``count`` kwok nodes of ``gpus`` x ``product`` (pool label kubellm.io/sandbox-pool),
    created in the running sandbox and Ready when this returns."""
    text = yaml.safe_dump({"pools": [{"name": pool, "count": count,
                                      "gpu": {"product": product, "count": gpus,
                                              "memoryMiB": memory_mib},
                                      "cpu": "64", "memory": "512Gi"}]})
    manifests = nodes.node_manifests(nodes.parse_pools(text))
    cluster.kubectl("apply", "--server-side", "--field-manager=kubellm-sandbox", "-f", "-",
                    input=yaml.safe_dump_all(manifests))
    names = [m["metadata"]["name"] for m in manifests]

    def ready() -> bool:
        found = json.loads(cluster.kubectl("get", "nodes", "-l",
                                           f"{nodes.POOL_LABEL}={pool}", "-o", "json").stdout)
        return sum(1 for n in found["items"] for c in n["status"].get("conditions") or []
                   if c["type"] == "Ready" and c["status"] == "True") >= count

    wait_until(ready, 90, what=f"{count} {pool} nodes Ready")
    return names


def delete_nodes(cluster: Any, pool: str) -> None:
    cluster.kubectl("delete", "nodes", "-l", f"{nodes.POOL_LABEL}={pool}", "--wait=false",
                    check=False)


# ---------------------------------------------------------------- reading the namespace


def snapshot(cluster: Any, ns: str) -> dict[str, list[dict[str, Any]]]:
    """Every object the checks look at, in one list call: kind -> items."""
    found = json.loads(cluster.kubectl(
        "get", "llmd,deployments,services,jobs,pvc,pods", "-n", ns, "-o", "json").stdout)
    out: dict[str, list[dict[str, Any]]] = {k: [] for k in (
        "LLMDeployment", "Deployment", "Service", "Job", "PersistentVolumeClaim", "Pod")}
    for obj in found["items"]:
        out.setdefault(obj["kind"], []).append(obj)
    return out


def cond(obj: dict[str, Any], type_: str) -> tuple[str, str] | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == type_:
            return str(c.get("status")), str(c.get("reason"))
    return None


def owner_uid(obj: dict[str, Any]) -> str | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("kind") == "LLMDeployment":
            return str(ref["uid"])
    return None


def gpu_request(pod: dict[str, Any]) -> int:
    total = 0
    for c in pod["spec"].get("containers") or []:
        res = c.get("resources") or {}
        value = (res.get("requests") or {}).get(GPU) or (res.get("limits") or {}).get(GPU) or 0
        total += int(value)
    return total


def spec_managers(obj: dict[str, Any]) -> set[str]:
    """Field managers that own something under ``spec`` of the main resource."""
    out = set()
    for entry in obj["metadata"].get("managedFields") or []:
        if entry.get("subresource") in ("status", "scale"):
            continue
        if "f:spec" in (entry.get("fieldsV1") or {}):
            out.add(str(entry.get("manager")))
    return out


# ---------------------------------------------------------------- the rollout


@dataclass
class Rollout:
    """The LLMDeployments a test applied, what each should become, and the checks.

    ``models``: repo -> (extra spec, whether the current policy allows it). ``pool_nodes``:
    the nodes the GPU pool consists of (for the GPU checks).
    """

    cluster: Any
    ns: str
    pool: str
    docs: dict[str, dict[str, Any]] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    allowed: dict[str, bool] = field(default_factory=dict)  # repo -> allowed by the policy now
    generation: dict[str, int] = field(default_factory=dict)
    spec: dict[str, dict[str, Any]] = field(default_factory=dict)  # as read after the apply
    ever_allowed: set[str] = field(default_factory=set)  # repos some policy allowed
    checks: int = 0

    # -- user actions
    def apply(self, docs: list[dict[str, Any]], timeout: float = 120) -> None:
        """Server-side apply as the user (field manager e2e-user), then note the generations."""
        for d in docs:
            self.docs[d["metadata"]["name"]] = d
            self.deleted.discard(d["metadata"]["name"])
        self.cluster.kubectl("apply", "--server-side", f"--field-manager={USER_MANAGER}",
                             "-f", "-", input=yaml.safe_dump_all(docs), timeout=timeout)
        names = {d["metadata"]["name"] for d in docs}
        found = json.loads(self.cluster.kubectl("get", "llmd", "-n", self.ns, "-o",
                                                "json").stdout)
        for obj in found["items"]:
            if obj["metadata"]["name"] in names:
                self.generation[obj["metadata"]["name"]] = obj["metadata"]["generation"]
                self.spec[obj["metadata"]["name"]] = obj["spec"]

    def delete(self, names: list[str]) -> None:
        self.cluster.kubectl("delete", "llmd", "-n", self.ns, "--wait=false", *names)
        self.deleted.update(names)
        for n in names:
            self.generation.pop(n, None)

    def set_allowed(self, allowed: dict[str, bool]) -> None:
        """What the LicensePolicy now allows (repo -> bool)."""
        self.allowed.update(allowed)
        self.ever_allowed |= {repo for repo, ok in allowed.items() if ok}

    def live_names(self) -> set[str]:
        return set(self.docs) - self.deleted

    def expected(self, name: str) -> str:
        repo = self.docs[name]["spec"]["model"]["repo"]
        return "Ready" if self.allowed[repo] else "LicenseDenied"

    # -- convergence
    def state_of(self, obj: dict[str, Any]) -> str:
        ready = cond(obj, "Ready")
        if ready is None:
            return "none"
        return "Ready" if ready[0] == "True" else ready[1]

    def pending(self, snap: dict[str, list[dict[str, Any]]]) -> list[str]:
        """What is not converged yet (empty when it is): a short list of reasons."""
        out = []
        live = {o["metadata"]["name"]: o for o in snap["LLMDeployment"]}
        uids = {o["metadata"]["uid"] for o in live.values()}
        for name in sorted(self.live_names()):
            obj = live.get(name)
            if obj is None:
                out.append(f"{name}: missing")
                continue
            state, want = self.state_of(obj), self.expected(name)
            st = obj.get("status") or {}
            if state != want or st.get("observedGeneration") != obj["metadata"]["generation"]:
                out.append(f"{name}: {state} (want {want})")
        for name in self.deleted & set(live):
            out.append(f"{name}: deleted but still there")
        for kind in ("Deployment", "Service"):
            for child in snap[kind]:
                if owner_uid(child) not in uids:
                    out.append(f"{kind} {child['metadata']['name']}: owner gone (GC pending)")
        for dep in snap["Deployment"]:
            s, want = dep.get("status") or {}, dep["spec"].get("replicas", 1)
            if (s.get("readyReplicas") or 0) != want or (s.get("replicas") or 0) != want or \
                    s.get("updatedReplicas", want) != want:
                out.append(f"Deployment {dep['metadata']['name']}: rolling")
        for pod in snap["Pod"]:
            if pod["metadata"].get("labels", {}).get(COMPONENT) == "server" and \
                    pod["status"].get("phase") != "Running":
                out.append(f"pod {pod['metadata']['name']}: {pod['status'].get('phase')}")
        return out

    def wait_converged(self, timeout: float) -> float:
        """Poll until converged; seconds it took. Fails with what is still not converged."""
        began = time.monotonic()
        last: list[str] = []
        while True:
            try:
                snap = snapshot(self.cluster, self.ns)
                last = self.pending(snap)
            except Exception as exc:  # the apiserver restarting
                last = [repr(exc)]
            if not last:
                return time.monotonic() - began
            if time.monotonic() - began > timeout:
                raise AssertionError(f"not converged after {timeout:.0f}s ({len(last)} left): "
                                     f"{last[:12]}")
            time.sleep(1.0)

    # -- invariants
    def check(self, gpu_nodes: list[dict[str, Any]]) -> dict[str, int]:
        """Assert every invariant of the module docstring; the object counts."""
        snap = snapshot(self.cluster, self.ns)
        live = {o["metadata"]["name"]: o for o in snap["LLMDeployment"]}
        assert set(live) == self.live_names(), (
            f"lost: {sorted(self.live_names() - set(live))}, "
            f"not deleted: {sorted(set(live) - self.live_names())}")
        by_uid = {o["metadata"]["uid"]: o for o in live.values()}
        problems: list[str] = []
        for name, obj in live.items():
            meta, st = obj["metadata"], obj.get("status") or {}
            if meta["generation"] != self.generation[name]:
                problems.append(f"{name}: generation {meta['generation']} != "
                                f"{self.generation[name]} (someone wrote the spec)")
            if not contains(obj["spec"], self.docs[name]["spec"]):
                problems.append(f"{name}: spec {obj['spec']} lost what the user applied")
            if obj["spec"] != self.spec[name]:
                problems.append(f"{name}: spec {obj['spec']} != {self.spec[name]} after apply")
            if spec_managers(obj) - {USER_MANAGER}:
                problems.append(f"{name}: spec fields owned by {spec_managers(obj)}")
            if st.get("observedGeneration") != meta["generation"]:
                problems.append(f"{name}: observedGeneration {st.get('observedGeneration')}")
            if self.state_of(obj) != self.expected(name):
                problems.append(f"{name}: {self.state_of(obj)} != {self.expected(name)}")
        # serving children: one Deployment + one Service per LLMDeployment, owned, none orphaned
        deps: dict[str, dict[str, Any]] = {}
        for kind in ("Deployment", "Service"):
            owners: dict[str, list[str]] = {}
            for child in snap[kind]:
                uid = owner_uid(child)
                if uid not in by_uid:
                    problems.append(f"orphaned {kind} {child['metadata']['name']}")
                    continue
                owners.setdefault(by_uid[uid]["metadata"]["name"], []).append(
                    child["metadata"]["name"])
                if kind == "Deployment":
                    deps[by_uid[uid]["metadata"]["name"]] = child
            problems += [f"{len(v)} {kind}s for {k}: {v}" for k, v in owners.items() if len(v) > 1]
            for name in live:
                want = self.expected(name)
                if want == "Ready" and name not in owners:
                    problems.append(f"{name} is Ready without a {kind}")
                if want != "Ready" and kind == "Deployment" and name in owners:
                    if deps[name]["spec"].get("replicas") != 0:
                        problems.append(f"{name} refused but its Deployment has replicas")
                    if self.docs[name]["spec"]["model"]["repo"] not in self.ever_allowed:
                        problems.append(f"{name} was never allowed but has a Deployment")
        # caches: one PVC + one Job per key, each in use, every Ready one's there
        cache = {name: (o.get("status") or {}).get("cache") or {} for name, o in live.items()}
        claims = {v["persistentVolumeClaim"]["claimName"] for d in snap["Deployment"]
                  for v in d["spec"]["template"]["spec"].get("volumes") or []
                  if v.get("persistentVolumeClaim")}
        # a cache is in use while a live LLMDeployment names its PVC or Job, or a serving
        # Deployment (scaled to 0 after a denial too) mounts its PVC
        refs = {c.get("pvcName") for c in cache.values()} | claims | {
            c.get("jobName") for c in cache.values()}
        in_use = {o["metadata"].get("labels", {}).get(CACHE_KEY) for kind in
                  ("PersistentVolumeClaim", "Job") for o in snap[kind]
                  if o["metadata"]["name"] in refs}
        for kind, ref in (("PersistentVolumeClaim", "pvcName"), ("Job", "jobName")):
            keys: dict[str, int] = {}
            for obj in snap[kind]:
                key = obj["metadata"].get("labels", {}).get(CACHE_KEY, "?")
                keys[key] = keys.get(key, 0) + 1
            problems += [f"{n} {kind}s for cache key {k}" for k, n in keys.items() if n != 1]
            problems += [f"{kind} of cache key {k} used by nothing" for k in set(keys) - in_use]
            names = {o["metadata"]["name"] for o in snap[kind]}
            problems += [f"{name}: its {kind} {cache[name].get(ref)} is missing"
                         for name in live if self.expected(name) == "Ready"
                         and cache[name].get(ref) not in names]
        # serving pods and GPUs
        pods = [p for p in snap["Pod"] if p["metadata"].get("labels", {}).get(COMPONENT)
                == "server" and not p["metadata"].get("deletionTimestamp")]
        per_instance: dict[str, int] = {}
        for p in pods:
            if p["status"].get("phase") != "Running" or not p["spec"].get("nodeName"):
                problems.append(f"serving pod {p['metadata']['name']} "
                                f"{p['status'].get('phase')} on {p['spec'].get('nodeName')}")
            inst = p["metadata"]["labels"].get(INSTANCE, "?")
            per_instance[inst] = per_instance.get(inst, 0) + 1
        for name, dep in deps.items():
            if per_instance.get(name, 0) != dep["spec"].get("replicas", 1):
                problems.append(f"{name}: {per_instance.get(name, 0)} serving pods, Deployment "
                                f"wants {dep['spec'].get('replicas', 1)}")
        problems += gpu_problems(self.cluster, gpu_nodes, live.values())
        self.checks += 1
        assert not problems, f"{len(problems)} invariant violations: {problems[:20]}"
        return {"llmdeployments": len(live), "deployments": len(snap["Deployment"]),
                "services": len(snap["Service"]), "pvcs": len(snap["PersistentVolumeClaim"]),
                "jobs": len(snap["Job"]), "serving_pods": len(pods),
                "ready": sum(1 for o in live.values() if self.state_of(o) == "Ready"),
                "lost": len(self.live_names() - set(live))}


def contains(live: Any, applied: Any) -> bool:
    """Every field the user applied is in ``live`` with the same value (defaults aside)."""
    if isinstance(applied, dict):
        return isinstance(live, dict) and all(k in live and contains(live[k], v)
                                              for k, v in applied.items())
    return bool(live == applied)


def gpu_problems(cluster: Any, gpu_nodes: list[dict[str, Any]],
                 llmds: Any) -> list[str]:
    """GPU requests of the non-terminated pods bound to each node <= its allocatable, and the
    Ready deployments' sized GPUs within the pool's."""
    allocatable = {n["metadata"]["name"]: int(n["status"]["allocatable"].get(GPU, 0))
                   for n in gpu_nodes}
    found = json.loads(cluster.kubectl("get", "pods", "-A", "-o", "json").stdout)
    used: dict[str, int] = {}
    for p in found["items"]:
        node = p["spec"].get("nodeName")
        if node in allocatable and p["status"].get("phase") not in ("Succeeded", "Failed"):
            used[node] = used.get(node, 0) + gpu_request(p)
    out = [f"node {n}: {used[n]} GPUs requested > {allocatable[n]} allocatable"
           for n in used if used[n] > allocatable[n]]
    sized = 0
    for obj in llmds:
        st = obj.get("status") or {}
        if st.get("ready") == "True":
            sized += int((st.get("sizing") or {}).get("gpusPerReplica") or 0) * int(
                obj["spec"].get("replicas", 1))
    if sized > sum(allocatable.values()):
        out.append(f"Ready deployments hold {sized} GPUs > {sum(allocatable.values())} in pool")
    return out


def nodes_for(gpus: int, per_node: int) -> int:
    return max(1, math.ceil(gpus / per_node))
