"""kopf registration of the kubellm operator: settings, triggers, error mapping (imports kopf).

Everything that decides lives in ``kubellm.reconcile``; this module only says *when* to reconcile
and maps errors onto kopf. Every trigger funnels into one function, ``Runtime.reconcile_key``,
which re-reads the LLMDeployment and runs the level-triggered ``Reconciler`` under a per-object
lock (never on a diff):

- ``reconcile_handler``: kopf's create/update/resume of an LLMDeployment (kopf retries it:
  ``kubellm.errors.TemporaryError`` -> ``kopf.TemporaryError(delay)``, ``PermanentError`` ->
  ``kopf.PermanentError`` — the status already explains it);
- a periodic resync of every known LLMDeployment (``--resync-seconds``) — our own asyncio loop
  rather than ``@kopf.timer``, because kopf puts a finalizer on every object that has a timer or
  daemon, and a finalizer blocks ``kubectl delete`` whenever the operator is down;
- child watchers: a kubellm Deployment/LeaderWorkerSet/Service changing requeues its owner
  (drift repair, readiness into status; LeaderWorkerSets only while their CRD is installed);
  a cache Job/PVC changing requeues every LLMDeployment of that cache;
- a LicensePolicy changing requeues every LLMDeployment (the licence is re-decided each time);
- GPUs freed: a deployment refused with ``Sized=False/GpusBusy`` waits in ``gpu_waiting``; it is
  requeued when an LLMDeployment is deleted (its ledger entry released), when a kubellm serving
  Deployment is deleted or scaled down, and every ``GPU_WAIT_SECONDS`` (pods of other workloads
  finishing are not watched).

Requeued keys go through a small coalescing queue (a key already waiting is not added twice) and a
thread pool, because the kubernetes client is synchronous. No finalizer is used: serving objects
have ownerReferences (the garbage collector removes them), shared caches are collected by
``kubellm.reconcile.cachegc``.

Writes kopf itself would make are kept down in ``configure_settings``: progress and diff-base in
``kubellm.io/`` annotations (never ``status.kopf``, which the CRD does not declare), kopf's own
events only for warnings and errors, no peering objects (standalone: with several replicas,
``kubellm run --leader-elect`` starts kopf only in the holder of a Lease).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

import kopf

from kubellm import naming
from kubellm.api.v1alpha1 import API_VERSION, GROUP, VERSION
from kubellm.errors import KubellmError, PermanentError, TemporaryError
from kubellm.metrics import Metrics
from kubellm.reasons import Reason
from kubellm.reconcile import Outcome, Reconciler, Settings
from kubellm.reconcile.cachegc import CacheCollector

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
Key = tuple[str, str]
GPU_WAIT_SECONDS = 30.0  # re-check of a deployment waiting for GPUs (at most the resync period)


@dataclass
class Options:
    """``kubellm run`` flags (also read from KUBELLM_* environment variables, for KopfRunner)."""

    kubeconfig: str | None = None
    namespace: str | None = None  # None: all namespaces
    metrics_port: int | None = None
    resync_seconds: float = 300.0
    cache_grace_seconds: float = 3600.0
    workers: int = 8
    image: str | None = None
    hub_endpoint: str | None = None  # HF_ENDPOINT, passed on to the download Jobs

    @classmethod
    def from_env(cls) -> Options:
        env = os.environ

        def num(name: str, default: float) -> float:
            return float(env[name]) if env.get(name) else default

        port = env.get("KUBELLM_METRICS_PORT")
        return cls(
            kubeconfig=env.get("KUBECONFIG") or None,
            namespace=env.get("KUBELLM_NAMESPACE") or None,
            metrics_port=int(port) if port else None,
            resync_seconds=num("KUBELLM_RESYNC_SECONDS", 300.0),
            cache_grace_seconds=num("KUBELLM_CACHE_GRACE_SECONDS", 3600.0),
            workers=int(num("KUBELLM_WORKERS", 8)),
            image=env.get("KUBELLM_IMAGE") or None,
            hub_endpoint=env.get("HF_ENDPOINT") or None,
        )


_options: Options | None = None
_metrics: Metrics | None = None  # given by ``kubellm run`` when it already serves them
_runtime: Runtime | None = None


def configure(options: Options, metrics: Metrics | None = None) -> None:
    """Set the options before ``kopf.run`` (``kubellm run`` does; KopfRunner uses the env).

    ``metrics``: an instance already served on ``options.metrics_port`` (a leader-election
    standby serves them before kopf starts); without it ``startup`` creates and serves one.
    """
    global _options, _metrics
    _options, _metrics = options, metrics


def runtime() -> Runtime:
    if _runtime is None:
        raise kopf.TemporaryError("operator not started yet", delay=1)
    return _runtime


class Runtime:
    """The operator's live state: adapters, the reconciler, locks, the requeue queue."""

    def __init__(self, options: Options, metrics: Metrics) -> None:
        from kubellm.k8s import KubeCluster, load_api_client
        from kubellm.k8s.store import CachingCluster
        from kubellm.modelinfo import FactsResolver

        self.options = options
        self.metrics = metrics
        self.api = KubeCluster(load_api_client(options.kubeconfig), on_write=metrics.write)
        self.cluster = CachingCluster(self.api, set(WATCHED_KINDS.values()))
        self.reconciler = Reconciler(
            self.cluster, FactsResolver().resolve,
            Settings(image=options.image, hub_endpoint=options.hub_endpoint),
            on_planned=self.note_planned_cache)
        try:  # GPUs promised before a restart stay promised (see Reconciler.seed)
            seeded = self.reconciler.seed(self.cluster.list(API_VERSION, KIND, options.namespace))
            log.info("GPU ledger seeded with %d deployment(s) from their status", seeded)
        except KubellmError as exc:
            log.warning("GPU ledger not seeded (%s); first reconciles re-enter it", exc)
        self.collector = CacheCollector(self.cluster, options.cache_grace_seconds,
                                        time.monotonic)
        self.known: dict[Key, str | None] = {}  # LLMDeployment -> its status.cache.key
        # LLMDeployment -> the cache key its latest plan chose, written by reconciles (worker
        # threads) before they read the cache Job, read by cache events (the loop): under a lock
        self.planned: dict[Key, str | None] = {}
        self._planned_lock = threading.Lock()
        self.cache_namespaces: set[str] = set()  # namespaces where cache objects were seen
        self._locks: dict[Key, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=options.workers, thread_name_prefix="kubellm-requeue")
        self.queue: asyncio.Queue[tuple[Key, str]] = asyncio.Queue()
        self.pending: set[Key] = set()
        self.failures: dict[Key, int] = {}  # consecutive temporary failures (backoff)
        self.gpu_waiting: set[Key] = set()  # refused with Sized=False/GpusBusy
        self.gpu_timers: set[Key] = set()  # waiting keys with a re-check scheduled
        self.tasks: list[asyncio.Task[None]] = []
        self.loop: asyncio.AbstractEventLoop | None = None

    # ---- one reconcile -----------------------------------------------------------------
    def _lock(self, key: Key) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def reconcile_key(self, key: Key, trigger: str) -> Outcome | None:
        namespace, name = key
        with self._lock(key):
            started = time.perf_counter()
            result = "ok"
            try:
                body = self.cluster.get(API_VERSION, KIND, name, namespace)
                if body is None or body["metadata"].get("deletionTimestamp"):
                    self.metrics.observe_status(key, None)
                    self.gpu_waiting.discard(key)
                    if self.reconciler.release(namespace, name):
                        self.threadsafe(self.requeue_gpu_waiting, "gpus-freed")
                    return None  # gone or going: ownerReferences + the GC do the rest
                outcome = self.reconciler.reconcile(body)
            except KubellmError as exc:
                outcome = Outcome(name=name, namespace=namespace, error=exc)
            except Exception:
                self.metrics.reconciles.labels(trigger=trigger, result="crash").inc()
                raise
            finally:
                self.metrics.duration.observe(time.perf_counter() - started)
            if outcome.error is not None:
                result = "permanent" if isinstance(outcome.error, PermanentError) else "temporary"
                self.metrics.errors.labels(reason=outcome.error.reason).inc()
            self.metrics.reconciles.labels(trigger=trigger, result=result).inc()
            for phase, seconds in outcome.timings.items():
                self.metrics.phases.labels(phase=phase).observe(seconds)
            if outcome.status:
                self.metrics.observe_status(key, outcome.status)
                self.note_gpu_wait(key, outcome.status)
            if outcome.gpus_released:
                self.threadsafe(self.requeue_gpu_waiting, "gpus-freed")
            if outcome.applied or outcome.status_written or outcome.error:
                log.info("%s/%s [%s]: ready=%s applied=%s status=%s%s", namespace, name, trigger,
                         outcome.ready, outcome.applied or "-",
                         "written" if outcome.status_written else "unchanged",
                         f" error={outcome.error.reason}: {outcome.error}" if outcome.error
                         else "")
            return outcome

    # ---- waiting for GPUs --------------------------------------------------------------
    def note_gpu_wait(self, key: Key, status: dict[str, Any]) -> None:
        """Track deployments refused for busy GPUs and schedule their re-check."""
        sized: dict[str, Any] = next(
            (c for c in status.get("conditions") or [] if c.get("type") == "Sized"), {})
        if sized.get("status") == "False" and sized.get("reason") == Reason.GPUS_BUSY:
            self.gpu_waiting.add(key)
            if key not in self.gpu_timers:
                self.gpu_timers.add(key)
                delay = min(GPU_WAIT_SECONDS, self.options.resync_seconds)
                self.threadsafe(self._gpu_recheck, key, delay)
        else:
            self.gpu_waiting.discard(key)

    def _gpu_recheck(self, key: Key, delay: float) -> None:
        def fire() -> None:
            self.gpu_timers.discard(key)
            if key in self.gpu_waiting:
                self.requeue(key, "gpus")

        asyncio.get_running_loop().call_later(delay, fire)

    def requeue_gpu_waiting(self, trigger: str) -> None:
        self.requeue_many(list(self.gpu_waiting), trigger)

    def threadsafe(self, func: Any, *args: Any) -> None:
        """Run ``func(*args)`` on the event loop (from a reconcile thread, or on the loop)."""
        if self.loop is not None:
            self.loop.call_soon_threadsafe(func, *args)

    # ---- the requeue queue -------------------------------------------------------------
    def requeue(self, key: Key, trigger: str, delay: float = 0.0) -> None:
        """Ask for a reconcile of ``key`` (coalesced with one already waiting)."""
        if delay > 0:
            asyncio.get_running_loop().call_later(delay, self.requeue, key, trigger, 0.0)
            return
        if key in self.pending:
            return
        self.pending.add(key)
        self.queue.put_nowait((key, trigger))

    def requeue_many(self, keys: Iterable[Key], trigger: str) -> None:
        for key in sorted(keys):
            self.requeue(key, trigger)

    async def worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            key, trigger = await self.queue.get()
            self.pending.discard(key)
            try:
                outcome = await loop.run_in_executor(self.executor, self.reconcile_key, key,
                                                     trigger)
            except Exception:
                log.exception("%s/%s [%s]: reconcile crashed; retrying in 30s", *key, trigger)
                self.requeue(key, "retry", 30.0)
                continue
            if outcome is not None and isinstance(outcome.error, TemporaryError):
                attempt = self.failures.get(key, 0)
                self.failures[key] = attempt + 1
                self.requeue(key, "retry", backoff(outcome.error.delay, attempt))
            else:
                self.failures.pop(key, None)

    async def resync_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.options.resync_seconds)
            self.requeue_many(list(self.known), "resync")
            for namespace in sorted({ns for ns, _ in self.known} | self.cache_namespaces):
                try:
                    await loop.run_in_executor(self.executor, self.collect_caches, namespace)
                except KubellmError as exc:  # e.g. the apiserver restarting: next resync
                    log.warning("cache garbage collection in %s failed: %s", namespace, exc)
                except Exception:
                    log.exception("cache garbage collection in %s failed", namespace)

    def collect_caches(self, namespace: str) -> None:
        llmds = self.cluster.list(API_VERSION, KIND, namespace)
        removed = self.collector.collect(namespace, llmds)
        if removed:
            log.info("%s: removed unused caches %s", namespace, removed)

    def note_planned_cache(self, namespace: str, name: str, cache_key: str | None) -> None:
        """Called by a reconcile right after planning, before it reads the cache Job."""
        with self._planned_lock:
            if cache_key is None:
                self.planned.pop((namespace, name), None)
            else:
                self.planned[(namespace, name)] = cache_key

    def users_of_cache(self, namespace: str, key: str | None) -> list[Key]:
        """Deployments to wake when cache ``key`` changes: those whose status names it, and
        those whose latest plan chose it (a reconcile in flight whose status does not say so
        yet). A reconcile notes its plan before it reads the Job, and an event updates the store
        before asking here, so either this finds the deployment or its reconcile sees the Job's
        new state: no wake-up is lost."""
        if not key:
            return []
        with self._planned_lock:
            planned = {k for k, v in self.planned.items() if k[0] == namespace and v == key}
        return sorted(planned | {k for k, v in self.known.items()
                                 if k[0] == namespace and v == key})

    def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        for _ in range(self.options.workers):
            self.tasks.append(asyncio.create_task(self.worker()))
        self.tasks.append(asyncio.create_task(self.resync_loop()))

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        # Queued reconciles are dropped; running ones finish (bounded by the API request
        # timeouts) before kopf returns, so `kubellm run --leader-elect` releases the Lease
        # only after this instance's last write.
        await asyncio.to_thread(self.executor.shutdown, wait=True, cancel_futures=True)


