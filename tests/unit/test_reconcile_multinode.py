"""Reconcile of a multi-node plan (LeaderWorkerSet) against an in-memory cluster, with the real
planner on two 8 x H100 nodes: without the LWS CRD nothing at all is created and status says
why; with it, the LWS and its Service are applied (workload first), readiness comes from the LWS,
and a licence denial scales it to 0."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from test_planner_multinode import facts_405b

from kubellm.errors import UnsupportedError
from kubellm.facts import ModelFacts
from kubellm.reconcile import Reconciler
from support.cluster import FakeCluster
from support.objects import H100, llmd, node, policy
from support.reconcile import make as _make

LWS = "LeaderWorkerSet"


class NoLwsCluster(FakeCluster):
    """A cluster without the LeaderWorkerSet CRD (as ``KubeCluster._resource`` reports it)."""

    def get(
        self, api_version: str, kind: str, name: str, namespace: str | None
    ) -> dict[str, Any] | None:
        if kind == LWS:
            raise UnsupportedError("this cluster serves no LeaderWorkerSet", reason="KindNotServed")
        return super().get(api_version, kind, name, namespace)

    def apply(
        self, manifest: dict[str, Any], live: dict[str, Any] | bool | None = False
    ) -> tuple[str | None, dict[str, Any] | None]:
        if manifest["kind"] == LWS:
            raise UnsupportedError("this cluster serves no LeaderWorkerSet", reason="KindNotServed")
        return super().apply(manifest, live)


def make(cluster: FakeCluster, facts: list[ModelFacts] | None = None) -> Reconciler:
    """The reconciler; ``facts[0]`` is what the Hub says of the model (tests may change it)."""
    known = facts if facts is not None else [facts_405b()]
    for name in ("h1", "h2"):
        cluster.put(node(name, H100))
    return _make(cluster, lambda repo, revision="main", **_: known[0])[1]


def body(**spec: Any) -> dict[str, Any]:
    return llmd(
        "big",
        repo="acme/llama-405b",
        quantization="none",
        gpu={"type": "h100"},
        context={"maxModelLen": 8192},
        **spec,
    )


def condition(cluster: FakeCluster, type_: str) -> tuple[str, str, str]:
    for c in cluster.body("big")["status"]["conditions"]:
        if c["type"] == type_:
            return c["status"], c["reason"], c.get("message", "")
    raise AssertionError(type_)


def test_without_the_lws_crd_nothing_is_created_and_status_says_why() -> None:
    cluster = NoLwsCluster()
    cluster.put(body())  # cache enabled: not even the PVC or the download Job may appear
    rec = make(cluster)
    out = rec.reconcile(cluster.body("big"))
    assert out.ready == "False"
    status, reason, message = condition(cluster, "Ready")
    assert (status, reason) == ("False", "KindNotServed")
    assert "LeaderWorkerSet" in message
    assert [k for (k, _, _) in cluster.objects if k != "Node"] == ["LLMDeployment"]
    assert not any(w.startswith("apply") for w in cluster.writes)
    assert rec.ledger.entry(("team", "big")) is None  # no GPUs held for what cannot be created


def test_with_the_crd_the_lws_comes_first_and_readiness_is_read_from_it() -> None:
    cluster = FakeCluster()
    cluster.put(body(cache={"enabled": False}, replicas=1))
    rec = make(cluster)
    out = rec.reconcile(cluster.body("big"))
    assert out.applied[0].startswith("LeaderWorkerSet/big")
    assert out.applied[1].startswith("Service/big")
    assert ("Deployment", "team", "big") not in cluster.objects
    committed = rec.ledger.entry(("team", "big"))
    assert committed is not None
    assert (committed.replicas, committed.gpus_per_replica) == (2, 8)  # 1 group x 2 pods x 8
    assert condition(cluster, "Available")[:2] == ("False", "NoReplicasReady")

    cluster.set_status(LWS, "big", {"replicas": 1, "readyReplicas": 1})
    rec.reconcile(cluster.body("big"))
    assert condition(cluster, "Available")[:2] == ("True", "MinimumReplicasAvailable")
    assert condition(cluster, "Ready")[0] == "True"
    status = cluster.body("big")["status"]
    assert status["readyReplicas"] == 1
    assert "leaderworkerset.sigs.k8s.io/worker-index=0" in status["selector"]


def test_licence_denial_scales_the_lws_to_zero() -> None:
    cluster = FakeCluster()
    cluster.put(body(cache={"enabled": False}))
    rec = make(cluster)
    rec.reconcile(cluster.body("big"))
    assert cluster.objects[(LWS, "team", "big")]["spec"]["replicas"] == 1
    cluster.put(policy("strict", mode="Enforce", allowedClasses=["permissive"]))
    rec.invalidate_policies()
    out = rec.reconcile(cluster.body("big"))
    assert cluster.objects[(LWS, "team", "big")]["spec"]["replicas"] == 0
    assert any("scaled to 0" in a for a in out.applied)
    assert condition(cluster, "LicenseApproved")[0] == "False"


def _owned(kind: str, api_version: str, owner: dict[str, Any]) -> dict[str, Any]:
    meta = owner["metadata"]
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "ownerReferences": [
                {
                    "apiVersion": "kubellm.io/v1alpha1",
                    "kind": "LLMDeployment",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                }
            ],
        },
        "spec": {"replicas": 1},
    }


def test_moving_to_several_nodes_deletes_the_old_deployment() -> None:
    """A single-node Deployment left beside the new LWS would keep its GPUs forever."""
    cluster = FakeCluster()
    cluster.put(body(cache={"enabled": False}))
    cluster.put(_owned("Deployment", "apps/v1", cluster.body("big")))
    out = make(cluster).reconcile(cluster.body("big"))
    assert (LWS, "team", "big") in cluster.objects
    assert ("Deployment", "team", "big") not in cluster.objects
    assert any(a.startswith("Deployment/big: deleted") for a in out.applied)


def test_a_deployment_of_someone_else_is_left_alone() -> None:
    cluster = FakeCluster()
    cluster.put(body(cache={"enabled": False}))
    foreign = _owned("Deployment", "apps/v1", cluster.body("big"))
    foreign["metadata"]["ownerReferences"][0]["uid"] = "someone-else"
    cluster.put(foreign)
    make(cluster).reconcile(cluster.body("big"))
    assert ("Deployment", "team", "big") in cluster.objects


def test_moving_back_to_one_node_deletes_the_old_lws() -> None:
    cluster = FakeCluster()
    cluster.put(body(cache={"enabled": False}))
    facts = [facts_405b()]
    rec = make(cluster, facts)
    rec.reconcile(cluster.body("big"))  # multi-node: LWS, status records pp 2
    assert (LWS, "team", "big") in cluster.objects
    facts[0] = replace(facts[0], weight_bytes=300 * 1024**3)  # a new revision fits one node
    cluster.objects[("LLMDeployment", "team", "big")]["spec"]["model"]["revision"] = "v2"
    out = rec.reconcile(cluster.body("big"))
    assert ("Deployment", "team", "big") in cluster.objects
    assert (LWS, "team", "big") not in cluster.objects
    assert any(a.startswith("LeaderWorkerSet/big: deleted") for a in out.applied)
