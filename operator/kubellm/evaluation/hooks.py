"""What the reconciler calls (pure): the evaluation Job it wants, and the status a Job gives.

``desired(llmd, ...)`` -> ``Desired``: the Job to apply (None without ``spec.evaluation``, or
when the inline checks are invalid: then ``status`` already says ``EvaluationFailed`` with the
field, and no Job is created; the deployment keeps serving). Call it once the serving workload
is ``Available=True``; the Job's name changes with (generation, revision, evaluation spec), so
an apply of a new name is a re-evaluation and the previous Job can be deleted.
``observe(job, pods)`` -> ``status.evaluation`` of a finished Job (None while it runs): the
report read from the ``evaluate`` container's termination message, or, when the pod left none
(OOM-killed, deadline exceeded, image pull), ``EvaluationFailed`` naming the Job and its reason.
``report.evaluated(status)`` then gives the ``Evaluated`` condition, and ``gate`` folds it into
``Ready`` when ``spec.evaluation.gate`` is true.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubellm.api.v1alpha1 import EvaluationStatus, LLMDeployment
from kubellm.conditions import Want
from kubellm.errors import SpecError
from kubellm.evaluation.checks import inline_checks
from kubellm.evaluation.job import (
    ANNOTATION_GENERATION,
    ANNOTATION_REVISION,
    ANNOTATION_SPEC_HASH,
    render_job,
    spec_hash,
)
from kubellm.evaluation.report import decode, failed_report, to_status
from kubellm.naming import owner_reference, with_owner


@dataclass(frozen=True)
class Desired:
    job: dict[str, Any] | None
    status: EvaluationStatus | None = None  # set when no Job can run (invalid checks)


def desired(llmd: LLMDeployment, *, revision: str, endpoint: str, image: str) -> Desired:
    """The evaluation Job of ``llmd`` for the ``revision`` served at ``endpoint``."""
    spec = llmd.spec.evaluation
    if spec is None:
        return Desired(None)
    generation = llmd.metadata.generation or 0
    if spec.checks is not None:
        try:
            inline_checks(spec)
        except SpecError as exc:
            report = failed_report(str(exc), spec.min_pass_rate)
            return Desired(None, to_status(report, revision=revision, generation=generation,
                                           spec_hash=spec_hash(spec)))
    job = render_job(llmd_name=str(llmd.metadata.name), namespace=str(llmd.metadata.namespace),
                     generation=generation, revision=revision, spec=spec, endpoint=endpoint,
                     model=llmd.spec.served_model_name or llmd.spec.model.repo, image=image)
    if llmd.metadata.uid:
        job = with_owner(job, owner_reference(llmd.api_version, llmd.kind,
                                              str(llmd.metadata.name), llmd.metadata.uid))
    return Desired(job)


def finished(job: dict[str, Any]) -> tuple[str, str] | None:
    """(Complete|Failed, reason: message) of a finished Job, else None."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") in ("Complete", "Failed") and cond.get("status") == "True":
            text = ": ".join(str(p) for p in (cond.get("reason"), cond.get("message")) if p)
            return str(cond["type"]), text
    return None


def _message(pod: dict[str, Any]) -> str | None:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == "evaluate":
            terminated = (status.get("state") or {}).get("terminated") or {}
            message = terminated.get("message")
            return message if isinstance(message, str) and message else None
    return None


def observe(job: dict[str, Any], pods: list[dict[str, Any]]) -> EvaluationStatus | None:
    """``status.evaluation`` of the finished ``job`` from its ``pods`` (None while running)."""
    done = finished(job)
    if done is None:
        return None
    meta = job.get("metadata") or {}
    notes = meta.get("annotations") or {}
    generation = str(notes.get(ANNOTATION_GENERATION) or "")
    keys: dict[str, Any] = {
        "revision": notes.get(ANNOTATION_REVISION),
        "generation": int(generation) if generation.isdigit() else None,
        "spec_hash": notes.get(ANNOTATION_SPEC_HASH), "job_name": meta.get("name")}
    newest = sorted(pods, key=lambda p: str((p.get("metadata") or {}).get("creationTimestamp")))
    for pod in reversed(newest):
        message = _message(pod)
        if message is None:
            continue
        try:
            return to_status(decode(message), **keys)
        except ValueError as exc:
            return to_status(failed_report(f"Job {meta.get('name')}: {exc}", 1.0), **keys)
    kind, text = done
    why = f"Job {meta.get('name')} {kind.lower()} without a report" + (f" ({text})" if text else "")
    return to_status(failed_report(why + "; see kubectl logs job/" + str(meta.get("name")), 1.0),
                     **keys)


def gate(ready: Want, evaluated: Want, llmd: LLMDeployment) -> Want:
    """``Ready`` as ``spec.evaluation.gate`` wants it: a True ``Ready`` takes ``Evaluated``'s
    status and reason while that is not True; without the gate ``Ready`` is unchanged."""
    spec = llmd.spec.evaluation
    if spec is None or not spec.gate or ready.status != "True" or evaluated.status == "True":
        return ready
    return Want(ready.type, evaluated.status, evaluated.reason,
                f"{evaluated.type}: {evaluated.message}")
