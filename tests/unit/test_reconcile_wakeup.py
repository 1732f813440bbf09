"""No lost wake-up: a shared cache completing while a reconcile of one of its users is in flight
reaches that user, however far its status got (issue: with the default 300 s resync, deployments
whose first reconcile was running when the download Job completed waited for the resync, because
the cache event woke only deployments whose status already named the cache).

The interleaving is forced: the fake cluster runs the "Job completed" watch event (store update,
then ``users_of_cache``) exactly when the reconcile reads the Job, i.e. after it planned and
before it sees the Job. Either the event finds the deployment, or the reconcile sees the
completed Job; the test checks the event finds it.
"""

from __future__ import annotations

from typing import Any

from kubellm.metrics import Metrics
from kubellm.shell.config import OperatorConfig
from kubellm.shell.operator import Operator
from support.cluster import FakeCluster, complete_job
from support.objects import facts_for, llmd, node


class RacingCluster(FakeCluster):
    """Completes the cache Job, and asks the operator who to wake, at the reconcile's Job read."""

    def __init__(self) -> None:
        super().__init__()
        self.operator: Operator | None = None
        self.woken: list[Any] = []

    def get(self, api_version: str, kind: str, name: str, namespace: str | None
            ) -> dict[str, Any] | None:  # fmt: skip
        if kind == "Job" and not self.woken and self.operator is not None:
            job = self.objects.get(("Job", namespace, name))
            if job is not None:  # the Job exists (an earlier reconcile made it): it completes now
                complete_job(self, name)
                key = job["metadata"]["labels"]["kubellm.io/cache-key"]
                self.woken.append(self.operator.users_of_cache(namespace or "default", key))
        return super().get(api_version, kind, name, namespace)


def operator(cluster: FakeCluster) -> Operator:
    """The real Operator (reconciler, planner, hooks) over ``cluster``; never started."""
    return Operator(OperatorConfig(), Metrics(), cluster, facts_for)


def test_cache_completing_mid_reconcile_wakes_the_deployment() -> None:
    cluster = RacingCluster()
    cluster.put(node("l4-0"))
    op = operator(cluster)
    # another deployment of the same model created the shared PVC and Job already
    cluster.put(llmd("first"))
    op.reconcile_key(("team", "first"), "test")
    assert cluster.woken == []  # the Job did not exist yet when it was read
    cluster.operator = op
    # a second deployment's first reconcile: its status names no cache yet (op.known is empty)
    cluster.put(llmd("second"))
    op.deployment_seen(("team", "second"), {})
    op.reconcile_key(("team", "second"), "test")
    assert cluster.woken, "the reconcile never read the cache Job"
    assert ("team", "second") in cluster.woken[0]


def test_users_of_cache_from_status_and_from_plans() -> None:
    rt = operator(FakeCluster())
    rt.known.update({("a", "x"): "k1", ("a", "y"): "k2", ("b", "x"): "k1"})
    rt.note_planned_cache("a", "z", "k1")
    rt.note_planned_cache("a", "y", "k1")  # planned a new cache; status still says k2
    assert rt.users_of_cache("a", "k1") == [("a", "x"), ("a", "y"), ("a", "z")]
    assert rt.users_of_cache("a", "k2") == [("a", "y")]
    assert rt.users_of_cache("a", None) == []
    rt.note_planned_cache("a", "z", None)  # deleted
    assert ("a", "z") not in rt.users_of_cache("a", "k1")
