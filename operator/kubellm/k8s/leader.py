"""Leader election on a ``coordination.k8s.io/v1`` Lease (``kubellm run --leader-elect``).

The same protocol as client-go's ``leaderelection`` (controller-runtime ``--leader-elect``), so
``kubectl get lease`` reads the same way: the leader writes its identity and ``renewTime`` every
``RETRY_PERIOD``; a standby takes the Lease over when it is released (empty ``holderIdentity``)
or when it has seen no change of it for ``leaseDurationSeconds``. Expiry is measured on the
standby's own monotonic clock from the moment *it* saw the record change (never by comparing
``renewTime`` with its wall clock), so clock skew between nodes cannot shorten a lease. Every
write carries the ``resourceVersion`` that was read (optimistic concurrency): of two candidates
replacing the same record, the apiserver accepts one and answers 409 to the other; a create
races the same way (409 AlreadyExists).

Pure part (no I/O, unit-tested): ``LeaseRecord``, ``Observation``, ``decide``, ``lease_body``,
``released_body``. Adapter: ``LeaseElector`` reads and writes the Lease with the kubernetes
client. Written here rather than taken from the client's own ``kubernetes.leaderelection``
(which has a LeaseLock in the installed 37.x) because that one cannot be stopped while waiting
(``acquire`` loops forever), never releases the Lease on shutdown (a clean hand-over would wait
a full lease duration), times everything on the wall clock (``time.time``), and sends its
requests without a timeout, so a hung renewal can outlive the renew deadline unnoticed.
"""

from __future__ import annotations

import enum
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger("kubellm.leader")

# client-go / controller-runtime defaults, and why they suit the operator:
LEASE_DURATION = 15.0  # s a standby waits after the last change it saw before taking over:
# the longest failover after a crash (kill -9, node loss) is about this plus one RETRY_PERIOD.
RENEW_DEADLINE = 10.0  # s the leader keeps reconciling without a successful renewal; shorter
# than LEASE_DURATION so it has stopped (LEASE_DURATION - RENEW_DEADLINE = 5 s margin) before
# any standby can consider the lease expired.
RETRY_PERIOD = 2.0  # s between two attempts (a standby's acquire, the leader's renew): five
# renewals fit in one RENEW_DEADLINE, so a few slow or failed requests do not cost leadership.
REQUEST_TIMEOUT = 4.0  # s per API request: a hung request is abandoned well within the deadline
DEFAULT_LEASE_NAME = "kubellm-operator"


class Action(enum.Enum):
    CREATE = "create"  # no Lease yet: create it holding it
    ACQUIRE = "acquire"  # released or expired: take it over
    RENEW = "renew"  # ours: write a new renewTime
    STANDBY = "standby"  # held by someone else and not expired: wait


@dataclass(frozen=True)
class LeaseRecord:
    """The fields of a Lease the election reads."""

    holder: str  # "" when released
    duration_seconds: int
    transitions: int
    resource_version: str
    acquire_time: str | None = None

    @classmethod
    def from_lease(cls, lease: dict[str, Any]) -> LeaseRecord:
        spec = lease.get("spec") or {}
        return cls(
            holder=str(spec.get("holderIdentity") or ""),
            duration_seconds=int(spec.get("leaseDurationSeconds") or LEASE_DURATION),
            transitions=int(spec.get("leaseTransitions") or 0),
            resource_version=str(lease.get("metadata", {}).get("resourceVersion", "")),
            acquire_time=spec.get("acquireTime"),
        )


@dataclass(frozen=True)
class Observation:
    """A Lease record and when (local monotonic seconds) this candidate first saw it."""

    record: LeaseRecord | None
    seen_at: float

    def update(self, record: LeaseRecord | None, now: float) -> Observation:
        """The same record (by resourceVersion) keeps its first sighting; a change restarts it."""
        same = (record is None and self.record is None) or (
            record is not None and self.record is not None
            and record.resource_version == self.record.resource_version)
        return self if same else Observation(record, now)


def decide(observation: Observation, identity: str, now: float) -> Action:
    """What a candidate does with the Lease it observed (pure; ``now`` is monotonic)."""
    record = observation.record
    if record is None:
        return Action.CREATE
    if record.holder == identity:
        return Action.RENEW
    if not record.holder:
        return Action.ACQUIRE
    if now - observation.seen_at >= record.duration_seconds:
        return Action.ACQUIRE
    return Action.STANDBY


