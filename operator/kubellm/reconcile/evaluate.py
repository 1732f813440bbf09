"""The evaluation step of one reconcile (``spec.evaluation``): Job in, ``Evaluated`` out.

Runs after the serving objects, with what the reconcile already read (the workload, the endpoint
status reports); the pure parts are ``kubellm.evaluation.hooks`` (the Job wanted, the status a
finished Job gives) and ``kubellm.evaluation.report.evaluated`` (the condition).

- The evaluation waits for the rollout: the workload's controller has seen its spec, every
  replica runs the current template and one is ready (so the checks never ask a pod of the
  previous revision). Until then ``Evaluated`` is Unknown and the last result stays in
  ``status.evaluation`` (it names the revision and generation it is of).
- One Job per (generation, revision, evaluation spec): its name says which, so a finished Job
  whose name is ``status.evaluation.jobName`` needs no read at all. A new Job is created only
  after a look for earlier evaluation Jobs of this deployment (a list by label, only then), which
  are deleted with their pods: an evaluation of a spec nobody wants any more is not worth its
  CPU.
- A finished Job's pods are listed once (by ``job-name``) to read the report from the
  termination message; the result is then kept in status and the Job is not read again.
- Without ``spec.evaluation`` nothing is read; a Job named in the old status is deleted once.

Serving never waits for this step; only ``spec.evaluation.gate`` folds ``Evaluated`` into
``Ready`` (``hooks.gate``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubellm import naming
from kubellm.api.v1alpha1 import EvaluationStatus, LLMDeployment
from kubellm.conditions import Want
from kubellm.evaluation import hooks
from kubellm.evaluation.job import COMPONENT_EVALUATION
from kubellm.evaluation.report import EVALUATED, evaluated
from kubellm.reasons import Reason
from kubellm.reconcile.ports import ClusterPort


@dataclass(frozen=True)
class Step:
    """``want``: the ``Evaluated`` condition (None: no spec.evaluation, drop the condition);
    ``status``: ``status.evaluation`` in wire form (None: drop it)."""

    want: Want | None
    status: dict[str, Any] | None
    applied: tuple[str, ...] = ()


def rolled_out(workload: dict[str, Any] | None) -> bool:
    """Every replica of ``workload`` (Deployment or LeaderWorkerSet) runs its current spec and at
    least one is ready."""
    if not workload:
        return False
    meta = workload.get("metadata") or {}
    spec = workload.get("spec") or {}
    st = workload.get("status") or {}
    wanted = spec.get("replicas", 1)
    if not wanted or (st.get("readyReplicas") or 0) < 1:
        return False
    if (st.get("observedGeneration") or 0) < (meta.get("generation") or 0):
        return False
    updated = st.get("updatedReplicas")
    total = st.get("replicas")
    if updated is None:  # an LWS before its first status: not yet
        return False
    return int(updated) >= int(wanted) and (total is None or int(total) <= int(wanted))


def _selector(name: str) -> str:
    """The labels ``evaluation.job.render_job`` puts on every evaluation Job of ``name``."""
    return ",".join(f"{k}={v}" for k, v in naming.labels(name, COMPONENT_EVALUATION).items())


def step(cluster: ClusterPort, llmd: LLMDeployment, *, revision: str | None,
         endpoint: str | None, image: str, workload: dict[str, Any] | None,
         old: dict[str, Any] | None) -> Step:
    """Apply/observe the evaluation of ``llmd`` (``old``: the current ``status.evaluation``)."""
    name = str(llmd.metadata.name)
    namespace = str(llmd.metadata.namespace or "default")
    spec = llmd.spec.evaluation
    if spec is None:
        applied: tuple[str, ...] = ()
        stale = (old or {}).get("jobName")
        if stale and cluster.delete("batch/v1", "Job", stale, namespace):
            applied = (f"Job/{stale}: deleted (spec.evaluation removed)",)
        return Step(None, None, applied)
    if revision is None or endpoint is None or not rolled_out(workload):
        why = ("waiting for the serving workload to roll out"
               + (f" revision {revision}" if revision else ""))
        return Step(Want(EVALUATED, "Unknown", Reason.NOT_EVALUATED, why), old)

    wanted = hooks.desired(llmd, revision=revision, endpoint=endpoint, image=image)
    if wanted.job is None:  # invalid inline checks: nothing can run
        result = wanted.status
        return Step(evaluated(result), result.dump() if result is not None else None)

    job_name = wanted.job["metadata"]["name"]
    if old and old.get("jobName") == job_name and (old.get("error") or old.get("passed")
                                                   is not None):
        return Step(evaluated(EvaluationStatus.model_validate(old)), old)

    live = cluster.get("batch/v1", "Job", job_name, namespace)
    notes: list[str] = []
    if live is None:
        for other in cluster.list("batch/v1", "Job", namespace, _selector(name)):
            other_name = (other.get("metadata") or {}).get("name")
            if other_name and other_name != job_name and cluster.delete(
                    "batch/v1", "Job", other_name, namespace):
                notes.append(f"Job/{other_name}: deleted (superseded by {job_name})")
        how, live = cluster.apply(wanted.job)
        notes.append(f"Job/{job_name}: {how or 'created'}")
        running = Want(EVALUATED, "Unknown", Reason.EVALUATING,
                       f"evaluation Job {job_name} started for revision {revision}")
        return Step(running, old, tuple(notes))
    if hooks.finished(live) is None:
        running = Want(EVALUATED, "Unknown", Reason.EVALUATING,
                       f"evaluation Job {job_name} is running (revision {revision})")
        return Step(running, old)
    pods = cluster.list("v1", "Pod", namespace, f"job-name={job_name}")
    result = hooks.observe(live, pods)
    if result is None:  # cannot happen for a finished Job; keep a known state
        return Step(Want(EVALUATED, "Unknown", Reason.EVALUATING, f"reading Job {job_name}"), old)
    return Step(evaluated(result), result.dump())
