"""List-then-watch of one kind, cluster-wide, keeping a trimmed view of each object (an informer).

The GPU inventory needs every Node, every GPU-holding Pod and every kubellm serving Deployment.
Listing them on each reconcile (or every ``inventory_ttl``) costs the operator and the apiserver
in proportion to the cluster: at 1,000 deployments those LISTs were most of the operator's CPU.
An ``Informer`` lists once (paginated), then watches from that list's resourceVersion and applies
each event to a store of *views*: ``view(obj)`` keeps only the fields the inventory reads
(``kubellm.sizing.inventory`` ``node_view``/``pod_view``, ``kubellm.sizing.commitments``
``workload_view``), or drops the object (``None``: a pod that holds no GPU), so memory is a few
hundred bytes per GPU pod, not a whole Pod.

- ``synced`` is set after the first complete list; until then ``items`` must not be taken as
  the cluster's state (``CachingCluster.list`` falls back to a real LIST).
- Watch bookmarks keep the resourceVersion fresh; a 410 Gone (the version was compacted) makes it
  list again, and the difference to the old store is reported like watch events.
- A failed list or watch (apiserver restarting, network) is retried with exponential backoff
  (1 s doubling to 30 s); the store keeps serving the last known state meanwhile, which is what a
  level-triggered reconciler wants (the next event or resync corrects it).
- ``on_change(old_view, new_view)`` is called on the informer's thread for every change after the
  first sync (``None`` for absent); the operator uses it to wake deployments waiting for GPUs.

Hand-written: the kubernetes client for Python has no informer; ~150 lines.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from kubernetes.client.exceptions import ApiException
from kubernetes.watch import watch as _watch

log = logging.getLogger("kubellm.informer")
# The client's line splitter of a chunked watch response (untyped; one line per event).
iter_resp_lines: Any = _watch.iter_resp_lines

View = dict[str, Any]
Key = tuple[str | None, str]
ListPage = Callable[[str | None], dict[str, Any]]  # continue token -> one page of a LIST
Watch = Callable[[str], Iterable[dict[str, Any]]]  # resourceVersion -> watch events
OnChange = Callable[[View | None, View | None], None]

PAGE_SIZE = 500
WATCH_TIMEOUT = 300  # seconds the apiserver keeps one watch open (then it is renewed)
MAX_BACKOFF = 30.0


class Gone(Exception):
    """The watch's resourceVersion is too old (HTTP 410 / an ERROR event with code 410)."""


def _key(obj: dict[str, Any]) -> Key:
    meta = obj.get("metadata") or {}
    return (meta.get("namespace"), str(meta.get("name") or ""))


