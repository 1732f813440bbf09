"""Reconcile one LLMDeployment: observe -> facts -> plan -> apply -> status -> events.

Level-triggered: ``Reconciler.reconcile(body)`` recomputes everything from the object as it is
now, whatever woke it (create, update, resume, the periodic resync, a child or a LicensePolicy
changing). It never looks at a diff. It writes only what differs (``ClusterPort.apply`` skips
unchanged children, the status is patched only when it changed, events only on transitions), so a
resync of a converged deployment makes zero writes.

Order of writes, so nothing is half-created without an explanation in status:

1. the shared cache: PVC, then the download Job (created once, never updated: content-addressed);
2. the serving Deployment (or LeaderWorkerSet, when one replica spans several nodes) + Service,
   only when the plan is deployable *and* the Job succeeded; a LeaderWorkerSet whose CRD is not
   installed is found out before step 1 (``KindNotServed``), so nothing at all is created.
   While a new cache downloads (revision bump), the existing Deployment is left serving the old
   one; the rolling update starts once the new cache is complete and keeps old pods until new
   ones are Ready;
3. licence denied (Enforce): the existing serving Deployment is scaled to 0 (its Service stays, so
   the endpoint comes back when the policy allows again); nothing new is created;
   does not fit / invalid spec: nothing new is created and an existing Deployment is left as is
   (it still runs what last fitted) — the conditions say why.

GPUs are committed first come, first served (``kubellm.reconcile.ledger.GpuLedger``): a plan
that fits is entered in the ledger in the same critical section that computed it; a deployment
that does not fit any more gets ``Sized=False`` (``GpusBusy``) and nothing is created for it.

The shared cache objects carry no ownerReference (several LLMDeployments use them);
``kubellm.reconcile.cachegc`` deletes a cache no deployment references after a grace period.
The serving objects carry a controller ownerReference, so deleting the LLMDeployment lets the
garbage collector remove them (no finalizer).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from kubellm import conditions as cond
from kubellm import naming
from kubellm.api.v1alpha1 import (
    API_VERSION,
    Condition,
    LicensePolicy,
    LLMDeployment,
    LLMDeploymentStatus,
)
from kubellm.cache import default_image
from kubellm.errors import KubellmError, PermanentError, SpecError, TemporaryError
from kubellm.evaluation.hooks import gate as gated
from kubellm.evaluation.report import EVALUATED
from kubellm.facts import ModelFacts
from kubellm.planner import Plan, plan_deployment
from kubellm.reasons import Reason
from kubellm.reconcile import evaluate, status
from kubellm.reconcile.ledger import WORKLOAD_KINDS, GpuLedger, Observed
from kubellm.reconcile.ports import ClusterPort, FactsPort
from kubellm.reconcile.shard import NodePool, in_node_pool
from kubellm.reconcile.ttl import TtlCache
from kubellm.runtimes import lws
from kubellm.sizing.catalog import GpuCatalog

log = logging.getLogger("kubellm.reconcile")

KIND = "LLMDeployment"
POLICY_KIND = "LicensePolicy"


@dataclass(frozen=True)
class Settings:
    """The reconciler's part of the operator's config (``kubellm.shell.config``), frozen."""

    image: str | None = None  # image of the download Job (default: kubellm's own)
    hub_endpoint: str | None = None  # HF_ENDPOINT for the download Job (a mirror; None: the Hub)
    runtime_images: tuple[tuple[str, str], ...] = ()  # --runtime-image: (runtime, image)
    gpu_catalog: GpuCatalog | None = None  # --gpu-catalog added to the built-in (None: just it)
    facts_ttl: float = 600.0  # seconds a resolved ModelFacts is reused
    inventory_ttl: float = 2.0  # seconds a Nodes/Pods snapshot is reused across reconciles
    policy_ttl: float = 3.0  # seconds the LicensePolicy list is reused (invalidated on change)
    node_pool: NodePool = ()  # --shard-node-selector: this shard's GPU nodes (() = all)


@dataclass
class Outcome:
    """What one reconcile did; the handlers turn ``error`` into kopf's errors."""

    name: str
    namespace: str
    status: dict[str, Any] = field(default_factory=dict)
    status_written: bool = False
    applied: list[str] = field(default_factory=list)  # "Kind/name: why"
    events: list[str] = field(default_factory=list)
    error: KubellmError | None = None
    ready: str = "Unknown"
    timings: dict[str, float] = field(default_factory=dict)  # seconds per phase
    gpus_released: bool = False  # this deployment now commits fewer GPUs than before

    def mark(self, phase: str, since: float) -> float:
        """Add the time since ``since`` to ``phase``; returns now (for the next phase)."""
        now = time.perf_counter()
        self.timings[phase] = self.timings.get(phase, 0.0) + now - since
        return now


