"""Unit tests of kubellm.reconcile.status: Job states, Available, selector strings."""

from __future__ import annotations

from typing import Any

import pytest

from kubellm.reconcile import status


def job(st: dict[str, Any]) -> dict[str, Any]:
    return {"metadata": {"name": "dl"}, "status": st}


@pytest.mark.parametrize(("st", "expected"), [
    ({}, ("False", "Downloading")),
    ({"active": 1, "failed": 1}, ("False", "Downloading")),
    ({"succeeded": 1}, ("True", "Downloaded")),
    ({"conditions": [{"type": "SuccessCriteriaMet", "status": "True"}]}, ("True", "Downloaded")),
    ({"conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded",
                      "message": "Job was active longer than specified deadline"}]},
     ("False", "DeadlineExceeded")),
    ({"conditions": [{"type": "Failed", "status": "False"}], "active": 1},
     ("False", "Downloading")),
])
def test_job_state(st: dict[str, Any], expected: tuple[str, str]) -> None:
    assert status.job_state(job(st))[:2] == expected


def test_job_state_explains_retries_and_failures() -> None:
    assert "1 failed attempt" in status.job_state(job({"active": 1, "failed": 1}))[2]
    failed = job({"conditions": [{"type": "Failed", "status": "True",
                                  "reason": "BackoffLimitExceeded", "message": "backoff"}]})
    assert status.job_state(failed)[2] == "Job dl failed: backoff"
    assert status.job_state(None)[1] == "Downloading"


def test_available() -> None:
    def check(dep: dict[str, Any] | None) -> tuple[str, str, str]:
        want = status.available(dep, [])
        return want.status, want.reason, want.message

    assert check(None)[:2] == ("False", "NoDeployment")
    assert check({"spec": {"replicas": 2}, "status": {"readyReplicas": 1}}) == (
        "True", "MinimumReplicasAvailable", "1/2 replicas ready")
    assert check({"spec": {"replicas": 0}, "status": {}})[1] == "ScaledToZero"
    assert check({"spec": {"replicas": 1}, "status": {}})[1:] == (
        "NoReplicasReady", "0/1 replicas ready")


def test_selector_string_and_match() -> None:
    dep = {"spec": {"selector": {"matchLabels": {"b": "2", "a": "1"}}}}
    text = status.selector_string(dep)
    assert text == "a=1,b=2"
    assert status.labels_match({"a": "1", "b": "2", "c": "3"}, text)
    assert not status.labels_match({"a": "1"}, text)
    assert not status.labels_match({"a": "1"}, None)
