"""Operator shards (docs/sharding.md): the label selector grammar ``--shard-selector`` takes, the
node pool ``--shard-node-selector`` adds to every deployment of the shard, and a shard operator
leaving alone an LLMDeployment relabelled out of its shard."""

from __future__ import annotations

import dataclasses

import pytest

from kubellm.cli import build_parser
from kubellm.errors import SpecError
from kubellm.metrics import Metrics
from kubellm.naming import parse_selector, selector_matches
from kubellm.reconcile import Settings
from kubellm.shell.config import OperatorConfig
from support.cluster import FakeCluster, condition
from support.objects import llmd, node
from support.reconcile import make


@pytest.mark.parametrize(("selector", "labels", "matches"), [
    ("kubellm.io/shard=a", {"kubellm.io/shard": "a"}, True),
    ("kubellm.io/shard==a", {"kubellm.io/shard": "b"}, False),
    ("kubellm.io/shard=a", {}, False),
    ("kubellm.io/shard!=a", {}, True),  # as the apiserver: a missing label is "not a"
    ("kubellm.io/shard!=a", {"kubellm.io/shard": "a"}, False),
    ("!kubellm.io/shard", {}, True),
    ("!kubellm.io/shard", {"kubellm.io/shard": "a"}, False),
    ("team, tier = gpu", {"team": "x", "tier": "gpu"}, True),
    ("team,tier=gpu", {"tier": "gpu"}, False),
    ("tier=", {"tier": ""}, True),
])
def test_selector_matches_like_the_apiserver(selector: str, labels: dict[str, str],
                                             matches: bool) -> None:
    assert selector_matches(parse_selector(selector), labels) is matches


@pytest.mark.parametrize("bad", ["", "a=b=c", "!a=b", "a in (x)", "-a=b", "a=b,", "x/y/z=1"])
def test_a_bad_selector_names_the_flag(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_selector(bad)
    args = build_parser().parse_args(["run", f"--shard-selector={bad or ','}"])
    with pytest.raises(SpecError) as err:
        OperatorConfig.from_args(args, {})
    assert err.value.field == "--shard-selector" and "key=value" in str(err.value)


def test_shard_flags_reach_the_config() -> None:
    args = build_parser().parse_args(["run", "--shard-selector", "kubellm.io/shard=a",
                                      "--shard-node-selector", "zone=x,pool=a"])
    cfg = OperatorConfig.from_args(args, {})
    assert cfg.shard_selector == "kubellm.io/shard=a"
    assert cfg.reconcile.node_pool == (("pool", "a"), ("zone", "x"))
    plain = OperatorConfig.from_args(build_parser().parse_args(["run"]), {})
    assert plain.shard_selector is None and plain.reconcile.node_pool == ()
    for bad in ("pool", "pool=a,=b", "bad key=a"):
        with pytest.raises(SpecError) as err:
            OperatorConfig.from_args(build_parser().parse_args(
                ["run", "--shard-node-selector", bad]), {})
        assert err.value.field == "--shard-node-selector"


def labelled(body: dict[str, object], shard: str) -> dict[str, object]:
    body["metadata"]["labels"] = {"kubellm.io/shard": shard}  # type: ignore[index]
    return body


def pool_cluster() -> FakeCluster:
    cluster = FakeCluster()
    for name, pool in (("a0", "a"), ("b0", "b"), ("b1", "b")):
        cluster.put(node(name, pool=pool))
    return cluster


def test_a_shard_sizes_and_schedules_on_its_node_pool_only() -> None:
    cluster = pool_cluster()
    _, rec = make(cluster, settings=Settings(inventory_ttl=0.0, policy_ttl=0.0,
                                             node_pool=(("pool", "a"),)))
    # 8 L4 in pool a, 16 in pool b: 9 replicas of one L4 fit the cluster but not the shard
    cluster.put(llmd("big", replicas=9, gpu={"count": 1}))
    out = rec.reconcile(cluster.body("big"))
    assert condition(cluster, "big", "Sized")[0] == "False", out.status
    assert not [o for o in cluster.objects if o[0] == "Deployment"]
    cluster.put(llmd("fits", replicas=8, gpu={"count": 1}, cache={"enabled": False}))
    rec.reconcile(cluster.body("fits"))
    assert condition(cluster, "fits", "Sized")[0] == "True"
    deployment = cluster.get("apps/v1", "Deployment", "fits", "team")
    assert deployment is not None
    assert deployment["spec"]["template"]["spec"]["nodeSelector"] == {"pool": "a"}
    assert "nodeSelector" not in cluster.body("fits")["spec"]  # the user's object is unchanged


def test_a_spec_asking_for_other_nodes_than_the_pool_is_refused_by_field() -> None:
    cluster = pool_cluster()
    _, rec = make(cluster, settings=Settings(inventory_ttl=0.0, policy_ttl=0.0,
                                             node_pool=(("pool", "a"),)))
    cluster.put(llmd("elsewhere", nodeSelector={"pool": "b"}))
    rec.reconcile(cluster.body("elsewhere"))
    ready = condition(cluster, "elsewhere", "Ready")
    assert ready[0] == "False" and ready[1] == "InvalidSpec", ready
    message = cluster.body("elsewhere")["status"]["conditions"]
    assert any("spec.nodeSelector.pool" in c.get("message", "") and "pool=a" in c["message"]
               for c in message)
    assert {o[0] for o in cluster.objects} == {"Node", "LLMDeployment"}  # nothing created


def test_an_llmdeployment_relabelled_out_of_the_shard_is_left_alone() -> None:
    from kubellm.shell.operator import Operator
    from support.objects import facts_for

    cluster = pool_cluster()
    cluster.put(labelled(llmd("moved"), shard="b"))
    config = dataclasses.replace(OperatorConfig(), shard_selector="kubellm.io/shard=a")
    op = Operator(config, Metrics(), cluster, facts_for)
    assert op.reconcile_key(("team", "moved"), "deleted") is None  # not reconciled
    assert cluster.writes == []
    cluster.put(labelled(llmd("mine"), shard="a"))
    assert op.reconcile_key(("team", "mine"), "changed") is not None
    assert cluster.writes
