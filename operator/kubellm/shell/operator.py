"""The operator's live state (no kopf): adapters, the reconciler, the work queue, who to wake.

``Operator`` is built once per start from the frozen ``OperatorConfig`` and its adapters
(``Operator.connect`` makes the real ones). The kopf handlers only tell it what happened
(``observe``, ``enqueue``, the ``on_*`` methods); the one ``WorkQueue`` decides when a key runs and
when it is retried, and ``reconcile_key`` is the only place a reconcile starts:

- a reconcile's ``TemporaryError`` is retried with the queue's exponential backoff from the
  error's delay hint; a ``PermanentError`` is explained in status and not retried (the next
  change or resync runs it again); a crash (a bug) is retried after ``CRASH_DELAY``;
- GPUs freed: a deployment refused with ``Sized=False/GpusBusy`` waits in ``gpu_waiting``; it is
  re-added when an LLMDeployment is deleted (its ledger entry released), when a kubellm serving
  workload is deleted or scaled down, when any GPU pod ends or a node offers more GPUs (the
  Node/Pod informers, ``gpus_changed``), and every ``gpu_wait_seconds`` as a safety net;
- a cache Job/PVC changing wakes every deployment of that cache (``users_of_cache``: by status,
  and by the plan of a reconcile in flight, so no wake-up is lost);
- the periodic resync re-adds every known deployment and collects unused caches.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import threading
import time
from typing import Any

from kubellm.api.v1alpha1 import API_VERSION
from kubellm.errors import KubellmError, PermanentError, TemporaryError
from kubellm.metrics import Metrics
from kubellm.naming import parse_selector, selector_matches
from kubellm.reasons import Reason
from kubellm.reconcile import ClusterPort, FactsPort, Outcome, Reconciler
from kubellm.reconcile.cachegc import CacheCollector
from kubellm.shell.config import OperatorConfig
from kubellm.shell.workqueue import WorkQueue

log = logging.getLogger("kubellm.operator")

KIND = "LLMDeployment"
Key = tuple[str, str]
OTHER_ERROR_DELAY = 30.0  # retry hint of an error that is neither temporary nor permanent
# Terminated pods hold no GPUs: the Pod informer does not even receive them.
LIVE_PODS = "status.phase!=Succeeded,status.phase!=Failed"


def user_essence(body: dict[str, Any]) -> int:
    """A fingerprint of what users change on an LLMDeployment: the spec (its generation),
    labels and annotations; never its status."""
    meta = body.get("metadata") or {}
    return hash((meta.get("generation"), tuple(sorted((meta.get("labels") or {}).items())),
                 tuple(sorted((meta.get("annotations") or {}).items()))))


class Operator:
    """One running operator: ``start`` on the loop, ``stop`` at shutdown."""

    def __init__(self, config: OperatorConfig, metrics: Metrics, cluster: Any,
                 resolve_facts: FactsPort) -> None:
        """``cluster``: a ``ClusterPort`` that also keeps the watch store (``observe``,
        ``cached``: ``kubellm.k8s.store.CachingCluster``)."""
        self.config = config
        self.metrics = metrics
        self.cluster = cluster
        port: ClusterPort = cluster
        self.reconciler = Reconciler(port, resolve_facts, config.reconcile,
                                     on_planned=self.note_planned_cache)
        self.collector = CacheCollector(port, config.cache_grace_seconds, time.monotonic)
        self.known: dict[Key, str | None] = {}  # LLMDeployment -> its status.cache.key
        self.essence: dict[Key, int] = {}  # LLMDeployment -> user_essence of its last event
        # LLMDeployment -> the cache key its latest plan chose, written by reconciles (worker
        # threads) before they read the cache Job, read by cache events (the loop): under a lock
        self.planned: dict[Key, str | None] = {}
        self._planned_lock = threading.Lock()
        self.cache_namespaces: set[str] = set()  # namespaces where cache objects were seen
        self.gpu_waiting: set[Key] = set()  # refused with Sized=False/GpusBusy
        self.gpu_timers: set[Key] = set()  # waiting keys with a re-check scheduled
        self.executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=config.workers, thread_name_prefix="kubellm-reconcile")
        self.queue: WorkQueue[Key] = WorkQueue(self.process, self.executor)
        self._shard = parse_selector(config.shard_selector) if config.shard_selector else ()
        self._resync: asyncio.Task[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def connect(cls, config: OperatorConfig, metrics: Metrics,
                watched_kinds: set[str]) -> Operator:
        """The real adapters: the kubernetes client behind a watch-fed store, Node, Pod and
        serving-Deployment informers for the GPU inventory and its commitments, the Hub."""
        from kubernetes import client as k8s_client

        from kubellm.k8s import KubeCluster, load_api_client
        from kubellm.k8s.informer import client_informer
        from kubellm.k8s.store import CachingCluster
        from kubellm.modelinfo import FactsResolver
        from kubellm.naming import SERVING_SELECTOR
        from kubellm.sizing.commitments import workload_view
        from kubellm.sizing.inventory import node_view, pod_view

        api = KubeCluster(load_api_client(config.kubeconfig), on_write=metrics.write)
        informers = {
            "Node": client_informer(api.core.list_node, "Node", node_view),
            "Pod": client_informer(api.core.list_pod_for_all_namespaces, "Pod", pod_view,
                                   field_selector=LIVE_PODS),
            "Deployment": client_informer(
                k8s_client.AppsV1Api(api.api_client).list_deployment_for_all_namespaces,
                "Deployment", workload_view, label_selector=SERVING_SELECTOR),
        }
        operator = cls(config, metrics, CachingCluster(api, watched_kinds, informers),
                       FactsResolver().resolve)
        for kind in ("Node", "Pod"):  # a serving Deployment shrinks when its owner's plan does
            informers[kind].on_change = functools.partial(operator.gpus_changed, kind)
        operator.seed()
        return operator

    def seed(self) -> None:
        """GPUs promised before a restart stay promised (see ``Reconciler.seed``)."""
        try:
            seeded = self.reconciler.seed(self.cluster.list(
                API_VERSION, KIND, self.config.namespace, self.config.shard_selector))
            log.info("GPU ledger seeded with %d deployment(s) from their status", seeded)
        except KubellmError as exc:
            log.warning("GPU ledger not seeded (%s); first reconciles re-enter it", exc)

    # ---- one reconcile (worker threads) ------------------------------------------------
    def process(self, key: Key, trigger: str) -> float | None:
        """The work queue's job: one reconcile; the retry delay hint, or None when done."""
        outcome = self.reconcile_key(key, trigger)
        error = outcome.error if outcome is not None else None
        if error is None or isinstance(error, PermanentError):
            return None  # a permanent error is explained in status: not retried
        if isinstance(error, TemporaryError):
            return error.delay
        return OTHER_ERROR_DELAY

    def reconcile_key(self, key: Key, trigger: str) -> Outcome | None:
        namespace, name = key
        started = time.perf_counter()
        result = "ok"
        try:
            body = self.cluster.get(API_VERSION, KIND, name, namespace)
            if body is None or body["metadata"].get("deletionTimestamp") or not self.in_shard(
                    body):  # gone, going, or relabelled into another operator's shard
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
            self.threadsafe(self.note_gpu_wait, key, outcome.status)
        if outcome.gpus_released:
            self.threadsafe(self.requeue_gpu_waiting, "gpus-freed")
        if outcome.applied or outcome.status_written or outcome.error:
            log.info("%s/%s [%s]: ready=%s applied=%s status=%s%s", namespace, name, trigger,
                     outcome.ready, outcome.applied or "-",
                     "written" if outcome.status_written else "unchanged",
                     f" error={outcome.error.reason}: {outcome.error}" if outcome.error
                     else "")
        return outcome

    def in_shard(self, body: dict[str, Any]) -> bool:
        """Whether ``--shard-selector`` (if any) matches the LLMDeployment: a filtered watch
        reports an object relabelled out of the shard as deleted, but it still exists."""
        return not self._shard or selector_matches(
            self._shard, body["metadata"].get("labels") or {})

    def threadsafe(self, func: Any, *args: Any) -> None:
        """Run ``func(*args)`` on the event loop (from a reconcile thread, or on the loop)."""
        if self.loop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(func, *args)

    # ---- what the handlers tell (the loop) ---------------------------------------------
    def enqueue(self, key: Key, trigger: str) -> None:
        self.queue.add(key, trigger)

    def requeue_many(self, keys: list[Key], trigger: str) -> None:
        self.queue.add_many(keys, trigger)

    def deployment_seen(self, key: Key, body: dict[str, Any]) -> None:
        """An LLMDeployment from the watch, the initial listing included: remember its cache
        key, and enqueue it when it is new or what users edit changed (generation, labels,
        annotations). Its status moving (the operator's own writes) enqueues nothing.

        This replaces kopf's create/update/resume handlers, which cost one diff-base annotation
        patch per object and change (kopf's state); a level-triggered reconcile needs no
        record of what it handled last."""
        self.known[key] = ((body.get("status") or {}).get("cache") or {}).get("key")
        essence = user_essence(body)
        if self.essence.get(key) != essence:
            self.essence[key] = essence
            self.enqueue(key, "changed")

    def deployment_deleted(self, key: Key) -> None:
        self.known.pop(key, None)
        self.essence.pop(key, None)
        self.note_planned_cache(*key, None)
        self.queue.forget(key)
        self.metrics.observe_status(key, None)
        self.enqueue(key, "deleted")  # releases its GPUs, then wakes waiters

    def policies_changed(self) -> None:
        self.reconciler.invalidate_policies()
        self.requeue_many(list(self.known), "policy")

    def owners_changed(self, keys: list[Key]) -> None:
        for key in keys:
            if key in self.known:
                self.enqueue(key, "child")

    def cache_changed(self, namespace: str, cache_key: str | None) -> None:
        self.requeue_many(self.users_of_cache(namespace, cache_key), "child")

    # ---- waiting for GPUs --------------------------------------------------------------
    def note_gpu_wait(self, key: Key, status: dict[str, Any]) -> None:
        """Track deployments refused for busy GPUs and schedule their re-check (the loop)."""
        sized: dict[str, Any] = next(
            (c for c in status.get("conditions") or [] if c.get("type") == "Sized"), {})
        if sized.get("status") == "False" and sized.get("reason") == Reason.GPUS_BUSY:
            self.gpu_waiting.add(key)
            if key not in self.gpu_timers:
                self.gpu_timers.add(key)
                delay = min(self.config.gpu_wait_seconds, self.config.resync_seconds)
                asyncio.get_running_loop().call_later(delay, self._gpu_recheck, key)
        else:
            self.gpu_waiting.discard(key)

    def _gpu_recheck(self, key: Key) -> None:
        self.gpu_timers.discard(key)
        if key in self.gpu_waiting:
            self.enqueue(key, "gpus")

    def requeue_gpu_waiting(self, trigger: str) -> None:
        self.requeue_many(list(self.gpu_waiting), trigger)

    def gpus_changed(self, kind: str, old: dict[str, Any] | None,
                     new: dict[str, Any] | None) -> None:
        """A Node/Pod informer's change (its thread): wake the waiters if GPUs may be free."""
        from kubellm.sizing.inventory import gpus_freed

        if self.gpu_waiting and gpus_freed(kind, old, new):
            self.threadsafe(self.requeue_gpu_waiting, "gpus-freed")

    # ---- shared caches -----------------------------------------------------------------
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

    def collect_caches(self, namespace: str) -> None:
        llmds = self.cluster.list(API_VERSION, KIND, namespace)
        removed = self.collector.collect(namespace, llmds)
        if removed:
            log.info("%s: removed unused caches %s", namespace, removed)

    async def resync_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.config.resync_seconds)
            self.requeue_many(list(self.known), "resync")
            for namespace in sorted({ns for ns, _ in self.known} | self.cache_namespaces):
                try:
                    await loop.run_in_executor(self.executor, self.collect_caches, namespace)
                except KubellmError as exc:  # e.g. the apiserver restarting: next resync
                    log.warning("cache garbage collection in %s failed: %s", namespace, exc)
                except Exception:
                    log.exception("cache garbage collection in %s failed", namespace)

    # ---- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        for informer in getattr(self.cluster, "informers", {}).values():
            informer.start()
        self.queue.start(self.config.workers)
        self._resync = asyncio.create_task(self.resync_loop())

    async def stop(self) -> None:
        if self._resync is not None:
            self._resync.cancel()
            await asyncio.gather(self._resync, return_exceptions=True)
        for informer in getattr(self.cluster, "informers", {}).values():
            informer.stop()
        await self.queue.stop()
        # Queued reconciles are dropped; running ones finish (bounded by the API request
        # timeouts) before kopf returns, so `kubellm run --leader-elect` releases the Lease
        # only after this instance's last write.
        await asyncio.to_thread(self.executor.shutdown, wait=True, cancel_futures=True)
