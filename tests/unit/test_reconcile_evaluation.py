"""The reconciler's evaluation step (``spec.evaluation``) over an in-memory cluster, real planner.

One LLMDeployment with checks walks through: no Job before the rollout, one Job once every
replica runs the current spec, the report read from the finished pod's termination message into
``status.evaluation`` and ``Evaluated``, zero reads and writes once converged, ``gate`` folding
``Evaluated`` into ``Ready``, a spec edit superseding (and deleting) the old Job, invalid checks
refused with the field and no Job, and the evaluation removed again.
"""

from __future__ import annotations

from typing import Any

from kubellm.evaluation.report import CheckResult, aggregate, encode
from support.cluster import FakeCluster, complete_job, ready
from support.cluster import condition as cond
from support.objects import llmd
from support.reconcile import make, run

CHECKS = [{"name": "greets", "prompt": "Say hello", "expect": {"contains": "hello"}},
          {"name": "anything", "prompt": "Say something", "expect": {"regex": ".*"}}]


def _serving(cluster: FakeCluster, rec: Any, name: str = "chat") -> None:
    """Reconcile until the serving Deployment exists, then mark it rolled out and ready."""
    out, _ = run(cluster, rec, name)
    complete_job(cluster, out.status["cache"]["jobName"])
    run(cluster, rec, name)
    ready(cluster, name)


def _eval_jobs(cluster: FakeCluster) -> list[str]:
    return sorted(name for (kind, _, name) in cluster.objects if kind == "Job"
                  and "-eval-" in name)


def _finish(cluster: FakeCluster, job: str, results: list[CheckResult],
            min_pass_rate: float = 1.0) -> None:
    """The evaluation Job completed; its pod left the report as termination message."""
    message = encode(aggregate(results, min_pass_rate, 1.5)).decode()
    complete_job(cluster, job)
    cluster.put({"apiVersion": "v1", "kind": "Pod", "metadata": {
        "name": f"{job}-x", "namespace": "team", "labels": {"job-name": job},
        "creationTimestamp": "2026-12-04T03:00:00Z"},
        "status": {"containerStatuses": [{"name": "evaluate", "state": {
            "terminated": {"exitCode": 0, "message": message}}}]}})


def test_evaluates_after_the_rollout_and_reports_in_status() -> None:
    cluster, rec = make()
    cluster.put(llmd("chat", evaluation={"checks": CHECKS}))
    _, writes = run(cluster, rec, "chat")
    assert not _eval_jobs(cluster)
    assert cond(cluster, "chat", "Evaluated") == ("Unknown", "NotEvaluated")
    _serving(cluster, rec)
    # the Deployment's controller has not seen the new spec yet: still no Job
    cluster.objects[("Deployment", "team", "chat")]["metadata"]["generation"] = 2
    cluster.objects[("Deployment", "team", "chat")]["status"]["observedGeneration"] = 1
    run(cluster, rec, "chat")
    assert not _eval_jobs(cluster)
    ready(cluster, "chat")

    _, writes = run(cluster, rec, "chat")
    jobs = _eval_jobs(cluster)
    assert len(jobs) == 1 and f"apply Job/{jobs[0]}" in writes
    job = cluster.objects[("Job", "team", jobs[0])]
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--endpoint") + 1] == "http://chat.team.svc.cluster.local:80/v1"
    assert job["metadata"]["ownerReferences"][0]["uid"] == "uid-chat"
    assert cond(cluster, "chat", "Evaluated") == ("Unknown", "Evaluating")
    assert cond(cluster, "chat", "Ready") == ("True", "Ready")  # no gate: serving as usual

    _finish(cluster, jobs[0], [CheckResult("greets", False, failure="no 'hello' in 'xq'"),
                               CheckResult("anything", True)])
    _, writes = run(cluster, rec, "chat")
    assert cond(cluster, "chat", "Evaluated") == ("False", "BelowThreshold")
    assert cond(cluster, "chat", "Ready") == ("True", "Ready")
    evaluation = cluster.body("chat")["status"]["evaluation"]
    assert evaluation["passRate"] == 0.5 and evaluation["passed"] is False
    assert evaluation["jobName"] == jobs[0] and evaluation["revision"] == "a" * 40
    assert evaluation["checks"][0]["failure"] == "no 'hello' in 'xq'"
    assert any(w.startswith("event ") for w in writes)

    # converged: the finished Job is not read again, nothing is written
    reads: list[tuple[str, Any]] = []
    original_get, original_list = cluster.get, cluster.list
    cluster.get = lambda av, kind, name, ns: (  # type: ignore[method-assign]
        reads.append((kind, name)) or original_get(av, kind, name, ns))
    cluster.list = lambda av, kind, ns=None, sel=None: (  # type: ignore[method-assign]
        reads.append((kind, sel)) or original_list(av, kind, ns, sel))
    _, writes = run(cluster, rec, "chat")
    assert writes == []
    assert ("Job", jobs[0]) not in reads and ("Pod", f"job-name={jobs[0]}") not in reads