def configure_settings(settings: kopf.OperatorSettings, options: Options) -> None:
    """All kopf settings in one place."""
    settings.persistence.finalizer = f"{GROUP}/finalizer"  # unused: no handler needs one
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration")
    settings.posting.level = logging.WARNING  # kopf's own events: warnings/errors only
    settings.posting.reporting_component = "kubellm"
    # No KopfPeering objects to write: one instance reconciles — the only replica, or the holder
    # of the leader Lease (``kubellm run --leader-elect``, kubellm.k8s.leader) started kopf.
    settings.peering.standalone = True
    settings.peering.mandatory = False
    settings.execution.max_workers = options.workers
    settings.execution.default_backoff = 30
    settings.networking.request_timeout = 60
    settings.networking.connect_timeout = 10
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.watching.connect_timeout = 10
    # children: watch only kubellm's own objects, filtered by the apiserver
    for selector in (("apps", "deployments"), ("", "services"), ("batch", "jobs"),
                     ("", "persistentvolumeclaims"), (LWS_GROUP, "leaderworkersets")):
        settings.watching.label_selectors[selector] = naming.MANAGED_SELECTOR


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    global _runtime
    options = _options or Options.from_env()
    configure_settings(settings, options)
    metrics = _metrics
    if metrics is None:
        metrics = Metrics()
        if options.metrics_port:
            metrics.serve(options.metrics_port)
    metrics.leader.set(1)  # started only once it may reconcile (leader, or no election)
    _runtime = await asyncio.to_thread(Runtime, options, metrics)
    _runtime.start()
    log.info("kubellm operator started (namespace=%s, resync=%ss, metrics=%s)",
             options.namespace or "*", options.resync_seconds, options.metrics_port)


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    global _runtime
    if _runtime is not None:
        await _runtime.stop()
        _runtime = None


