"""The benchmark's baseline: a plain client that writes exactly what kubellm would, as fast as the
apiserver takes it, with no decisions left to make.

``plan_mix`` runs kubellm's own pure planner (``kubellm.planner.plan_deployment``, the function
``kubellm plan`` and the operator call) over the mix, against the sandbox's node pools with the
operator's default settings (download image, HF_ENDPOINT), and ``final_status`` builds the status
the operator writes at the end from kubellm's own status functions. ``Baseline.run`` then, from a
thread pool, creates the LLMDeployments and server-side applies (field manager ``kubellm``,
hash-annotated as ``kubellm.k8s`` does) per namespace and cache key one PVC + download Job; when a
Job completes (kwok completes its pod, the Job controller the Job) the Deployment + Service of each
of its users (owner reference as the operator sets it); when a Deployment has a ready replica, one
status write. A refused deployment gets its one status write right after it is created. So its
writes are the minimum: children + one status write per deployment.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from operator_mix import Mix
from operator_watch import READY, Expected, Observer, job_succeeded


@dataclass(frozen=True)
class Planned:
    """One deployment of the mix with kubellm's plan for it."""

    index: int
    manifest: dict[str, Any]
    plan: Any  # kubellm.planner.Plan
    facts: Any  # kubellm.facts.ModelFacts

    @property
    def key(self) -> tuple[str, str]:
        return self.plan.namespace, self.plan.name

    @property
    def cache(self) -> tuple[str, str | None]:
        return self.plan.namespace, self.plan.cache_key

    def expected(self, generation: int = 0) -> Expected:
        """Ready, or the refusal the operator's status must show."""
        if self.plan.deployable:
            return Expected(READY, None, generation)
        st = final_status(self, generation or 1, None)
        return Expected(st["ready"], st.get("reason"), generation)


def plan_mix(mix: Mix, manifests: list[dict[str, Any]], inventory: Any, *, flipped: bool = False,
             hub_endpoint: str | None = None) -> list[Planned]:
    """kubellm's plan of every manifest (facts from the Hub at HF_ENDPOINT, memoised)."""
    from kubellm.api.v1alpha1 import LicensePolicy, LLMDeployment
    from kubellm.modelinfo import FactsResolver
    from kubellm.planner import plan_deployment

    resolver = FactsResolver()
    policies = [LicensePolicy.model_validate(mix.policy(flipped=flipped))]
    out = []
    for i, manifest in enumerate(manifests):
        llmd = LLMDeployment.model_validate(manifest)
        model = llmd.spec.model
        facts = resolver.resolve(model.repo, model.revision, declared=model, gguf_file=model.file)
        plan = plan_deployment(llmd, facts, policies, inventory, hub_endpoint=hub_endpoint)
        out.append(Planned(i, manifest, plan, facts))
    return out


def final_status(p: Planned, generation: int, deployment: dict[str, Any] | None) -> dict[str, Any]:
    """The status kubellm's reconcile writes once everything is done (cache downloaded, the
    Deployment ``deployment`` live), from kubellm's own pure status functions."""
    from kubellm import conditions as cond
    from kubellm.api.v1alpha1 import LLMDeploymentStatus
    from kubellm.reasons import Reason
    from kubellm.reconcile import status

    plan = p.plan
    pvc = next((o for o in plan.cache_objects if o["kind"] == "PersistentVolumeClaim"), None)
    job = next((o for o in plan.cache_objects if o["kind"] == "Job"), None)
    service = next((o for o in plan.serving_objects if o["kind"] == "Service"), None)
    if plan.deployable:
        cache_state: status.CacheState = ("True", Reason.DOWNLOADED,
                                          f"Job {job['metadata']['name'] if job else ''} completed")
    else:
        cache_state = ("Unknown", Reason.NOT_PLANNED, plan.refusal or "")
    wants = status.wants(plan, cache_state)
    stages = [*wants, status.available(deployment, wants)]
    summary = cond.summarize(stages)
    conditions = cond.merge([], [*stages, summary], generation=generation, now=datetime.now(UTC))
    extra = status.status_fields(plan, p.facts, pvc, job, deployment,
                                 service if deployment is not None else None)
    model = LLMDeploymentStatus.model_validate({
        "observedGeneration": generation,
        "conditions": [c.model_dump(by_alias=True, mode="json") for c in conditions],
        **{k: v for k, v in extra.items() if v is not None},
        "ready": summary.status, "reason": cond.camel_reason(summary.reason)})
    wire: dict[str, Any] = model.dump()
    return wire


def minimum_writes(planned: list[Planned]) -> int:
    """Children (one PVC + Job per namespace and cache key, Deployment + Service per deployable
    deployment) + one status write per deployment."""
    caches = {p.cache for p in planned if p.plan.deployable}
    serving = sum(len(p.plan.serving_objects) for p in planned if p.plan.deployable)
    return 2 * len(caches) + serving + len(planned)


