"""Prometheus metrics of the operator (prometheus_client), served by ``kubellm run --metrics-port``.

- ``kubellm_reconciles_total{trigger,result}``: reconciles by what woke them (kopf, resync, child,
  policy) and how they ended (ok, temporary, permanent);
- ``kubellm_reconcile_errors_total{reason}``: failed reconciles by CamelCase reason;
- ``kubellm_reconcile_duration_seconds``: histogram of one reconcile, and
  ``kubellm_reconcile_phase_seconds{phase}`` of its phases (where the time goes);
- ``kubellm_api_writes_total{verb,kind}``: every write request the operator sent (apply, patch,
  delete, event create) — a converged cluster's idle resync must leave it unchanged;
- ``kubellm_deployments{condition,status}``: LLMDeployments by condition status (Ready,
  LicenseApproved, ...), from the last reconcile of each;
- ``kubellm_leader``: 1 while this instance reconciles (it holds the leader Lease, or runs without
  ``--leader-elect``), 0 while it waits as a standby.

A private ``CollectorRegistry`` (not the process-global one), so tests can build several.
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter as _Counter
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

CONDITION_TYPES = ("LicenseApproved", "Sized", "CacheReady", "Available", "Evaluated", "Ready")


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.reconciles = Counter("kubellm_reconciles", "Reconciles of LLMDeployments.",
                                  ["trigger", "result"], registry=self.registry)
        self.errors = Counter("kubellm_reconcile_errors", "Failed reconciles by reason.",
                              ["reason"], registry=self.registry)
        self.duration = Histogram("kubellm_reconcile_duration_seconds",
                                  "Duration of one reconcile.", registry=self.registry,
                                  buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.phases = Histogram("kubellm_reconcile_phase_seconds",
                                "Time per reconcile phase: facts, observe (policies, inventory), "
                                "plan, cache, serving, status (+events).", ["phase"],
                                registry=self.registry,
                                buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5))
        self.writes = Counter("kubellm_api_writes", "Write requests sent to the apiserver.",
                              ["verb", "kind"], registry=self.registry)
        self.deployments = Gauge("kubellm_deployments", "LLMDeployments by condition status.",
                                 ["condition", "status"], registry=self.registry)
        self.leader = Gauge("kubellm_leader", "1 while this instance is the one reconciling "
                            "(leader Lease held, or no leader election), 0 in standby.",
                            registry=self.registry)
        self.evaluation_pass_rate = Gauge(
            "kubellm_evaluation_pass_rate", "Weighted pass rate of the last evaluation of a "
            "deployment (spec.evaluation; status.evaluation.passRate).",
            ["namespace", "name"], registry=self.registry)
        self.evaluation_passed = Gauge(
            "kubellm_evaluation_passed", "1 when the last evaluation reached minPassRate, 0 when "
            "it did not or could not run.", ["namespace", "name"], registry=self.registry)
        self._lock = threading.Lock()
        self._last: dict[tuple[str, str], dict[str, str]] = {}

    def write(self, verb: str, kind: str) -> None:
        self.writes.labels(verb=verb, kind=kind).inc()

    def observe_status(self, key: tuple[str, str], status: dict[str, Any] | None) -> None:
        """Record the conditions of one deployment (None: it was deleted) and refresh the gauge."""
        with self._lock:
            evaluation = (status or {}).get("evaluation")
            if evaluation and (evaluation.get("passed") is not None or evaluation.get("error")):
                labels = {"namespace": key[0], "name": key[1]}
                self.evaluation_pass_rate.labels(**labels).set(evaluation.get("passRate") or 0)
                self.evaluation_passed.labels(**labels).set(1 if evaluation.get("passed") else 0)
            else:
                for gauge in (self.evaluation_pass_rate, self.evaluation_passed):
                    with contextlib.suppress(KeyError):
                        gauge.remove(*key)
            if status is None:
                self._last.pop(key, None)
            else:
                self._last[key] = {c["type"]: c["status"] for c in status.get("conditions") or []}
            counts: _Counter[tuple[str, str]] = _Counter()
            for conditions in self._last.values():
                for type_, value in conditions.items():
                    counts[(type_, value)] += 1
            for type_ in CONDITION_TYPES:
                for value in ("True", "False", "Unknown"):
                    self.deployments.labels(condition=type_, status=value).set(
                        counts.get((type_, value), 0))

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:
        start_http_server(port, addr=addr, registry=self.registry)