MAX_BACKOFF = 600.0  # seconds; a long Hub outage costs one retry per 10 minutes per object


def backoff(delay: float, attempt: int) -> float:
    """Exponential backoff from the error's own delay hint: delay, 2x, 4x ... up to 10 min."""
    return float(min(max(delay, 1.0) * 2.0 ** min(max(attempt, 0), 10), MAX_BACKOFF))


def raise_for(outcome: Outcome | None, retry: int = 0) -> None:
    """Map a reconcile's error onto kopf (the handlers layer is the only place doing so).

    ``retry`` is kopf's attempt counter for this change, for the exponential backoff.
    """
    error = outcome.error if outcome else None
    if isinstance(error, PermanentError):
        raise kopf.PermanentError(f"{error.reason}: {error}")
    if isinstance(error, TemporaryError):
        raise kopf.TemporaryError(f"{error.reason}: {error}", delay=backoff(error.delay, retry))
    if error is not None:
        raise kopf.TemporaryError(str(error), delay=backoff(30, retry))


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL)
def reconcile_handler(name: str, namespace: str | None, retry: int, **_: Any) -> None:
    """create, update and resume: the same level-triggered reconcile."""
    raise_for(runtime().reconcile_key((namespace or "default", name), "kopf"), retry)


def _observe(rt: Runtime, event: kopf.RawEvent, resource: kopf.Resource) -> None:
    kind = WATCHED_KINDS.get(resource.plural)
    obj = event.get("object")
    if kind and isinstance(obj, dict):
        rt.cluster.observe(kind, cast(dict[str, Any], obj),
                           deleted=event.get("type") == "DELETED")


