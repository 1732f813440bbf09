"""Evaluation results: aggregate, the termination message, status and the condition (pure).

``aggregate`` turns per-check results into a ``Report`` (weighted pass rate against
``minPassRate``). The evaluation Job reports it through its container's termination message
(``terminationMessagePolicy: File``; the kubelet keeps at most 4096 bytes), so the Job needs no
RBAC and no ConfigMap to write: ``encode`` always fits ``MESSAGE_LIMIT`` (failures first,
failure texts truncated, then checks left out and counted in ``omitted``); ``decode`` reads it
back and refuses anything else with a ``ValueError``. ``to_status`` makes ``status.evaluation``
(with the generation, revision and spec hash the Job was keyed by) and ``evaluated`` the
``Evaluated`` condition: True/``Passed``, False/``BelowThreshold`` or False/``EvaluationFailed``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kubellm.api.v1alpha1 import EvaluationCheckStatus, EvaluationStatus
from kubellm.conditions import Want
from kubellm.reasons import Reason

EVALUATED = "Evaluated"
MESSAGE_LIMIT = 4096  # bytes the kubelet keeps of a termination message
FAILURE_LIMIT = 200  # characters of one failure text in the message and in status
VERSION = 1


@dataclass(frozen=True)
class CheckResult:
    """One check run: passed, why not, how long the request took."""

    name: str
    passed: bool
    weight: float = 1.0
    duration_seconds: float = 0.0
    failure: str | None = None


@dataclass(frozen=True)
class Report:
    """A finished evaluation, or one that could not run (``error`` set, no checks)."""

    min_pass_rate: float
    checks: tuple[CheckResult, ...] = ()
    duration_seconds: float = 0.0
    error: str | None = None
    total: int = 0  # checks run (may exceed len(checks) after decode of a bounded message)
    failed: int = 0
    pass_rate: float = 0.0
    omitted: int = 0

    @property
    def passed(self) -> bool:
        return self.error is None and self.total > 0 and self.pass_rate >= self.min_pass_rate


def truncate(text: str | None, limit: int = FAILURE_LIMIT) -> str | None:
    """``text`` cut to ``limit`` characters (an ellipsis marks the cut)."""
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def aggregate(results: Sequence[CheckResult], min_pass_rate: float,
              duration_seconds: float = 0.0) -> Report:
    """The weighted pass rate of ``results`` (sum of passed weights / sum of weights)."""
    total_weight = sum(r.weight for r in results)
    passed_weight = sum(r.weight for r in results if r.passed)
    rate = passed_weight / total_weight if total_weight > 0 else 0.0
    return Report(
        min_pass_rate=min_pass_rate,
        checks=tuple(results),
        duration_seconds=round(duration_seconds, 3),
        total=len(results),
        failed=sum(1 for r in results if not r.passed),
        pass_rate=round(rate, 4),
    )


def failed_report(error: str, min_pass_rate: float, duration_seconds: float = 0.0) -> Report:
    """An evaluation that could not run: bad checks, the endpoint unreachable."""
    return Report(min_pass_rate=min_pass_rate, error=truncate(error, 1000),
                  duration_seconds=round(duration_seconds, 3))


def _ordered(checks: Sequence[CheckResult]) -> list[CheckResult]:
    """Failures first (what a reader looks for), each group in run order."""
    return [c for c in checks if not c.passed] + [c for c in checks if c.passed]


def _check_entry(check: CheckResult) -> list[Any]:
    entry: list[Any] = [check.name, int(check.passed), check.weight,
                        round(check.duration_seconds, 3)]
    if check.failure:
        entry.append(truncate(check.failure))
    return entry


def _dump(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def encode(report: Report, limit: int = MESSAGE_LIMIT) -> bytes:
    """The termination message of ``report``: compact JSON of at most ``limit`` bytes."""
    head: dict[str, Any] = {
        "v": VERSION, "rate": report.pass_rate, "min": report.min_pass_rate,
        "total": report.total, "failed": report.failed, "secs": report.duration_seconds,
    }
    if report.error is not None:
        head["error"] = report.error
    doc = {**head, "checks": [], "omitted": 0}
    while len(_dump(doc)) > limit and "error" in doc:  # an error longer than the message
        doc["error"] = truncate(str(doc["error"]), max(len(str(doc["error"])) // 2, 20))
    entries = [_check_entry(c) for c in _ordered(report.checks)]
    kept: list[list[Any]] = []
    size = len(_dump(doc))
    for entry in entries:
        cost = len(_dump({"c": [entry]})) - len(_dump({"c": []})) + 1  # + a comma
        if size + cost > limit:
            break
        kept.append(entry)
        size += cost
    doc["checks"] = kept
    doc["omitted"] = report.omitted + len(entries) - len(kept)
    data = _dump(doc)
    while len(data) > limit and doc["checks"]:  # rounding of the estimate: drop one more
        doc["checks"].pop()
        doc["omitted"] += 1
        data = _dump(doc)
    return data


def decode(data: bytes | str) -> Report:
    """A termination message read back; ``ValueError`` when it is not one of ours."""
    try:
        doc = json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"the evaluation's termination message is not JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("v") != VERSION:
        raise ValueError("the evaluation's termination message is not a kubellm report "
                         f"(version {VERSION})")
    try:
        checks = tuple(
            CheckResult(name=str(e[0]), passed=bool(e[1]), weight=float(e[2]),
                        duration_seconds=float(e[3]), failure=str(e[4]) if len(e) > 4 else None)
            for e in doc["checks"]
        )
        return Report(
            min_pass_rate=float(doc["min"]), checks=checks,
            duration_seconds=float(doc["secs"]), error=doc.get("error"),
            total=int(doc["total"]), failed=int(doc["failed"]),
            pass_rate=float(doc["rate"]), omitted=int(doc["omitted"]),
        )
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise ValueError(f"the evaluation's termination message is malformed ({exc!r})") from None


def to_status(report: Report, *, revision: str | None, generation: int | None,
              spec_hash: str | None, job_name: str | None = None) -> EvaluationStatus:
    """``status.evaluation`` of a finished evaluation Job's ``report``."""
    return EvaluationStatus(
        revision=revision, generation=generation, spec_hash=spec_hash, job_name=job_name,
        pass_rate=None if report.error else report.pass_rate,
        min_pass_rate=report.min_pass_rate,
        passed=report.passed,
        total=report.total, failed=report.failed,
        duration_seconds=report.duration_seconds,
        error=report.error,
        checks=[EvaluationCheckStatus(name=c.name, passed=c.passed, score=1.0 if c.passed else 0.0,
                                      weight=c.weight, duration_seconds=c.duration_seconds,
                                      failure=truncate(c.failure))
                for c in _ordered(report.checks)],
        omitted=report.omitted or None,
    )


def evaluated(status: EvaluationStatus | None) -> Want:
    """The ``Evaluated`` condition for ``status.evaluation`` (None: not finished yet)."""
    if status is None:
        return Want(EVALUATED, "Unknown", Reason.EVALUATING,
                    "the evaluation Job has not finished")
    if status.error is not None:
        return Want(EVALUATED, "False", Reason.EVALUATION_FAILED, status.error)
    rate = status.pass_rate or 0.0
    summary = (f"pass rate {rate:.0%} ({(status.total or 0) - (status.failed or 0)}/"
               f"{status.total} checks), minimum {status.min_pass_rate:.0%}")
    if status.passed:
        return Want(EVALUATED, "True", Reason.PASSED, summary)
    failed = [c.name for c in status.checks if not c.passed][:5]
    more = f"; failed: {', '.join(failed)}" if failed else ""
    return Want(EVALUATED, "False", Reason.BELOW_THRESHOLD, summary + more)