class Informer:
    """One kind's list+watch loop on a daemon thread; ``items`` is the current store."""

    def __init__(self, kind: str, list_page: ListPage, watch: Watch,
                 view: Callable[[dict[str, Any]], View | None],
                 on_change: OnChange | None = None, label_selector: str | None = None) -> None:
        self.kind = kind
        self.label_selector = label_selector  # what its list/watch select (None: everything)
        self._list_page, self._watch, self._view = list_page, watch, view
        self.on_change = on_change
        self._items: dict[Key, View] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.synced = threading.Event()
        self.resource_version: str | None = None
        self.relists = 0
        self.events = 0
        self._thread: threading.Thread | None = None

    # ---- the store ---------------------------------------------------------------------
    def items(self) -> list[View]:
        """The views of every stored object (a new list; the views are shared: do not edit)."""
        with self._lock:
            return list(self._items.values())

    def _changed(self, old: View | None, new: View | None) -> None:
        if self.on_change is not None and self.synced.is_set() and old != new:
            try:
                self.on_change(old, new)
            except Exception:  # a bug in a callback must not stop the watch
                log.exception("%s informer: on_change failed", self.kind)

    def apply_event(self, event: dict[str, Any]) -> None:
        """One watch event: ADDED/MODIFIED/DELETED update the store, BOOKMARK only the
        resourceVersion, ERROR 410 raises ``Gone``."""
        kind, obj = event.get("type"), event.get("object") or {}
        if kind == "ERROR":
            if obj.get("code") == 410:
                raise Gone(str(obj.get("message")))
            raise RuntimeError(f"watch error: {obj.get('message') or obj}")
        rv = (obj.get("metadata") or {}).get("resourceVersion")
        if kind in ("ADDED", "MODIFIED", "DELETED"):
            self.events += 1
            key = _key(obj)
            new = None if kind == "DELETED" else self._view(obj)
            with self._lock:
                old = self._items.pop(key, None) if new is None else self._items.get(key)
                if new is not None:
                    self._items[key] = new
            self._changed(old, new)
        if rv:
            self.resource_version = str(rv)

    def relist(self) -> None:
        """A full (paginated) LIST replaces the store; differences are reported as changes."""
        fresh: dict[Key, View] = {}
        token: str | None = None
        rv = None
        while True:
            page = self._list_page(token)
            for obj in page.get("items") or ():
                view = self._view(obj)
                if view is not None:
                    fresh[_key(obj)] = view
            meta = page.get("metadata") or {}
            rv = meta.get("resourceVersion") or rv
            token = meta.get("continue") or None
            if not token:
                break
        with self._lock:
            old, self._items = self._items, fresh
        self.resource_version = str(rv) if rv else None
        self.relists += 1
        if self.synced.is_set():
            for key in sorted(old.keys() | fresh.keys(), key=str):
                self._changed(old.get(key), fresh.get(key))
        self.synced.set()

    # ---- the loop ----------------------------------------------------------------------
    def run(self) -> None:
        delay = 1.0
        while not self._stop.is_set():
            try:
                if self.resource_version is None or not self.synced.is_set():
                    self.relist()
                for event in self._watch(self.resource_version or "0"):
                    if self._stop.is_set():
                        return
                    self.apply_event(event)
                delay = 1.0  # a watch that timed out normally: renew it at once
            except Gone:
                log.info("%s informer: resourceVersion %s expired, listing again", self.kind,
                         self.resource_version)
                self.resource_version = None
            except Exception as exc:  # apiserver down, network: keep the store, back off
                if self._stop.is_set():
                    return
                log.warning("%s informer: %s; retrying in %.0f s", self.kind, exc, delay)
                self._stop.wait(delay)
                delay = min(delay * 2, MAX_BACKOFF)

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name=f"kubellm-informer-{self.kind}",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the loop to end; an open watch ends at its next event or timeout (daemon)."""
        self._stop.set()


# ---- the kubernetes client side --------------------------------------------------------
def _stream(resp: Any) -> Iterator[dict[str, Any]]:
    try:
        for line in iter_resp_lines(resp):
            yield json.loads(line)
    finally:
        resp.close()
        resp.release_conn()


def client_informer(list_func: Callable[..., Any], kind: str,
                    view: Callable[[dict[str, Any]], View | None],
                    field_selector: str | None = None,
                    on_change: OnChange | None = None,
                    label_selector: str | None = None) -> Informer:
    """An ``Informer`` over a kubernetes-client list function (``CoreV1Api.list_node``,
    ``list_pod_for_all_namespaces``, ``AppsV1Api.list_deployment_for_all_namespaces``), reading
    raw JSON (no model objects)."""
    extra = {k: v for k, v in (("field_selector", field_selector),
                               ("label_selector", label_selector)) if v}

    def list_page(token: str | None) -> dict[str, Any]:
        args = {"_continue": token} if token else {}
        resp = list_func(limit=PAGE_SIZE, _preload_content=False, _request_timeout=60,
                         **args, **extra)
        data: dict[str, Any] = json.loads(resp.data)
        return data

    def watch(resource_version: str) -> Iterator[dict[str, Any]]:
        try:
            resp = list_func(watch=True, resource_version=resource_version,
                             allow_watch_bookmarks=True, timeout_seconds=WATCH_TIMEOUT,
                             _preload_content=False,
                             _request_timeout=(10, WATCH_TIMEOUT + 30), **extra)
        except ApiException as exc:
            if exc.status == 410:
                raise Gone(str(exc.reason)) from exc
            raise
        return _stream(resp)

    return Informer(kind, list_page, watch, view, on_change, label_selector)
