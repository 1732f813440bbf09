"""Unit tests of the kopf layer's pure parts and the operator's config: kopf settings, the
frozen config built from ``kubellm run``'s flags, metrics."""

from __future__ import annotations

import dataclasses
from typing import Any

import kopf
import pytest

from kubellm.api.v1alpha1 import API_VERSION, GROUP, VERSION
from kubellm.cli import build_parser
from kubellm.handlers import configure_settings
from kubellm.metrics import Metrics
from kubellm.shell.config import OperatorConfig


def config(argv: list[str], **env: str) -> OperatorConfig:
    return OperatorConfig.from_args(build_parser().parse_args(["run", *argv]), env)


def test_config_from_flags_and_environment() -> None:
    cfg = config(["-n", "team", "--resync-seconds", "7", "--metrics-port", "9100", "--workers",
                  "3", "--image", "reg/kubellm:1", "--kubeconfig", "kc"],
                 HF_ENDPOINT="http://mirror:8080", KUBECONFIG="/ignored")
    assert (cfg.namespace, cfg.resync_seconds, cfg.metrics_port, cfg.workers) == (
        "team", 7.0, 9100, 3)
    assert cfg.kubeconfig is not None and cfg.kubeconfig.endswith("/kc")  # the flag wins
    assert cfg.reconcile.image == "reg/kubellm:1"
    assert cfg.reconcile.hub_endpoint == "http://mirror:8080"
    assert cfg.election is None
    plain = config([], KUBECONFIG="/home/u/.kube/config")
    assert plain.kubeconfig == "/home/u/.kube/config" and plain.namespace is None
    assert plain.reconcile.hub_endpoint is None and plain.resync_seconds == 300.0


def test_config_is_frozen() -> None:
    cfg = config([])
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.workers = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.reconcile.image = "x"  # type: ignore[misc]


def test_settings_keep_kopf_writes_down() -> None:
    settings = kopf.OperatorSettings()
    configure_settings(settings, OperatorConfig(workers=5))
    assert isinstance(settings.persistence.progress_storage, kopf.AnnotationsProgressStorage)
    assert isinstance(settings.persistence.diffbase_storage, kopf.AnnotationsDiffBaseStorage)
    assert settings.peering.standalone is True
    assert settings.execution.max_workers == 5
    assert settings.posting.level >= 30  # warnings and errors only


def test_deployments_gauge_counts_last_conditions() -> None:
    metrics = Metrics()
    ready = {"conditions": [{"type": "Ready", "status": "True"}]}
    metrics.observe_status(("n", "a"), ready)
    metrics.observe_status(("n", "b"), ready)
    metrics.observe_status(("n", "b"), {"conditions": [{"type": "Ready", "status": "False"}]})
    value = metrics.registry.get_sample_value
    assert value("kubellm_deployments", {"condition": "Ready", "status": "True"}) == 1
    assert value("kubellm_deployments", {"condition": "Ready", "status": "False"}) == 1
    metrics.observe_status(("n", "a"), None)
    assert value("kubellm_deployments", {"condition": "Ready", "status": "True"}) == 0


def test_evaluation_gauges_follow_status_evaluation() -> None:
    metrics = Metrics()
    value = metrics.registry.get_sample_value
    key = {"namespace": "n", "name": "a"}
    metrics.observe_status(("n", "a"), {"conditions": [{"type": "Evaluated", "status": "False"}],
                                        "evaluation": {"passRate": 0.5, "passed": False}})
    assert value("kubellm_evaluation_pass_rate", key) == 0.5
    assert value("kubellm_evaluation_passed", key) == 0
    assert value("kubellm_deployments", {"condition": "Evaluated", "status": "False"}) == 1
    metrics.observe_status(("n", "a"), {"evaluation": {"passRate": 1.0, "passed": True}})
    assert value("kubellm_evaluation_passed", key) == 1
    metrics.observe_status(("n", "a"), None)  # deleted: its series go
    assert value("kubellm_evaluation_pass_rate", key) is None


def test_kopf_handlers_only_enqueue(monkeypatch: pytest.MonkeyPatch) -> None:
    """An LLMDeployment event enqueues a new deployment or a user's change (spec, labels,
    annotations), never its own status moving; a policy change enqueues every known one;
    nothing reconciles inside a handler (the cluster sees no write, the queue has not run)."""
    import asyncio

    from kubellm import handlers
    from kubellm.k8s.store import CachingCluster
    from kubellm.shell.operator import Operator
    from support.cluster import FakeCluster
    from support.objects import facts_for, llmd

    cluster = FakeCluster()
    for name in ("a", "b"):
        cluster.put(llmd(name))
    store = CachingCluster(cluster, {"LLMDeployment"})  # type: ignore[arg-type]
    op = Operator(OperatorConfig(), Metrics(), store, facts_for)
    monkeypatch.setattr(handlers, "_operator", op)

    async def main() -> None:
        body = cluster.get(API_VERSION, "LLMDeployment", "a", "team")
        assert body is not None
        enqueued: list[tuple[str, str]] = []
        real_enqueue = op.enqueue

        def enqueue(key: tuple[str, str], trigger: str) -> None:
            enqueued.append((key[1], trigger))
            real_enqueue(key, trigger)

        monkeypatch.setattr(op, "enqueue", enqueue)

        async def event(type_: str | None, obj: dict[str, Any]) -> None:
            await handlers.llmd_event(
                type=type_, body=obj, name=obj["metadata"]["name"], namespace="team",
                event={"type": type_, "object": obj},
                resource=kopf.Resource(GROUP, VERSION, handlers.PLURAL))

        await event(None, body)  # the initial listing: reconciled on start
        await event("MODIFIED", {**body, "status": {"ready": "False"}})  # own status: nothing
        assert enqueued == [("a", "changed")]
        edited = {**body, "metadata": {**body["metadata"], "generation": 2}}
        await event("MODIFIED", {**edited, "status": {"ready": "True"}})  # a spec edit
        labelled = {**edited, "metadata": {**edited["metadata"], "labels": {"team": "x"}}}
        await event("MODIFIED", labelled)
        await event("MODIFIED", labelled)  # the same again: nothing
        assert enqueued == [("a", "changed")] * 3
        assert op.queue.waiting() == 1  # deduplicated: one run of "a" to come
        op.deployment_seen(("team", "b"), cluster.get(API_VERSION, "LLMDeployment", "b", "team")
                           or {})
        assert op.queue.waiting() == 2
        await handlers.policy_event(type="MODIFIED", name="corp")
        assert op.queue.waiting() == 2
        await event("DELETED", labelled)
        await event(None, labelled)  # back (a relist): enqueued again
        assert enqueued[-2:] == [("a", "deleted"), ("a", "changed")]

    asyncio.run(main())
    assert cluster.writes == [] and op.queue.runs == 0
