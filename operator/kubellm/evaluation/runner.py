"""Run checks against an endpoint through a ``Complete`` function (pure: no I/O of its own).

The same loop runs in the evaluation Job and in ``kubellm eval`` on a laptop; only the
``Complete`` function (``kubellm.endpoint.OpenAIClient.complete``) talks HTTP. A check whose
request the server answers with an error (HTTP 4xx/5xx after retries) fails with that answer;
``EndpointUnreachable`` (no connection after retries) stops the run: an evaluation of a server
that cannot be reached says so (``EvaluationFailed``) instead of reporting a 0 % pass rate.
``timeoutSeconds`` bounds the whole run the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from kubellm.evaluation.checks import Check, score
from kubellm.evaluation.report import CheckResult, Report, aggregate, failed_report


class EndpointUnreachable(Exception):
    """No connection to the endpoint (refused, DNS, timeouts) after the retries."""


class RequestFailed(Exception):
    """The endpoint answered one request with an error (its status and body, shortened)."""


Complete = Callable[[Check], str]


def run(checks: Sequence[Check], complete: Complete, *, min_pass_rate: float,
        timeout_seconds: float, clock: Callable[[], float] = time.monotonic) -> Report:
    """Every check sent through ``complete`` and scored, in order."""
    start = clock()
    results: list[CheckResult] = []
    for index, check in enumerate(checks):
        if clock() - start > timeout_seconds:
            return failed_report(
                f"timeoutSeconds ({timeout_seconds:g} s) ran out after {index} of {len(checks)} "
                "checks; raise spec.evaluation.timeoutSeconds or use fewer checks",
                min_pass_rate, clock() - start)
        began = clock()
        try:
            answer = complete(check)
        except EndpointUnreachable as exc:
            return failed_report(str(exc), min_pass_rate, clock() - start)
        except RequestFailed as exc:
            results.append(CheckResult(check.name, False, check.weight, clock() - began,
                                       f"request failed: {exc}"))
            continue
        verdict = score(check, answer)
        results.append(CheckResult(check.name, verdict.passed, check.weight, clock() - began,
                                   verdict.failure))
    return aggregate(results, min_pass_rate, clock() - start)
