"""What an owner's reconcile reads of a child: a child's watch event is news only if this moved.

Each change of a kubellm child (PVC, download or evaluation Job, serving Deployment or
LeaderWorkerSet, Service) comes as a watch event, and most of them cannot change the owner's
status or its next apply: the echo of the operator's own write (the store already holds the
apply response), a Job's ``startTime``, ``active`` or ``uncountedTerminatedPods``, a Deployment's
``Progressing`` condition or ``unavailableReplicas``, a PVC binding. ``child_view`` keeps only

- what a user or another controller may change that the operator repairs: labels, annotations,
  ownerReferences, deletion, and the spec (its ``generation`` where the kind keeps one, the
  whole spec for a Service or PVC, which keep none);
- what ``kubellm.reconcile.status`` and ``kubellm.reconcile.evaluate`` read of its status:
  a workload's replica counts and observed generation, a Job's finished conditions and its
  succeeded and failed pod counts.

The handlers compare the view of the event's object with the store's copy before recording it
and wake the owner only when it differs (``tests/unit/test_reconcile_childview.py`` checks that
equal views give equal status). A kind not listed here is always news.
"""

from __future__ import annotations

from typing import Any

WORKLOAD_STATUS = ("replicas", "readyReplicas", "updatedReplicas", "observedGeneration")
JOB_STATUS = ("succeeded", "failed")
SPEC_WITHOUT_GENERATION = ("Service", "PersistentVolumeClaim")


def _frozen(value: Any) -> Any:
    """A hashable, order-independent copy of a JSON value."""
    if isinstance(value, dict):
        return tuple(sorted((k, _frozen(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    return value


def child_view(kind: str, obj: dict[str, Any]) -> Any:
    """The part of child ``obj`` its owner's reconcile depends on (hashable); None: unknown
    kind, every change is news."""
    meta = obj.get("metadata") or {}
    common = (_frozen(meta.get("labels")), _frozen(meta.get("annotations")),
              _frozen(meta.get("ownerReferences")), meta.get("deletionTimestamp"))
    status = obj.get("status") or {}
    if kind in ("Deployment", "LeaderWorkerSet"):
        return (common, meta.get("generation"), _frozen((obj.get("spec") or {}).get("replicas")),
                tuple(status.get(k) for k in WORKLOAD_STATUS))
    if kind == "Job":
        finished = tuple(sorted(
            (c.get("type"), c.get("reason"), c.get("message"))
            for c in status.get("conditions") or [] if c.get("status") == "True"))
        return (common, meta.get("generation"), finished,
                tuple(status.get(k) for k in JOB_STATUS))
    if kind in SPEC_WITHOUT_GENERATION:
        return (common, _frozen(obj.get("spec")))
    return None


def is_news(kind: str, before: dict[str, Any] | None, after: dict[str, Any],
            deleted: bool = False) -> bool:
    """Whether a watch event of ``after`` (``before``: the store's copy) may change the owner's
    reconcile."""
    if deleted or before is None:
        return True
    view = child_view(kind, after)
    return view is None or view != child_view(kind, before)