class Baseline:
    """The plain client (see the module docstring); ``writes`` counts what it sent."""

    def __init__(self, api_client: Any, observer: Observer, planned: list[Planned],
                 workers: int = 16) -> None:
        from kubernetes.dynamic import DynamicClient

        self.dynamic = DynamicClient(api_client)  # type: ignore[no-untyped-call]
        self.observer = observer
        self.planned = planned
        self.by_key = {p.key: p for p in planned}
        self.job_cache = {(p.plan.namespace, o["metadata"]["name"]): p.cache
                          for p in planned for o in p.plan.cache_objects if o["kind"] == "Job"}
        self.pool = concurrent.futures.ThreadPoolExecutor(workers)
        self.lock = threading.Lock()
        self.uids: dict[tuple[str, str], str] = {}
        self.users: dict[tuple[str, str | None], list[Planned]] = defaultdict(list)
        self.cache_claimed: set[tuple[str, str | None]] = set()
        self.cache_done: set[tuple[str, str | None]] = set()
        self.served: set[tuple[str, str]] = set()
        self.status_done: set[tuple[str, str]] = set()
        self.writes = 0
        self.errors: list[str] = []
        self.last: dict[str, float] = {}  # kind | status | create -> time of its last write
        self._resources: dict[tuple[str, str], Any] = {}

    def _resource(self, api_version: str, kind: str) -> Any:
        key = (api_version, kind)
        if key not in self._resources:
            self._resources[key] = self.dynamic.resources.get(api_version=api_version, kind=kind)
        return self._resources[key]

    def _write(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        """One request; ``what`` (a kind, ``status`` or ``create``: the input, not counted as
        a write of the baseline) times the last write of its kind."""
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:  # report, never hide: a failed write is a wrong baseline
            self.errors.append(f"{type(exc).__name__}: {str(exc)[:200]}")
            return None
        with self.lock:
            self.writes += what != "create"
            self.last[what] = time.monotonic()
        return result

    def _apply(self, manifest: dict[str, Any]) -> None:
        from kubellm.k8s.diff import with_hash

        body = with_hash(manifest)
        self._write(body["kind"], self.dynamic.server_side_apply,
                    self._resource(body["apiVersion"], body["kind"]), body=body,
                    namespace=body["metadata"].get("namespace"), field_manager="kubellm",
                    force_conflicts=True)

    def _status(self, p: Planned, deployment: dict[str, Any] | None) -> None:
        from kubellm.api.v1alpha1 import API_VERSION

        resource = self._resource(API_VERSION, "LLMDeployment").subresources["status"]
        self._write("status", self.dynamic.patch, resource,
                    body={"status": final_status(p, 1, deployment)}, name=p.plan.name,
                    namespace=p.plan.namespace, content_type="application/merge-patch+json",
                    field_manager="kubellm")

    def _create(self, p: Planned) -> None:
        from kubellm.api.v1alpha1 import API_VERSION

        created = self._write("create", self.dynamic.create,
                              self._resource(API_VERSION, "LLMDeployment"), body=p.manifest,
                              namespace=p.plan.namespace)
        if created is None:
            return
        with self.lock:
            self.uids[p.key] = created.metadata.uid
        if not p.plan.deployable:
            self._status(p, None)
            return
        with self.lock:
            self.users[p.cache].append(p)
            first = p.cache not in self.cache_claimed
            self.cache_claimed.add(p.cache)
            ready = p.cache in self.cache_done
        if first:
            for obj in p.plan.cache_objects:  # PVC, then the Job
                self._apply(obj)
        if ready:
            self._serve(p)

    def _serve(self, p: Planned) -> None:
        from kubellm import naming
        from kubellm.api.v1alpha1 import API_VERSION

        with self.lock:
            if p.key in self.served:
                return
            self.served.add(p.key)
            uid = self.uids[p.key]
        owner = naming.owner_reference(API_VERSION, "LLMDeployment", p.plan.name, uid)
        for obj in p.plan.serving_objects:
            self._apply({**obj, "metadata": {**obj["metadata"], "ownerReferences": [owner]}})

    def on_job(self, job: dict[str, Any]) -> None:
        if not job_succeeded(job):
            return
        meta = job["metadata"]
        cache = self.job_cache.get((meta["namespace"], meta["name"]))
        if cache is None:
            return
        with self.lock:
            self.cache_done.add(cache)
            users = list(self.users[cache])
        for user in users:
            self.pool.submit(self._serve, user)

    def on_deployment(self, deployment: dict[str, Any]) -> None:
        status = deployment.get("status") or {}
        if (status.get("readyReplicas") or 0) < 1:
            return
        meta = deployment["metadata"]
        refs = meta.get("ownerReferences") or []
        owner = next((r["name"] for r in refs if r.get("kind") == "LLMDeployment"), None)
        p = self.by_key.get((meta["namespace"], owner or ""))
        with self.lock:
            if p is None or p.key in self.status_done:
                return
            self.status_done.add(p.key)
        self.pool.submit(self._status, p, deployment)

    def run(self) -> float:
        """Create everything; returns the monotonic time of the first create."""
        self.observer.on_job = self.on_job
        self.observer.on_deployment = self.on_deployment
        t0 = time.monotonic()
        for p in self.planned:
            self.pool.submit(self._create, p)
        return t0

    def close(self) -> None:
        self.observer.on_job = None
        self.observer.on_deployment = None
        self.pool.shutdown(wait=True)