def micro_time(moment: datetime) -> str:
    """A Kubernetes MicroTime (RFC 3339, always six fractional digits, UTC)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_body(name: str, namespace: str, identity: str, action: Action,
               previous: LeaseRecord | None, wall: datetime,
               duration: float = LEASE_DURATION) -> dict[str, Any]:
    """The Lease to write for ``action`` (CREATE, ACQUIRE or RENEW), with the resourceVersion
    read, so the write fails with 409 if anyone wrote in between."""
    now = micro_time(wall)
    taking_over = action is not Action.RENEW
    transitions = previous.transitions if previous else 0
    if taking_over and previous is not None and previous.holder:
        transitions += 1  # a change of holder (not a first acquisition or a re-take after release)
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if previous is not None:
        metadata["resourceVersion"] = previous.resource_version
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": metadata,
        "spec": {
            "holderIdentity": identity,
            "leaseDurationSeconds": int(duration),
            "acquireTime": now if taking_over or previous is None else previous.acquire_time,
            "renewTime": now,
            "leaseTransitions": transitions,
        },
    }


def released_body(name: str, namespace: str, previous: LeaseRecord,
                  wall: datetime) -> dict[str, Any]:
    """Give the Lease up on a clean shutdown: no holder, 1 s duration (client-go's release), so a
    standby takes over at its next attempt instead of waiting for the lease to expire."""
    now = micro_time(wall)
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": namespace,
                     "resourceVersion": previous.resource_version},
        "spec": {"holderIdentity": "", "leaseDurationSeconds": 1, "acquireTime": now,
                 "renewTime": now, "leaseTransitions": previous.transitions},
    }


def default_identity() -> str:
    """``$POD_NAME`` (downward API) or the hostname, plus a random suffix: a restarted container
    of the same pod is a new candidate, never mistaken for the old holder."""
    base = os.environ.get("POD_NAME") or socket.gethostname()
    return f"{base}_{uuid.uuid4().hex[:8]}"


class LeaseElector:
    """One candidate: ``acquire`` blocks until it leads; ``hold`` renews in the background and
    calls ``on_lost`` once renewal has failed for ``renew_deadline``; ``release`` gives it up."""

    def __init__(self, api_client: Any, namespace: str, name: str = DEFAULT_LEASE_NAME,
                 identity: str | None = None, *, lease_duration: float = LEASE_DURATION,
                 renew_deadline: float = RENEW_DEADLINE, retry_period: float = RETRY_PERIOD,
                 clock: Callable[[], float] = time.monotonic,
                 on_change: Callable[[bool], None] | None = None) -> None:
        from kubernetes import client as k8s_client

        if not retry_period < renew_deadline < lease_duration:
            raise ValueError("leader election needs retry period < renew deadline < lease "
                             f"duration (got {retry_period}, {renew_deadline}, {lease_duration})")
        self.api: Any = k8s_client.CoordinationV1Api(api_client)  # dict bodies, raw reads
        self.namespace, self.name = namespace, name
        self.identity = identity or default_identity()
        self.lease_duration, self.renew_deadline = lease_duration, renew_deadline
        self.retry_period = retry_period
        self.clock = clock
        self.on_change = on_change
        self.observation = Observation(None, clock())
        self.observed_once = False
        self.leading = False
        self.last_renewed = 0.0  # monotonic start of the last successful write

    # ---- one attempt --------------------------------------------------------------------
    def _read(self) -> LeaseRecord | None:
        from kubernetes.client.exceptions import ApiException

        try:
            response = self.api.read_namespaced_lease(
                self.name, self.namespace, _preload_content=False,
                _request_timeout=REQUEST_TIMEOUT)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return LeaseRecord.from_lease(json.loads(response.data))

    def try_acquire_or_renew(self) -> bool:
        """Read the Lease, decide, write if it is ours to take; True when we hold it now."""
        from kubernetes.client.exceptions import ApiException

        started = self.clock()
        record = self._read()
        if not self.observed_once:  # first sighting: start the clock now
            self.observation, self.observed_once = Observation(record, started), True
        else:
            self.observation = self.observation.update(record, started)
        previous_holder = record.holder if record else None
        action = decide(self.observation, self.identity, started)
        if action is Action.STANDBY:
            self._set_leading(False, previous_holder)
            return False
        body = lease_body(self.name, self.namespace, self.identity, action, record,
                          datetime.now(UTC), self.lease_duration)
        try:
            if action is Action.CREATE:
                self.api.create_namespaced_lease(self.namespace, body,
                                                 _request_timeout=REQUEST_TIMEOUT)
            else:
                self.api.replace_namespaced_lease(self.name, self.namespace, body,
                                                  _request_timeout=REQUEST_TIMEOUT)
        except ApiException as exc:
            if exc.status != 409:
                raise
            # someone wrote in between: read again to learn who holds it now (the record we
            # decided on is stale, so its holder would be the wrong name in the message)
            fresh = self._read()
            self.observation = self.observation.update(fresh, self.clock())
            holder = fresh.holder if fresh else None
            if action is Action.RENEW and holder == self.identity:
                # still ours (an edit of the Lease, not a takeover): renew again next period;
                # the watchdog bounds how long that may go on (renew_deadline)
                log.info("lease %s/%s: renew raced another write (409); still held by %s",
                         self.namespace, self.name, self.identity)
                return True
            log.info("lease %s/%s: %s lost a race (409)", self.namespace, self.name,
                     action.value)
            self._set_leading(False, holder)
            return False
        if action is not Action.RENEW:
            log.info("lease %s/%s acquired by %s (%s; previous holder %s)", self.namespace,
                     self.name, self.identity, action.value, previous_holder or "none")
        self.last_renewed = started
        self._set_leading(True, self.identity)
        return True

    def _set_leading(self, leading: bool, holder: str | None) -> None:
        if leading == self.leading:
            return
        self.leading = leading
        if not leading:
            log.warning("lease %s/%s: %s is no longer the leader (holder now %s)",
                        self.namespace, self.name, self.identity, holder or "none")
        if self.on_change is not None:
            self.on_change(leading)

    # ---- loops --------------------------------------------------------------------------
    def acquire(self, stop: threading.Event) -> bool:
        """Block (standby) until this candidate holds the Lease (True) or ``stop`` is set."""
        last_holder: str | None = None
        while not stop.is_set():
            try:
                if self.try_acquire_or_renew():
                    return True
                holder = self.observation.record.holder if self.observation.record else None
                if holder != last_holder:
                    log.info("standby: lease %s/%s is held by %s; waiting", self.namespace,
                             self.name, holder or "nobody")
                    last_holder = holder
            except Exception as exc:  # apiserver unreachable, RBAC: keep trying, say why
                log.warning("lease %s/%s: cannot read or write it: %s", self.namespace,
                            self.name, exc)
            stop.wait(self.retry_period)
        return False

    def hold(self, stop: threading.Event, on_lost: Callable[[str], None]) -> threading.Thread:
        """Renew every ``retry_period`` in a daemon thread until ``stop``; call ``on_lost`` once
        (and stop renewing) when another holder is seen or no renewal succeeded for
        ``renew_deadline``. A watchdog checks the deadline, so a hung request cannot hide it."""
        lost = threading.Event()

        def lose(why: str) -> None:
            if not lost.is_set() and not stop.is_set():
                lost.set()
                self._set_leading(False, None)
                on_lost(why)

        def renew() -> None:
            while not stop.is_set() and not lost.is_set():
                try:
                    if not self.try_acquire_or_renew():
                        holder = self.observation.record.holder if self.observation.record \
                            else None
                        lose(f"the lease is held by {holder or 'nobody'}")
                        return
                except Exception as exc:
                    log.warning("lease %s/%s: renewal failed: %s", self.namespace, self.name,
                                exc)
                stop.wait(self.retry_period)

        def watchdog() -> None:
            while not stop.is_set() and not lost.is_set():
                overdue = self.clock() - self.last_renewed
                if overdue > self.renew_deadline:
                    lose(f"no successful renewal for {overdue:.1f}s "
                         f"(renew deadline {self.renew_deadline:g}s)")
                    return
                stop.wait(min(self.retry_period / 2, 0.5))

        threading.Thread(target=watchdog, name="kubellm-lease-watchdog", daemon=True).start()
        thread = threading.Thread(target=renew, name="kubellm-lease-renew", daemon=True)
        thread.start()
        return thread

    def release(self) -> bool:
        """Give the Lease up if we still hold it (clean shutdown); True when released."""
        from kubernetes.client.exceptions import ApiException

        try:
            record = self._read()
            if record is None or record.holder != self.identity:
                return False
            self.api.replace_namespaced_lease(
                self.name, self.namespace,
                released_body(self.name, self.namespace, record, datetime.now(UTC)),
                _request_timeout=REQUEST_TIMEOUT)
        except (ApiException, OSError, ValueError) as exc:
            log.warning("lease %s/%s: not released (%s); it expires in %gs", self.namespace,
                        self.name, exc, self.lease_duration)
            return False
        log.info("lease %s/%s released by %s", self.namespace, self.name, self.identity)
        self._set_leading(False, "")
        return True
