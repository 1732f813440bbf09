"""kopf registration of the kubellm operator: settings, triggers (imports kopf).

kopf only says *what happened*; every handler here tells the ``kubellm.shell.operator.Operator``
and returns at once. Nothing here reconciles, retries or maps errors: the operator's one work
queue (``kubellm.shell.workqueue``) owns when a key runs and its backoff, and status explains
every error. The triggers:

- the LLMDeployment watch: the store, and the known deployments with their cache keys; a new
  deployment or a change of its spec, labels or annotations enqueues it; a deletion enqueues it
  once more (its GPUs are released) and forgets its retries. There are no kopf
  create/update/resume handlers: those are kopf's *state-changing* handlers, and kopf records
  each handled change in a diff-base annotation — one more patch per object and change, which a
  level-triggered reconcile does not need;
- a periodic resync of every known LLMDeployment (``--resync-seconds``), the operator's own
  asyncio loop rather than ``@kopf.timer``, because kopf puts a finalizer on every object that
  has a timer or daemon, and a finalizer blocks ``kubectl delete`` whenever the operator is down;
- child watchers (only a change of what the owner reads, ``kubellm.reconcile.childview``: not
  the echo of the operator's own write, not a Job's start time): a kubellm
  Deployment/LeaderWorkerSet/Service changing enqueues its owner
  (drift repair, readiness into status; LeaderWorkerSets only while their CRD is installed), a
  serving workload deleted or scaled down wakes the deployments waiting for GPUs; a cache
  Job/PVC changing enqueues every LLMDeployment of that cache;
- a LicensePolicy changing enqueues every LLMDeployment (the licence is re-decided each time).

No finalizer is used: serving objects have ownerReferences (the garbage collector removes them),
shared caches are collected by ``kubellm.reconcile.cachegc``.

kopf itself writes nothing: only event-watching handlers (no progress or diff-base annotations;
the storage settings in ``configure_settings`` keep any kopf state out of ``status.kopf``,
which the CRD does not declare), kopf's own events only for warnings and errors, no peering
objects (standalone: with several replicas,
``kubellm run --leader-elect`` starts kopf only in the holder of a Lease).

``configure(config, metrics)`` must run before ``kopf.run`` (``kubellm run`` does): kopf calls
module-level handlers, so the one ``Operator`` of this process is held here.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import kopf

from kubellm import naming
from kubellm.api.v1alpha1 import GROUP, VERSION
from kubellm.evaluation.job import COMPONENT_EVALUATION
from kubellm.metrics import Metrics
from kubellm.reconcile.childview import is_news
from kubellm.shell.config import OperatorConfig
from kubellm.shell.operator import Key, Operator

log = logging.getLogger("kubellm.operator")

PLURAL = "llmdeployments"
KIND = "LLMDeployment"
MANAGED = {naming.LABEL_MANAGED_BY: naming.MANAGED_BY}
# plural -> kind of what the operator watches and serves reads of from its store
WATCHED_KINDS = {PLURAL: KIND, "deployments": "Deployment", "services": "Service",
                 "jobs": "Job", "persistentvolumeclaims": "PersistentVolumeClaim",
                 "leaderworkersets": "LeaderWorkerSet"}
# Multi-node serving workloads: watched only while their CRD is installed (kopf re-scans CRDs
# and serves the handler once it appears; until then it logs the resource as unresolved).
LWS_GROUP, LWS_VERSION = "leaderworkerset.x-k8s.io", "v1"
WORKLOAD_PLURALS = ("deployments", "leaderworkersets")

_config: OperatorConfig | None = None
_metrics: Metrics | None = None
_operator: Operator | None = None


def configure(config: OperatorConfig, metrics: Metrics) -> None:
    """The config and the metrics (already served on ``config.metrics_port``: a standby serves
    them before kopf starts) of the operator ``startup`` will build."""
    global _config, _metrics
    _config, _metrics = config, metrics


def configure_settings(settings: kopf.OperatorSettings, config: OperatorConfig) -> None:
    """All kopf settings in one place."""
    settings.persistence.finalizer = f"{GROUP}/finalizer"  # unused: no handler needs one
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration")
    settings.posting.level = logging.WARNING  # kopf's own events: warnings/errors only
    settings.posting.reporting_component = "kubellm"
    # No KopfPeering objects to write: one instance reconciles — the only replica, or the holder
    # of the leader Lease (``kubellm run --leader-elect``, kubellm.shell.election) started kopf.
    settings.peering.standalone = True
    settings.peering.mandatory = False
    settings.execution.max_workers = config.workers
    settings.networking.request_timeout = 60
    settings.networking.connect_timeout = 10
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    if config.shard_selector:  # one shard's LLMDeployments only (docs/sharding.md)
        settings.watching.label_selectors[(GROUP, PLURAL)] = config.shard_selector
    # children: watch only kubellm's own objects, filtered by the apiserver
    for selector in (("apps", "deployments"), ("", "services"), ("batch", "jobs"),
                     ("", "persistentvolumeclaims"), (LWS_GROUP, "leaderworkersets")):
        settings.watching.label_selectors[selector] = naming.MANAGED_SELECTOR


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    global _operator
    if _config is None or _metrics is None:
        raise RuntimeError("kubellm.handlers.configure() was not called before kopf.run")
    configure_settings(settings, _config)
    _metrics.leader.set(1)  # started only once it may reconcile (leader, or no election)
    _operator = await asyncio.to_thread(Operator.connect, _config, _metrics,
                                        set(WATCHED_KINDS.values()))
    _operator.start()
    log.info("kubellm operator started (namespace=%s, resync=%ss, metrics=%s)",
             _config.namespace or "*", _config.resync_seconds, _config.metrics_port)


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    global _operator
    if _operator is not None:
        await _operator.stop()
        _operator = None


def _observe(op: Operator, event: kopf.RawEvent, resource: kopf.Resource) -> None:
    kind = WATCHED_KINDS.get(resource.plural)
    obj = event.get("object")
    if kind and isinstance(obj, dict):
        op.cluster.observe(kind, cast(dict[str, Any], obj),
                           deleted=event.get("type") == "DELETED")


@kopf.on.event(GROUP, VERSION, PLURAL)
async def llmd_event(type: str, body: kopf.Body, name: str, namespace: str | None,
                     event: kopf.RawEvent, resource: kopf.Resource, **_: Any) -> None:
    """Keep the store and the known LLMDeployments with their cache keys; a new deployment, or
    one whose spec, labels or annotations changed, is enqueued (``Operator.deployment_seen``).
    kopf starts watching only after ``startup`` built the operator, and its initial listing
    (``type`` None) comes here too: every existing deployment is reconciled on start."""
    op = _operator
    if op is None:
        return
    _observe(op, event, resource)
    key = (namespace or "default", name)
    if type == "DELETED":
        op.deployment_deleted(key)
    else:
        op.deployment_seen(key, dict(body))


@kopf.on.event(GROUP, VERSION, "licensepolicies")
async def policy_event(type: str, name: str, **_: Any) -> None:
    """A policy changed: every deployment's licence decision may change."""
    op = _operator
    if op is None or type is None:  # None: the initial listing; resume covers it
        return
    log.info("LicensePolicy %s %s: re-evaluating %d deployments", name, type.lower(),
             len(op.known))
    op.policies_changed()


