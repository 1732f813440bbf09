"""Unit tests of kubellm.conditions: transition times, generations, the Ready summary."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from kubellm import conditions as c

T0 = datetime(2026, 11, 27, 10, 0, 0, tzinfo=UTC)
T1 = datetime(2026, 11, 27, 11, 30, 0, tzinfo=UTC)


def all_true() -> list[c.Want]:
    return [
        c.Want(c.LICENSE_APPROVED, "True", "Allowed", "apache-2.0 is permissive"),
        c.Want(c.SIZED, "True", "Fits", "1 x NVIDIA-L4"),
        c.Want(c.CACHE_READY, "True", "Downloaded", "15.0 GiB"),
        c.Want(c.AVAILABLE, "True", "MinimumReplicasAvailable", "1/1 ready"),
    ]


def test_merge_sets_times_generation_and_order() -> None:
    wanted = list(reversed(all_true()))
    out = c.merge([], [*wanted, c.summarize(wanted)], generation=3, now=T0)
    assert [x.type for x in out] == list(c.ORDER)
    assert {x.last_transition_time for x in out} == {"2026-11-27T10:00:00Z"}
    assert {x.observed_generation for x in out} == {3}
    assert out[-1].status == "True" and out[-1].reason == "Ready"


def test_unchanged_status_keeps_transition_time_but_refreshes_the_rest() -> None:
    first = c.merge([], all_true(), generation=1, now=T0)
    wanted = all_true()
    wanted[3] = c.Want(c.AVAILABLE, "True", "MinimumReplicasAvailable", "2/2 ready")
    second = c.merge(first, wanted, generation=2, now=T1)
    avail = c.find(second, c.AVAILABLE)
    assert avail is not None
    assert avail.last_transition_time == "2026-11-27T10:00:00Z"
    assert avail.message == "2/2 ready" and avail.observed_generation == 2


def test_changed_status_moves_transition_time() -> None:
    first = c.merge([], all_true(), generation=1, now=T0)
    second = c.merge(
        first, [c.Want(c.CACHE_READY, "False", "BackoffLimitExceeded", "failed")],
        generation=1, now=T1,
    )
    cache = c.find(second, c.CACHE_READY)
    assert cache is not None and cache.last_transition_time == "2026-11-27T11:30:00Z"
    # the others are kept untouched
    lic = c.find(second, c.LICENSE_APPROVED)
    assert lic is not None and lic.last_transition_time == "2026-11-27T10:00:00Z"


def test_same_state_twice_is_identical() -> None:
    wanted = [*all_true(), c.summarize(all_true())]
    first = c.merge([], wanted, generation=4, now=T0)
    second = c.merge(first, wanted, generation=4, now=T1)
    assert [x.model_dump() for x in first] == [x.model_dump() for x in second]
    assert c.transitions(first, second) == []


def test_summary_takes_the_first_false_stage() -> None:
    wanted = all_true()
    wanted[1] = c.Want(c.SIZED, "False", "DoesNotFit", "needs 140 GiB, largest is 80 GiB")
    wanted[2] = c.Want(c.CACHE_READY, "False", "Downloading", "job running")
    ready = c.summarize(wanted)
    assert (ready.status, ready.reason) == ("False", "DoesNotFit")
    assert ready.message == "Sized: needs 140 GiB, largest is 80 GiB"


def test_summary_false_beats_unknown_and_missing_is_unknown() -> None:
    wanted = [c.Want(c.LICENSE_APPROVED, "Unknown", "HubUnavailable", "hub down")]
    ready = c.summarize(wanted)
    assert (ready.status, ready.reason) == ("Unknown", "HubUnavailable")
    wanted.append(c.Want(c.AVAILABLE, "False", "NoReplicasReady", "0/1"))
    assert c.summarize(wanted).status == "False"


def test_summary_true_mentions_licence_warnings() -> None:
    wanted = all_true()
    wanted[0] = c.Want(c.LICENSE_APPROVED, "True", "AllowedWithWarnings", "Warn mode: research")
    ready = c.summarize(wanted)
    assert ready.status == "True" and "Warn mode" in ready.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("BackoffLimitExceeded", "BackoffLimitExceeded"),
        ("deadline exceeded", "DeadlineExceeded"),
        ("", "Unknown"),
        (None, "Unknown"),
        ("404 not found", "Unknown404NotFound"),
        ("pod-failure_policy", "PodFailurePolicy"),
    ],
)
def test_camel_reason(text: str | None, expected: str) -> None:
    assert c.camel_reason(text) == expected


def test_merge_camelcases_reasons() -> None:
    out = c.merge([], [c.Want(c.CACHE_READY, "False", "job failed", "")], generation=1, now=T0)
    assert out[0].reason == "JobFailed"


def test_transitions_report_new_and_changed_with_severity() -> None:
    first = c.merge([], all_true(), generation=1, now=T0)
    second = c.merge(
        first,
        [c.Want(c.AVAILABLE, "False", "NoReplicasReady", "0/1"),
         c.Want(c.READY, "False", "NoReplicasReady", "0/1")],
        generation=1, now=T1,
    )
    moved = c.transitions(first, second)
    assert [(t.type, t.old_status, t.new.status, t.warning) for t in moved] == [
        (c.AVAILABLE, "True", "False", False),  # a rollout in progress is no warning
        (c.READY, None, "False", False),
    ]
    denied = c.merge(second, [c.Want(c.LICENSE_APPROVED, "False", "LicenseDenied", "no")],
                     generation=2, now=T1)
    assert [t.warning for t in c.transitions(second, denied)] == [True]


def test_allowed_with_warnings_is_a_warning_event() -> None:
    out = c.merge([], [c.Want(c.LICENSE_APPROVED, "True", "AllowedWithWarnings", "Warn mode")],
                  generation=1, now=T0)
    assert [t.warning for t in c.transitions([], out)] == [True]
