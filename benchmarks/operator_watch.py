"""The benchmark's observer: one watch stream per kind, cluster-wide, recording when each object
was first seen and when each LLMDeployment first reached the state it is expected to settle in.

Both phases of ``bench_operator.py`` (the baseline client and the operator) are timed by this one
observer, so neither gets a cheaper clock. Also: the operator process's peak RSS and CPU seconds
from /proc, and the apiserver's count of PATCHes to the LLMDeployment main resource (kopf's own
annotation writes; the operator's status writes go to the status subresource).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Key = tuple[str, str, str]  # kind, namespace, name
READY = "True"  # the expected state of a deployable LLMDeployment: status.ready "True"


@dataclass(frozen=True)
class Expected:
    """How an LLMDeployment settles: ``ready`` "True", or "False" with ``reason``; ``generation``
    the spec generation status must have observed (0: any); ``gone``: deleted."""

    ready: str
    reason: str | None = None
    generation: int = 0
    gone: bool = False


def settled(obj: dict[str, Any] | None, want: Expected) -> bool:
    if want.gone:
        return obj is None
    if obj is None:
        return False
    status = obj.get("status") or {}
    if want.generation and status.get("observedGeneration") != want.generation:
        return False
    if status.get("ready") != want.ready:
        return False
    return want.ready == READY or status.get("reason") == want.reason


@dataclass
class Observer:
    """Watches LLMDeployments, Deployments, Services, Jobs and PVCs in every namespace."""

    api_client: Any
    namespace_prefix: str
    expected: dict[tuple[str, str], Expected] = field(default_factory=dict)
    first_seen: dict[Key, float] = field(default_factory=dict)
    settled_at: dict[tuple[str, str], float] = field(default_factory=dict)
    job_complete: dict[tuple[str, str], float] = field(default_factory=dict)
    on_deployment: Callable[[dict[str, Any]], None] | None = None
    on_job: Callable[[dict[str, Any]], None] | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _live: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def expect(self, expected: dict[tuple[str, str], Expected]) -> None:
        """New expectations (a new phase): forget settle times, re-check what is live."""
        now = time.monotonic()
        with self._lock:
            self.expected = dict(expected)
            self.settled_at = {}
            for key, want in self.expected.items():
                if settled(self._live.get(key), want):
                    self.settled_at[key] = now

    def all_settled(self) -> bool:
        with self._lock:
            return len(self.settled_at) >= len(self.expected)

    def unsettled(self) -> list[tuple[str, str]]:
        with self._lock:
            return sorted(k for k in self.expected if k not in self.settled_at)

    def seen(self, keys: list[Key]) -> tuple[float | None, int]:
        """When the last of ``keys`` was first seen (None if any is missing), and how many are."""
        with self._lock:
            times = [self.first_seen[k] for k in keys if k in self.first_seen]
        return (max(times) if len(times) == len(keys) and times else None), len(times)

    def forget_seen(self) -> None:
        with self._lock:
            self.first_seen = {}
            self.job_complete = {}

    def start(self) -> Observer:
        from kubernetes import client

        core, apps, batch = (client.CoreV1Api(self.api_client), client.AppsV1Api(self.api_client),
                             client.BatchV1Api(self.api_client))
        custom = client.CustomObjectsApi(self.api_client)
        streams: list[tuple[Callable[..., Any], tuple[Any, ...], str]] = [
            (custom.list_cluster_custom_object, ("kubellm.io", "v1alpha1", "llmdeployments"),
             "LLMDeployment"),
            (apps.list_deployment_for_all_namespaces, (), "Deployment"),
            (core.list_service_for_all_namespaces, (), "Service"),
            (batch.list_job_for_all_namespaces, (), "Job"),
            (core.list_persistent_volume_claim_for_all_namespaces, (), "PersistentVolumeClaim"),
        ]
        for func, args, kind in streams:
            threading.Thread(target=self._run, args=(func, args, kind), daemon=True).start()
        return self

    def _run(self, func: Callable[..., Any], args: tuple[Any, ...], kind: str) -> None:
        from kubernetes import watch

        while not self.stop.is_set():
            try:
                w = watch.Watch()  # type: ignore[no-untyped-call]
                stream = w.stream(func, *args, timeout_seconds=30)  # type: ignore[no-untyped-call]
                for event in stream:
                    self._event(kind, event["type"], event["object"])
                    if self.stop.is_set():
                        w.stop()  # type: ignore[no-untyped-call]
            except Exception:  # a dropped stream: start a new one (a relist) unless stopping
                if self.stop.is_set():
                    return
                time.sleep(0.5)

    def _event(self, kind: str, type_: str, obj: Any) -> None:
        now = time.monotonic()
        wire: dict[str, Any] = (obj if isinstance(obj, dict)
                                else self.api_client.sanitize_for_serialization(obj))
        meta = wire.get("metadata") or {}
        namespace, name = meta.get("namespace", ""), meta.get("name", "")
        if not namespace.startswith(self.namespace_prefix):
            return
        with self._lock:
            if type_ != "DELETED":
                self.first_seen.setdefault((kind, namespace, name), now)
            if kind == "LLMDeployment":
                key = (namespace, name)
                if type_ == "DELETED":
                    self._live.pop(key, None)
                else:
                    self._live[key] = wire
                want = self.expected.get(key)
                if want is not None and key not in self.settled_at and settled(
                        self._live.get(key), want):
                    self.settled_at[key] = now
        if type_ == "DELETED":
            return
        if kind == "Job" and job_succeeded(wire):
            with self._lock:
                self.job_complete.setdefault((namespace, name), now)
        if kind == "Deployment" and self.on_deployment is not None:
            self.on_deployment(wire)
        elif kind == "Job" and self.on_job is not None:
            self.on_job(wire)


def job_succeeded(job: dict[str, Any]) -> bool:
    st = job.get("status") or {}
    return (st.get("succeeded") or 0) >= 1 or any(
        c.get("type") == "Complete" and c.get("status") == "True"
        for c in st.get("conditions") or [])


def rss_mib(pid: int, field_name: str = "VmHWM") -> float:
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith(field_name + ":"):
            return int(row.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def kopf_patches(cluster: Any) -> float:
    """PATCHes of the llmdeployments main resource the apiserver served (kopf's annotations;
    the benchmark's own spec edits are subtracted by the caller)."""
    text = cluster.kubectl("get", "--raw", "/metrics").stdout
    total = 0.0
    for row in text.splitlines():
        if (row.startswith("apiserver_request_total{") and 'resource="llmdeployments"' in row
                and 'subresource=""' in row and 'verb="PATCH"' in row):
            total += float(row.rsplit(" ", 1)[1])
    return total
