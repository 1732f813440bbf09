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


def test_a_gpu_pod_ending_wakes_the_deployments_waiting_for_gpus() -> None:
    """The Pod informer's change (on its own thread) reaches the loop; a change that frees no
    GPU (a pod scheduled) wakes nobody."""
    import asyncio
    import threading

    from kubellm.sizing.inventory import pod_view

    op = operator(FakeCluster())
    bound = pod_view({"metadata": {"name": "train", "namespace": "ml"},
                      "spec": {"nodeName": "l4-0", "containers": [
                          {"resources": {"limits": {"nvidia.com/gpu": 8}}}]},
                      "status": {"phase": "Running"}})
    pending = {**(bound or {}), "spec": {"containers": [
        {"resources": {"requests": {"nvidia.com/gpu": 8}}}]}}

    async def main() -> tuple[int, int]:
        op.loop = asyncio.get_running_loop()
        op.gpu_waiting.add(("team", "big"))
        scheduled = threading.Thread(target=op.gpus_changed, args=("Pod", pending, bound))
        scheduled.start()
        scheduled.join()
        await asyncio.sleep(0)
        after_scheduled = op.queue.waiting()
        ended = threading.Thread(target=op.gpus_changed, args=("Pod", bound, None))
        ended.start()
        ended.join()
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        return after_scheduled, op.queue.waiting()

    assert asyncio.run(main()) == (0, 1)