@kopf.on.event(GROUP, VERSION, PLURAL)
async def llmd_event(type: str, body: kopf.Body, name: str, namespace: str | None,
                     event: kopf.RawEvent, resource: kopf.Resource, **_: Any) -> None:
    """Keep the store and the list of known LLMDeployments with their cache keys."""
    rt = _runtime
    if rt is None:
        return
    _observe(rt, event, resource)
    key = (namespace or "default", name)
    if type == "DELETED":
        rt.known.pop(key, None)
        rt.note_planned_cache(*key, None)
        rt.failures.pop(key, None)
        rt.metrics.observe_status(key, None)
        rt.requeue(key, "deleted")  # releases its GPUs under its own lock, then wakes waiters
        return
    status = body.get("status") or {}
    rt.known[key] = (status.get("cache") or {}).get("key")


@kopf.on.event(GROUP, VERSION, "licensepolicies")
async def policy_event(type: str, name: str, **_: Any) -> None:
    """A policy changed: every deployment's licence decision may change."""
    rt = _runtime
    if rt is None or type is None:  # None: the initial listing; resume covers it
        return
    rt.reconciler.invalidate_policies()
    log.info("LicensePolicy %s %s: re-evaluating %d deployments", name, type.lower(),
             len(rt.known))
    rt.requeue_many(list(rt.known), "policy")


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
    rt = _runtime
    if rt is None:
        return
    freed = False
    if resource.plural in WORKLOAD_PLURALS and type is not None:
        meta = body.get("metadata", {})
        old = rt.cluster.cached(WATCHED_KINDS[resource.plural], meta.get("name", ""), namespace)
        before = ((old or {}).get("spec") or {}).get("replicas") or 0
        after = (body.get("spec") or {}).get("replicas") or 0
        freed = type == "DELETED" or after < before
    _observe(rt, event, resource)
    if freed:
        rt.requeue_gpu_waiting("gpus-freed")
    if type is None:
        return
    for key in _owner_keys(body, namespace or "default"):
        if key in rt.known:
            rt.requeue(key, "child")


@kopf.on.event("batch", "v1", "jobs", labels=MANAGED)
@kopf.on.event("", "v1", "persistentvolumeclaims", labels=MANAGED)
async def cache_child_event(type: str, body: kopf.Body, namespace: str | None,
                            event: kopf.RawEvent, resource: kopf.Resource, **_: Any) -> None:
    """A shared cache Job/PVC changed: requeue every deployment using that cache."""
    rt = _runtime
    if rt is None:
        return
    _observe(rt, event, resource)
    namespace = namespace or "default"
    rt.cache_namespaces.add(namespace)  # the initial listing too: caches to collect later
    if type is None:
        return
    cache_key = (body.get("metadata", {}).get("labels") or {}).get(naming.LABEL_CACHE_KEY)
    rt.requeue_many(rt.users_of_cache(namespace, cache_key), "child")