def _owner_keys(body: kopf.Body, namespace: str) -> list[Key]:
    return [(namespace, ref["name"]) for ref in body.get("metadata", {}).get(
        "ownerReferences") or [] if ref.get("kind") == KIND and ref.get("apiVersion", "")
        .startswith(GROUP + "/")]


@kopf.on.event("apps", "v1", "deployments", labels=MANAGED)
@kopf.on.event(LWS_GROUP, LWS_VERSION, "leaderworkersets", labels=MANAGED)
@kopf.on.event("", "v1", "services", labels=MANAGED)
async def serving_child_event(type: str, body: kopf.Body, namespace: str | None,
                              event: kopf.RawEvent, resource: kopf.Resource, **_: Any) -> None:
    """A serving Deployment/LeaderWorkerSet/Service changed (rollout progress, readiness, hand
    edit, deletion)."""
    op = _operator
    if op is None:
        return
    kind = WATCHED_KINDS[resource.plural]
    old = op.cluster.cached(kind, body.get("metadata", {}).get("name", ""), namespace)
    freed = False
    if resource.plural in WORKLOAD_PLURALS and type is not None:
        before = ((old or {}).get("spec") or {}).get("replicas") or 0
        after = (body.get("spec") or {}).get("replicas") or 0
        freed = type == "DELETED" or after < before
    _observe(op, event, resource)
    if freed:
        op.requeue_gpu_waiting("gpus-freed")
    if type is not None and is_news(kind, old, dict(body), deleted=type == "DELETED"):
        op.owners_changed(_owner_keys(body, namespace or "default"))


@kopf.on.event("batch", "v1", "jobs", labels=MANAGED)
@kopf.on.event("", "v1", "persistentvolumeclaims", labels=MANAGED)
async def cache_child_event(type: str, body: kopf.Body, namespace: str | None,
                            event: kopf.RawEvent, resource: kopf.Resource, **_: Any) -> None:
    """A shared cache Job/PVC changed: enqueue every deployment using that cache. An evaluation
    Job (owned by its LLMDeployment) wakes its owner."""
    op = _operator
    if op is None:
        return
    kind = WATCHED_KINDS[resource.plural]
    old = op.cluster.cached(kind, body.get("metadata", {}).get("name", ""), namespace)
    _observe(op, event, resource)
    news = type is not None and is_news(kind, old, dict(body), deleted=type == "DELETED")
    namespace = namespace or "default"
    labels = body.get("metadata", {}).get("labels") or {}
    if labels.get(naming.LABEL_COMPONENT) == COMPONENT_EVALUATION:
        if news:
            op.owners_changed(_owner_keys(body, namespace))
        return
    op.cache_namespaces.add(namespace)  # the initial listing too: caches to collect later
    if news:
        op.cache_changed(namespace, labels.get(naming.LABEL_CACHE_KEY))