def test_gate_makes_ready_follow_evaluated() -> None:
    cluster, rec = make()
    cluster.put(llmd("chat", evaluation={"checks": CHECKS, "gate": True}))
    _serving(cluster, rec)
    run(cluster, rec, "chat")
    assert cond(cluster, "chat", "Ready") == ("Unknown", "Evaluating")
    job = _eval_jobs(cluster)[0]
    _finish(cluster, job, [CheckResult("greets", False), CheckResult("anything", True)])
    run(cluster, rec, "chat")
    assert cond(cluster, "chat", "Ready") == ("False", "BelowThreshold")
    assert cluster.body("chat")["status"]["ready"] == "False"


def test_a_spec_edit_re_evaluates_and_deletes_the_old_job() -> None:
    cluster, rec = make()
    cluster.put(llmd("chat", evaluation={"checks": CHECKS, "minPassRate": 0.5}))
    _serving(cluster, rec)
    run(cluster, rec, "chat")
    first = _eval_jobs(cluster)[0]
    _finish(cluster, first, [CheckResult("greets", False), CheckResult("anything", True)], 0.5)
    run(cluster, rec, "chat")
    assert cond(cluster, "chat", "Evaluated") == ("True", "Passed")

    body = cluster.objects[("LLMDeployment", "team", "chat")]
    body["spec"]["evaluation"]["minPassRate"] = 1.0
    body["metadata"]["generation"] = 2
    _, writes = run(cluster, rec, "chat")
    (second,) = _eval_jobs(cluster)
    assert second != first and f"delete Job/{first}" in writes
    assert cond(cluster, "chat", "Evaluated") == ("Unknown", "Evaluating")
    # the last result stays visible (it names what it was of) until the new one is in
    assert cluster.body("chat")["status"]["evaluation"]["generation"] == 1


def test_invalid_checks_name_the_field_and_create_no_job() -> None:
    cluster, rec = make()
    bad = [{"name": "broken", "prompt": "q", "expect": {"regex": "("}}]
    cluster.put(llmd("chat", evaluation={"checks": bad}))
    _serving(cluster, rec)
    run(cluster, rec, "chat")
    assert not _eval_jobs(cluster)
    assert cond(cluster, "chat", "Evaluated") == ("False", "EvaluationFailed")
    error = cluster.body("chat")["status"]["evaluation"]["error"]
    assert error.startswith("spec.evaluation.checks[0].expect.regex")
    assert cond(cluster, "chat", "Ready") == ("True", "Ready")  # keeps serving


def test_removing_the_evaluation_drops_condition_status_and_job() -> None:
    cluster, rec = make()
    cluster.put(llmd("chat", evaluation={"checks": CHECKS}))
    _serving(cluster, rec)
    run(cluster, rec, "chat")
    job = _eval_jobs(cluster)[0]
    _finish(cluster, job, [CheckResult("greets", True), CheckResult("anything", True)])
    run(cluster, rec, "chat")
    body = cluster.objects[("LLMDeployment", "team", "chat")]
    del body["spec"]["evaluation"]
    body["metadata"]["generation"] = 2
    _, writes = run(cluster, rec, "chat")
    assert f"delete Job/{job}" in writes and not _eval_jobs(cluster)
    status = cluster.body("chat")["status"]
    assert "evaluation" not in status
    assert all(c["type"] != "Evaluated" for c in status["conditions"])
