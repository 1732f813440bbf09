"""Leader election on a Lease (kubellm.k8s.leader): the pure decision and Lease bodies, and the
elector against an in-memory Lease API with the apiserver's optimistic concurrency (409 when the
resourceVersion written is not the stored one)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from kubellm.k8s import leader
from kubellm.k8s.leader import (
    LEASE_DURATION,
    RENEW_DEADLINE,
    RETRY_PERIOD,
    Action,
    LeaseElector,
    LeaseRecord,
    Observation,
    decide,
    lease_body,
    released_body,
)

WALL = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)


def record(holder: str = "a", rv: str = "1", duration: int = 15, transitions: int = 0,
           acquired: str | None = "2026-11-27T11:00:00.000000Z") -> LeaseRecord:
    return LeaseRecord(holder, duration, transitions, rv, acquired)


# ---------------------------------------------------------------- pure decision


def test_defaults_keep_the_client_go_ordering() -> None:
    assert (LEASE_DURATION, RENEW_DEADLINE, RETRY_PERIOD) == (15.0, 10.0, 2.0)
    assert RETRY_PERIOD < RENEW_DEADLINE < LEASE_DURATION


@pytest.mark.parametrize(("rec", "seen_at", "now", "action"), [
    (None, 0.0, 0.0, Action.CREATE),
    (record(holder="me"), 0.0, 100.0, Action.RENEW),
    (record(holder=""), 100.0, 100.0, Action.ACQUIRE),  # released: no need to wait
    (record(holder="other"), 100.0, 114.9, Action.STANDBY),
    (record(holder="other"), 100.0, 115.0, Action.ACQUIRE),  # unchanged for a lease duration
    (record(holder="other", duration=1), 100.0, 100.5, Action.STANDBY),
    (record(holder="other", duration=1), 100.0, 101.0, Action.ACQUIRE),
])
def test_decide(rec: LeaseRecord | None, seen_at: float, now: float, action: Action) -> None:
    assert decide(Observation(rec, seen_at), "me", now) is action


def test_expiry_counts_from_the_last_change_seen_not_from_renew_time() -> None:
    first = Observation(record(rv="1"), seen_at=10.0)
    same = first.update(record(rv="1"), now=20.0)
    assert same is first and decide(same, "me", 25.0) is Action.ACQUIRE
    renewed = first.update(record(rv="2"), now=20.0)  # the holder renewed: the clock restarts
    assert renewed.seen_at == 20.0 and decide(renewed, "me", 25.0) is Action.STANDBY
    assert Observation(None, 1.0).update(None, 9.0).seen_at == 1.0


def test_lease_bodies() -> None:
    created = lease_body("l", "ns", "me", Action.CREATE, None, WALL)
    assert "resourceVersion" not in created["metadata"]
    assert created["spec"] == {
        "holderIdentity": "me", "leaseDurationSeconds": 15,
        "acquireTime": "2026-11-27T12:00:00.000000Z", "renewTime": "2026-11-27T12:00:00.000000Z",
        "leaseTransitions": 0}
    taken = lease_body("l", "ns", "me", Action.ACQUIRE, record(holder="old", rv="7",
                                                               transitions=2), WALL)
    assert taken["metadata"]["resourceVersion"] == "7"
    assert taken["spec"]["leaseTransitions"] == 3
    assert taken["spec"]["acquireTime"] == "2026-11-27T12:00:00.000000Z"
    after_release = lease_body("l", "ns", "me", Action.ACQUIRE, record(holder="", transitions=2),
                               WALL)
    assert after_release["spec"]["leaseTransitions"] == 2
    renewed = lease_body("l", "ns", "me", Action.RENEW, record(holder="me", rv="8"), WALL)
    assert renewed["spec"]["acquireTime"] == "2026-11-27T11:00:00.000000Z"  # kept
    assert renewed["spec"]["renewTime"] == "2026-11-27T12:00:00.000000Z"
    released = released_body("l", "ns", record(holder="me", rv="9", transitions=4), WALL)
    assert released["metadata"]["resourceVersion"] == "9"
    assert released["spec"]["holderIdentity"] == ""
    assert released["spec"]["leaseDurationSeconds"] == 1
    assert released["spec"]["leaseTransitions"] == 4


def test_micro_time_always_has_six_fractional_digits() -> None:
    assert leader.micro_time(WALL) == "2026-11-27T12:00:00.000000Z"


def test_identity_is_the_pod_name_with_a_random_suffix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POD_NAME", "kubellm-7d9f-abcde")
    one, two = leader.default_identity(), leader.default_identity()
    assert one.startswith("kubellm-7d9f-abcde_") and two.startswith("kubellm-7d9f-abcde_")
    assert one != two


# ---------------------------------------------------------------- elector, in-memory API


@dataclass
class Raw:
    data: bytes


class FakeLeaseApi:
    """coordination.k8s.io/v1 Leases with resourceVersion checks, like the apiserver."""

    def __init__(self) -> None:
        self.leases: dict[tuple[str, str], dict[str, Any]] = {}
        self.version = 0
        self.lock = threading.Lock()
        self.fail = False
        self.writes: list[tuple[str, str]] = []  # (verb, holder)

    def _check(self) -> None:
        if self.fail:
            raise ApiException(status=503, reason="unavailable")

    def read_namespaced_lease(self, name: str, namespace: str, **_: Any) -> Raw:
        self._check()
        with self.lock:
            found = self.leases.get((namespace, name))
            if found is None:
                raise ApiException(status=404, reason="Not Found")
            return Raw(json.dumps(found).encode())

    def _store(self, body: dict[str, Any]) -> None:
        self.version += 1
        body = json.loads(json.dumps(body))
        body["metadata"]["resourceVersion"] = str(self.version)
        self.leases[(body["metadata"]["namespace"], body["metadata"]["name"])] = body

    def create_namespaced_lease(self, namespace: str, body: dict[str, Any], **_: Any) -> None:
        self._check()
        with self.lock:
            if (namespace, body["metadata"]["name"]) in self.leases:
                raise ApiException(status=409, reason="AlreadyExists")
            self._store(body)
            self.writes.append(("create", body["spec"]["holderIdentity"]))

    def replace_namespaced_lease(self, name: str, namespace: str, body: dict[str, Any],
                                 **_: Any) -> None:
        self._check()
        with self.lock:
            stored = self.leases[(namespace, name)]
            if body["metadata"].get("resourceVersion") != stored["metadata"]["resourceVersion"]:
                raise ApiException(status=409, reason="Conflict")
            self._store(body)
            self.writes.append(("replace", body["spec"]["holderIdentity"]))

    def holder(self) -> str:
        return str(self.leases[("ns", "lease")]["spec"]["holderIdentity"])


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def elector(api: FakeLeaseApi, identity: str, clock: Clock, **kw: Any) -> LeaseElector:
    made = LeaseElector(None, "ns", "lease", identity, clock=clock, **kw)
    made.api = api
    return made


def test_one_of_two_candidates_wins_and_the_other_waits_a_lease_duration() -> None:
    api, clock = FakeLeaseApi(), Clock()
    changes: list[bool] = []
    a = elector(api, "a", clock, on_change=changes.append)
    b = elector(api, "b", clock)
    assert a.try_acquire_or_renew() is True and api.holder() == "a" and changes == [True]
    assert b.try_acquire_or_renew() is False
    clock.now += 14.0
    assert b.try_acquire_or_renew() is False  # a has not renewed, but b saw it only 14 s ago
    assert a.try_acquire_or_renew() is True  # renewal: a new resourceVersion ...
    assert b.try_acquire_or_renew() is False  # ... which b sees now: its clock restarts
    clock.now += 14.0
    assert b.try_acquire_or_renew() is False
    clock.now += 1.0
    assert b.try_acquire_or_renew() is True and api.holder() == "b"
    lease = api.leases[("ns", "lease")]["spec"]
    assert lease["leaseTransitions"] == 1
    assert a.try_acquire_or_renew() is False and changes == [True, False]


def test_racing_candidates_cannot_both_win() -> None:
    """Both read the same record, both decide to take it: the resourceVersion lets one through."""
    api, clock = FakeLeaseApi(), Clock()
    api.create_namespaced_lease("ns", {"metadata": {"name": "lease", "namespace": "ns"},
                                       "spec": {"holderIdentity": ""}})
    a, b = elector(api, "a", clock), elector(api, "b", clock)
    start = threading.Barrier(2)
    real_read = api.read_namespaced_lease

    reads = [0]

    def read_together(name: str, namespace: str, **kw: Any) -> Raw:
        raw = real_read(name, namespace, **kw)
        with api.lock:
            reads[0] += 1
            first_two = reads[0] <= 2
        if first_two:  # both have read before either writes (the loser's re-read passes)
            start.wait(5)
        return raw

    api.read_namespaced_lease = read_together  # type: ignore[method-assign]
    results: dict[str, bool] = {}
    threads = [threading.Thread(target=lambda e=e: results.__setitem__(e.identity,
                                                                       e.try_acquire_or_renew()))
               for e in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(results.values()) == [False, True]
    winner = next(k for k, v in results.items() if v)
    assert api.holder() == winner and [w for w in api.writes if w[0] == "replace"] == [
        ("replace", winner)]


def test_racing_creates_cannot_both_win() -> None:
    api, clock = FakeLeaseApi(), Clock()
    a, b = elector(api, "a", clock), elector(api, "b", clock)
    a_read = a._read()  # both see no Lease
    assert a_read is None and b._read() is None
    assert a.try_acquire_or_renew() is True
    b.observation, b.observed_once = Observation(None, clock.now), True
    b._read = lambda: None  # type: ignore[method-assign]  # b still believes there is none
    assert b.try_acquire_or_renew() is False and api.holder() == "a"


def test_release_lets_a_standby_take_over_at_once() -> None:
    api, clock = FakeLeaseApi(), Clock()
    a, b = elector(api, "a", clock), elector(api, "b", clock)
    assert a.try_acquire_or_renew() and not b.try_acquire_or_renew()
    assert a.release() is True and api.holder() == ""
    assert b.try_acquire_or_renew() is True  # no lease duration to wait
    assert a.release() is False and api.holder() == "b"  # not ours any more: left alone


def test_acquire_blocks_until_leading_or_stopped() -> None:
    api, clock = FakeLeaseApi(), Clock()
    a = elector(api, "a", clock, retry_period=0.01, renew_deadline=0.02, lease_duration=15)
    b = elector(api, "b", clock, retry_period=0.01, renew_deadline=0.02, lease_duration=15)
    assert a.try_acquire_or_renew()
    stop = threading.Event()
    threading.Timer(0.1, stop.set).start()
    started = time.monotonic()
    assert b.acquire(stop) is False and time.monotonic() - started < 5
    clock.now += 20  # a stopped renewing long ago
    assert b.acquire(threading.Event()) is True and api.holder() == "b"


def test_hold_reports_loss_after_the_renew_deadline() -> None:
    api, clock = FakeLeaseApi(), Clock()
    a = elector(api, "a", clock, retry_period=0.02, renew_deadline=1.0, lease_duration=2.0)
    assert a.try_acquire_or_renew()
    lost: list[str] = []
    stop = threading.Event()
    a.hold(stop, lost.append)
    time.sleep(0.2)
    assert not lost  # renewing fine
    api.fail = True  # the apiserver stops answering
    clock.now += 0.9
    time.sleep(0.2)
    assert not lost  # still within the renew deadline
    clock.now += 0.2
    deadline = time.monotonic() + 5
    while not lost and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    assert len(lost) == 1 and "no successful renewal" in lost[0] and a.leading is False


def test_hold_reports_loss_when_someone_else_holds_it() -> None:
    api, clock = FakeLeaseApi(), Clock()
    a = elector(api, "a", clock, retry_period=0.02, renew_deadline=1.0, lease_duration=2.0)
    assert a.try_acquire_or_renew()
    stored = api.leases[("ns", "lease")]
    body = lease_body("lease", "ns", "intruder", Action.ACQUIRE, LeaseRecord.from_lease(stored),
                      WALL, 2.0)
    api.replace_namespaced_lease("lease", "ns", body)
    lost: list[str] = []
    stop = threading.Event()
    a.hold(stop, lost.append)
    deadline = time.monotonic() + 5
    while not lost and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    assert lost == ["the lease is held by intruder"]
    assert api.holder() == "intruder"  # never overwritten


def _write_between_read_and_renew(api: FakeLeaseApi, holder: str) -> None:
    """The next read returns the current record, then someone writes (a takeover or an edit)
    before the elector's replace: the race of the e2e leader test on a loaded machine."""
    real_read = api.read_namespaced_lease

    def read_then_write(name: str, namespace: str, **kw: Any) -> Raw:
        raw = real_read(name, namespace, **kw)
        api.read_namespaced_lease = real_read  # type: ignore[method-assign]
        stored = api.leases[(namespace, name)]
        body = lease_body(name, namespace, holder, Action.ACQUIRE,
                          LeaseRecord.from_lease(stored), WALL, 2.0)
        api.replace_namespaced_lease(name, namespace, body)
        return raw

    api.read_namespaced_lease = read_then_write  # type: ignore[method-assign]


def test_a_takeover_racing_the_renewal_names_the_new_holder() -> None:
    api, clock = FakeLeaseApi(), Clock()
    a = elector(api, "a", clock)
    assert a.try_acquire_or_renew()
    _write_between_read_and_renew(api, "intruder")
    assert a.try_acquire_or_renew() is False  # the renewal's replace got 409
    assert a.leading is False
    assert a.observation.record is not None and a.observation.record.holder == "intruder"


def test_an_edit_of_our_own_lease_racing_the_renewal_keeps_the_lead() -> None:
    """A 409 from a write that left us the holder (an annotation, a renewTime edit) is not a
    loss: the leader stays and renews again next period (it used to stop and exit 1)."""
    api, clock = FakeLeaseApi(), Clock()
    a = elector(api, "a", clock)
    assert a.try_acquire_or_renew()
    _write_between_read_and_renew(api, "a")
    assert a.try_acquire_or_renew() is True and a.leading is True
    assert a.try_acquire_or_renew() is True and api.holder() == "a"  # the next renewal works


def test_inconsistent_timings_are_refused() -> None:
    with pytest.raises(ValueError, match="retry period < renew deadline < lease duration"):
        LeaseElector(None, "ns", "lease", "a", renew_deadline=20.0)