def _owner_reference(body: dict[str, Any]) -> dict[str, Any]:
    meta = body["metadata"]
    return naming.owner_reference(API_VERSION, KIND, meta["name"], meta["uid"])


class Reconciler:
    """Holds the adapters and small caches; ``reconcile`` is safe to call from many threads, but
    callers must not run two reconciles of the same object at once (the operator's work queue
    never does)."""

    def __init__(
        self,
        cluster: ClusterPort,
        resolve_facts: FactsPort,
        settings: Settings | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        on_planned: Callable[[str, str, str | None], None] | None = None,
    ) -> None:
        self.cluster = cluster
        self.resolve_facts = resolve_facts
        self.settings = settings or Settings()
        self.clock = clock
        self.now = now
        self._facts = TtlCache()
        self._snapshots = TtlCache()
        # told (namespace, name, cache key) right after planning and before the cache's Job is
        # read, so a cache that completes while this reconcile runs still wakes it (see
        # shell.operator.Operator.users_of_cache): level-triggered however far status got
        self._on_planned = on_planned
        self._cache_locks: dict[tuple[str, str | None], threading.Lock] = {}
        self._cache_locks_guard = threading.Lock()
        self.ledger = GpuLedger(self.settings.gpu_catalog)

    # ---- observe -----------------------------------------------------------------------
    def _facts_for(self, llmd: LLMDeployment, namespace: str) -> ModelFacts:
        model = llmd.spec.model
        token = None
        ref = llmd.spec.hub_token_secret_ref
        if ref is not None:
            token = self.cluster.secret_value(namespace, ref.name, ref.key)
        key = (model.model_dump_json(), token)
        now = self.clock()
        fresh, cached = self._facts.get(key, self.settings.facts_ttl, now)
        if fresh:
            facts: ModelFacts = cached
            return facts
        try:
            facts = self.resolve_facts(model.repo, model.revision, declared=model, token=token,
                                       gguf_file=model.file)
        except TemporaryError:
            if cached is not None:  # stale facts beat no facts while the Hub is down
                log.warning("hub unavailable; reusing facts for %s", model.repo)
                stale: ModelFacts = cached
                return stale
            raise
        self._facts.put(key, facts, now)
        return facts

    def _snapshot(self, kind: str, api_version: str = "v1",
                  selector: str | None = None) -> list[dict[str, Any]]:
        now = self.clock()
        fresh, cached = self._snapshots.get(kind, self.settings.inventory_ttl, now)
        if fresh:
            items: list[dict[str, Any]] = cached
            return items
        items = self.cluster.list(api_version, kind, None, selector)
        self._snapshots.put(kind, items, now)
        return items

    def _observed(self) -> Observed:
        """Nodes, Pods and kubellm serving Deployments (snapshots shared for inventory_ttl)."""
        return (self._snapshot("Node"), self._snapshot("Pod"),
                self._snapshot("Deployment", "apps/v1", naming.SERVING_SELECTOR))

    def seed(self, llmds: list[dict[str, Any]]) -> int:
        """At start-up: the GPUs each LLMDeployment's status says it was promised
        (``GpuLedger.seed``)."""
        return self.ledger.seed(llmds)

    def release(self, namespace: str, name: str) -> bool:
        """The LLMDeployment is gone: its promised GPUs are free (True if it held any)."""
        return self.ledger.release((namespace, name))

    def invalidate_policies(self) -> None:
        """A LicensePolicy changed: the next reconcile lists them again."""
        self._snapshots.put(POLICY_KIND, None, float("-inf"))

    def policies(self) -> list[LicensePolicy]:
        now = self.clock()
        fresh, cached = self._snapshots.get(POLICY_KIND, self.settings.policy_ttl, now)
        if fresh and cached is not None:
            policies: list[LicensePolicy] = cached
            return policies
        out = []
        for raw in self.cluster.list(API_VERSION, POLICY_KIND):
            try:
                out.append(LicensePolicy.model_validate(raw))
            except ValidationError as exc:
                log.warning("ignoring invalid LicensePolicy %s: %s",
                            (raw.get("metadata") or {}).get("name"), exc)
        self._snapshots.put(POLICY_KIND, out, now)
        return out

    def owned_deployment(self, name: str, namespace: str, uid: str,
                         kind: str = "Deployment") -> dict[str, Any] | None:
        """The serving workload (``kind``: Deployment or LeaderWorkerSet) of this LLMDeployment,
        if it exists and is really ours; None too when the cluster does not serve ``kind``."""
        try:
            live = self.cluster.get(WORKLOAD_KINDS[kind], kind, naming.serving_name(name),
                                    namespace)
        except PermanentError as exc:
            if exc.reason == Reason.KIND_NOT_SERVED:
                return None
            raise
        refs = ((live or {}).get("metadata") or {}).get("ownerReferences") or []
        return live if any(r.get("uid") == uid for r in refs) else None

    # ---- the loop body -----------------------------------------------------------------
    def reconcile(self, body: dict[str, Any]) -> Outcome:
        meta = body.get("metadata") or {}
        name, namespace = meta.get("name", "?"), meta.get("namespace", "default")
        out = Outcome(name=name, namespace=namespace)
        old_status = body.get("status") or {}
        old_conditions = [Condition.model_validate(c) for c in old_status.get("conditions") or []]
        generation = meta.get("generation")
        error: SpecError | None = None
        try:
            llmd = in_node_pool(LLMDeployment.model_validate(body), self.settings.node_pool)
        except ValidationError as exc:
            first = exc.errors()[0]
            error = SpecError("spec." + ".".join(str(p) for p in first["loc"][1:]), first["msg"])
        except SpecError as exc:  # asks for nodes outside this operator shard's pool
            error = exc
        if error is not None:
            self._finish(body, out, old_status, old_conditions, generation,
                         status.refused_wants(error.reason, str(error)), {}, error)
            return out

        started = time.perf_counter()
        try:
            facts = self._facts_for(llmd, namespace)
        except PermanentError as exc:
            wants = status.refused_wants(exc.reason, exc.message)
            self._finish(body, out, old_status, old_conditions, generation, wants, {}, exc)
            return out
        except TemporaryError as exc:
            out.error = exc
            out.mark("facts", started)
            if not old_conditions:  # say something rather than nothing; keep a known state
                wants = [cond.Want(t, "Unknown", exc.reason, exc.message) for t in cond.STAGES]
                self._finish(body, out, old_status, old_conditions, generation, wants, {}, exc)
            return out

        out.mark("facts", started)
        try:
            self._converge(body, llmd, facts, out, old_status, old_conditions, generation)
        except PermanentError as exc:
            # e.g. the apiserver refused a rendered object, or a kind it does not serve: keep
            # what status said, and say why Ready is False (never a silent half-deployment)
            if exc.reason == Reason.KIND_NOT_SERVED:  # nothing was created: hold no GPUs for it
                out.gpus_released = self.release(namespace, name)
            self._finish(body, out, old_status, old_conditions, generation, [], None, exc,
                         include_available=False)
        except KubellmError as exc:
            out.error = exc
        except Exception as exc:  # a bug: say so in status rather than leave it unexplained
            log.exception("%s/%s: reconcile failed", out.namespace, out.name)
            bug = TemporaryError(f"internal error: {type(exc).__name__}: {exc}", delay=60,
                                 reason=Reason.INTERNAL_ERROR)
            self._finish(body, out, old_status, old_conditions, generation, [], None, bug,
                         include_available=False)
        return out

    def _converge(self, body: dict[str, Any], llmd: LLMDeployment, facts: ModelFacts,
                  out: Outcome, old_status: dict[str, Any], old_conditions: list[Condition],
                  generation: int | None) -> None:
        namespace, uid = out.namespace, body["metadata"]["uid"]
        mark = time.perf_counter()
        policies = self.policies()
        observed = self._observed()
        mark = out.mark("observe", mark)
        plan, out.gpus_released = self.ledger.decide(
            (namespace, out.name), observed, llmd.spec.node_selector,
            lambda inventory: plan_deployment(
                llmd, facts, policies, inventory, cache_complete=None,
                image=self.settings.image, hub_endpoint=self.settings.hub_endpoint,
                runtime_images=dict(self.settings.runtime_images)))
        if self._on_planned is not None:
            self._on_planned(namespace, out.name, plan.cache_key)
        mark = out.mark("plan", mark)

        # 0. a workload kind served only with its CRD (LeaderWorkerSet): check before creating
        # anything, so a missing CRD leaves no cache, no download pod and no Service behind
        if plan.deployable:
            for obj in plan.serving_objects:
                if obj["kind"] not in ("Deployment", "Service"):
                    meta = obj["metadata"]
                    self.cluster.get(obj["apiVersion"], obj["kind"], meta["name"],
                                     meta.get("namespace"))  # raises KindNotServed

        # 1. the shared cache
        pvc = next((o for o in plan.cache_objects if o["kind"] == "PersistentVolumeClaim"), None)
        job_manifest = next((o for o in plan.cache_objects if o["kind"] == "Job"), None)
        job_live: dict[str, Any] | None = None
        # one reconcile at a time per shared cache: the others then find it (write-through
        # store) instead of applying the same PVC and Job again
        with self._cache_lock((namespace, plan.cache_key)):
            for obj in plan.cache_objects:
                if job_manifest is not None and obj is job_manifest:
                    job_live = self._ensure_job(obj, out)
                else:
                    self._apply(obj, out)
        if plan.deployable and job_manifest is None:
            cache_state: status.CacheState = ("True", Reason.CACHE_DISABLED,
                                              "spec.cache.enabled is false")
        elif plan.deployable:
            cache_state = status.job_state(job_live)
        else:
            cache_state = ("Unknown", Reason.NOT_PLANNED, plan.refusal or "")
        cache_complete = cache_state[0] == "True"
        mark = out.mark("cache", mark)

        # 2./3. serving objects (the workload first: a Service never goes without it)
        deployment: dict[str, Any] | None = None  # the workload: Deployment or LeaderWorkerSet
        service: dict[str, Any] | None = None
        if plan.deployable and cache_complete:
            for obj in plan.serving_objects:
                owned = dict(obj)
                owned["metadata"] = {**obj["metadata"], "ownerReferences": [_owner_reference(body)]}
                result = self._apply(owned, out)
                if obj["kind"] in WORKLOAD_KINDS:
                    deployment = result
                elif obj["kind"] == "Service":
                    service = result
            self._delete_replaced_workload(plan, old_status, out, namespace, uid)
        else:
            multi = plan.sizing is not None and (plan.sizing.nodes_per_replica or 1) > 1
            kind = lws.KIND if multi else "Deployment"
            deployment = self.owned_deployment(out.name, namespace, uid, kind)
            denied = plan.license is not None and not getattr(plan.license, "allowed", True)
            if denied and deployment is not None and deployment["spec"].get("replicas") != 0:
                meta = deployment["metadata"]
                deployment = self.cluster.merge_patch(
                    WORKLOAD_KINDS[kind], kind, meta["name"], namespace, {"spec": {"replicas": 0}})
                out.applied.append(f"{kind}/{meta['name']}: scaled to 0 (licence denied)")
            if deployment is not None:
                svc_name = deployment["metadata"]["name"]
                service = self.cluster.get("v1", "Service", svc_name, namespace)

        mark = out.mark("serving", mark)
        wants = status.wants(plan, cache_state)
        extra = status.status_fields(plan, facts, pvc, job_manifest, deployment, service)
        evaluation = evaluate.step(
            self.cluster, llmd, revision=facts.sha, endpoint=extra.get("endpoint"),
            image=self.settings.image or default_image(), workload=deployment,
            old=old_status.get("evaluation"))
        out.applied.extend(evaluation.applied)
        extra["evaluation"] = evaluation.status
        mark = out.mark("evaluation", mark)
        self._finish(body, out, old_status, old_conditions, generation, wants, extra, None,
                     deployment, evaluation=(evaluation, llmd))
        out.mark("status", mark)

    def _delete_replaced_workload(self, plan: Plan, old_status: dict[str, Any], out: Outcome,
                                  namespace: str, uid: str) -> None:
        """A replica that moved between one node and several changed workload kind (Deployment
        <-> LeaderWorkerSet): delete the old kind, which would otherwise keep its GPUs.

        The new workload is already applied; the old one goes at once rather than after the new
        is Ready, because the old pods may hold the very GPUs the new ones wait for. An LWS is
        looked up only when the previous sizing had pipeline stages (a GET of an unserved kind
        costs an API discovery)."""
        applied = next((o["kind"] for o in plan.serving_objects if o["kind"] in WORKLOAD_KINDS),
                       None)
        if applied == lws.KIND:
            stale_kind = "Deployment"
        else:
            previous_pp = ((old_status.get("sizing") or {}).get("pipelineParallelSize")) or 1
            if applied is None or previous_pp <= 1:
                return
            stale_kind = lws.KIND
        stale = self.owned_deployment(out.name, namespace, uid, stale_kind)
        if stale is None:
            return
        name = stale["metadata"]["name"]
        self.cluster.delete(WORKLOAD_KINDS[stale_kind], stale_kind, name, namespace)
        out.applied.append(f"{stale_kind}/{name}: deleted (replaced by a {applied})")

    def _cache_lock(self, key: tuple[str, str | None]) -> threading.Lock:
        with self._cache_locks_guard:
            return self._cache_locks.setdefault(key, threading.Lock())

    def _apply(self, manifest: dict[str, Any], out: Outcome) -> dict[str, Any] | None:
        why, live = self.cluster.apply(manifest)
        if why is not None:
            out.applied.append(f"{manifest['kind']}/{manifest['metadata']['name']}: {why}")
        return live

    def _ensure_job(self, manifest: dict[str, Any], out: Outcome) -> dict[str, Any] | None:
        """The download Job is created when missing and never updated: its name is content-
        addressed and a Job's pod template is immutable."""
        meta = manifest["metadata"]
        live = self.cluster.get("batch/v1", "Job", meta["name"], meta.get("namespace"))
        if live is not None:
            return live
        return self._apply_known(manifest, None, out)

    def _apply_known(self, manifest: dict[str, Any], live: dict[str, Any] | None,
                     out: Outcome) -> dict[str, Any] | None:
        why, result = self.cluster.apply(manifest, live)
        if why is not None:
            out.applied.append(f"{manifest['kind']}/{manifest['metadata']['name']}: {why}")
        return result

    # ---- status ------------------------------------------------------------------------
    def _finish(self, body: dict[str, Any], out: Outcome, old_status: dict[str, Any],
                old_conditions: list[Condition], generation: int | None,
                wants: list[cond.Want], extra: dict[str, Any] | None,
                error: KubellmError | None, deployment: dict[str, Any] | None = None,
                *, include_available: bool = True,
                evaluation: tuple[evaluate.Step, LLMDeployment] | None = None) -> None:
        """Write the status (only if it changed) and one event if conditions moved.

        ``extra`` None keeps the other status fields as they were (error after a partial run).
        ``evaluation`` (a full reconcile only: the step and the deployment) sets or drops the
        ``Evaluated`` condition, and with ``spec.evaluation.gate`` a True ``Ready`` also needs
        ``Evaluated=True``. Without it (an error path) the last ``Evaluated`` stays as it was.
        """
        stages = [*wants, status.available(deployment, wants)] if include_available else wants
        managed = set(LLMDeploymentStatus.model_fields) | {
            f.alias for f in LLMDeploymentStatus.model_fields.values() if f.alias}
        if extra is None:
            extra = {k: v for k, v in old_status.items() if k in managed
                     and k not in ("conditions", "observedGeneration", "ready", "reason")}
        summary = cond.summarize(stages)
        if isinstance(error, PermanentError):
            summary = cond.Want(cond.READY, "False", error.reason, error.message)
        elif isinstance(error, TemporaryError):
            summary = cond.Want(cond.READY, "Unknown", error.reason, error.message)
        extras: list[cond.Want] = []
        if evaluation is not None:
            step, llmd = evaluation
            if step.want is None:
                old_conditions = [c for c in old_conditions if c.type != EVALUATED]
            else:
                extras.append(step.want)
                if error is None:
                    summary = gated(summary, step.want, llmd)
        new_conditions = cond.merge(old_conditions, [*stages, *extras, summary],
                                    generation=generation, now=self.now())
        status_model = LLMDeploymentStatus.model_validate({
            "observedGeneration": generation,
            "conditions": [c.model_dump(by_alias=True, mode="json") for c in new_conditions],
            **{k: v for k, v in extra.items() if v is not None},
            "ready": summary.status,
            "reason": cond.camel_reason(summary.reason),
        })
        new_status = status_model.dump()
        out.status = new_status
        out.ready = summary.status
        out.error = error
        patch: dict[str, Any] = {k: v for k, v in new_status.items() if old_status.get(k) != v}
        for key in old_status:
            if key in managed and key not in new_status:
                patch[key] = None
        if patch:
            self.cluster.merge_patch(API_VERSION, KIND, out.name, out.namespace,
                                     {"status": patch}, subresource="status")
            out.status_written = True
        # One event per reconcile that moved conditions (events are writes too): its reason is
        # the new Ready reason when Ready moved, its message lists every transition.
        moved = cond.transitions(old_conditions, new_conditions)
        if moved:
            lead = next((m for m in moved if m.type == cond.READY), moved[0])
            etype = "Warning" if any(m.warning for m in moved) else "Normal"
            text = "; ".join(f"{m.type}={m.new.status} ({m.new.reason})"
                             + (f": {m.new.message}" if m.new.message else "") for m in moved)
            out.events.append(f"{etype} {lead.new.reason}: {text}")
            try:
                self.cluster.event(body, etype, lead.new.reason, text)
            except KubellmError as exc:  # an event is never worth failing the reconcile
                log.warning("event for %s/%s not posted: %s", out.namespace, out.name, exc)
