"""e2e: two operator shards on one cluster (docs/sharding.md).

Operator A serves the LLMDeployments labelled ``kubellm.io/shard=a`` on the H100 nodes, operator
B those labelled ``b`` on the A100 nodes (``--shard-selector``, ``--shard-node-selector``). Each
deployment is sized for and scheduled on its shard's pool only, a deployment of no shard is left
alone, a spec asking for the other pool is refused by field, and a deployment relabelled from b
to a moves to pool a (shard A takes it over, B lets it go).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from test_operator import get_llmd, hub, wait_ready  # noqa: F401 (fixtures)
from test_operator_helpers import (
    CRDS,
    OperatorProcess,
    apply_manifest,
    condition,
    get_json,
    items,
    llmd,
    policy,
    service_account_kubeconfig,
    token_secret,
    wait_until,
)

from hubfixtures.server import HubServer

pytestmark = pytest.mark.e2e

POOL = "kubellm-e2e/pool"
SHARD = "kubellm.io/shard"
PRODUCTS = {"a": "NVIDIA-H100-80GB-HBM3", "b": "NVIDIA-A100-SXM4-80GB"}
QWEN = "Qwen/Qwen2.5-7B-Instruct"


def nodes_of(cluster: Any, product: str) -> list[str]:
    found = get_json(cluster, "nodes", "-l", f"nvidia.com/gpu.product={product}") or {}
    return sorted(n["metadata"]["name"] for n in found.get("items", []))


@pytest.fixture(scope="module")
def shards(cluster: Any, hub: HubServer,  # noqa: F811
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, OperatorProcess]]:
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS))
    for crd in ("llmdeployments.kubellm.io", "licensepolicies.kubellm.io"):
        cluster.kubectl("wait", "--for", "condition=Established", f"crd/{crd}", "--timeout=60s")
    for pool, product in PRODUCTS.items():
        for name in nodes_of(cluster, product):
            cluster.kubectl("label", "node", name, f"{POOL}={pool}", "--overwrite")
    tmp = tmp_path_factory.mktemp("shards")
    kubeconfig = service_account_kubeconfig(cluster, tmp / "sa-kubeconfig")
    procs = {pool: OperatorProcess(
        kubeconfig, hub.endpoint, tmp / f"operator-{pool}.log", "-A",
        "--shard-selector", f"{SHARD}={pool}", "--shard-node-selector", f"{POOL}={pool}",
        "--resync-seconds", "5", "--image", "ghcr.io/kubellm/kubellm:e2e").start()
        for pool in PRODUCTS}
    yield procs
    for pool, proc in procs.items():
        proc.stop()
        print(f"--- operator {pool} log tail ---\n{proc.tail(30)}")
    for product in PRODUCTS.values():
        for name in nodes_of(cluster, product):
            cluster.kubectl("label", "node", name, f"{POOL}-", check=False)


@pytest.fixture
def sns(cluster: Any, namespace: str, shards: dict[str, OperatorProcess]) -> Iterator[str]:
    apply_manifest(cluster, [policy(f"pol-{namespace}", [namespace]), token_secret(namespace)])
    yield namespace
    cluster.kubectl("delete", "licensepolicy", f"pol-{namespace}", "--ignore-not-found")


def in_shard(name: str, ns: str, shard: str | None, **spec: Any) -> dict[str, Any]:
    doc = llmd(name, ns, QWEN, hubTokenSecretRef={"name": "hf-token", "key": "HF_TOKEN"},
               **spec)
    if shard:
        doc["metadata"]["labels"] = {SHARD: shard}
    return doc


def serving_nodes(cluster: Any, ns: str, name: str) -> set[str]:
    pods = items(cluster, "pods", ns, "-l",
                 f"app.kubernetes.io/instance={name},app.kubernetes.io/component=server")
    return {p["spec"].get("nodeName") or "" for p in pods}


def test_each_shard_serves_its_deployments_on_its_pool(cluster: Any, sns: str,
                                                       shards: dict[str, OperatorProcess]) -> None:
    ns = sns
    started = time.monotonic()
    apply_manifest(cluster, [in_shard("qa", ns, "a"), in_shard("qb", ns, "b"),
                             in_shard("nobody", ns, None),
                             in_shard("pinned", ns, "a", nodeSelector={POOL: "b"})])
    for name, pool in (("qa", "a"), ("qb", "b")):
        obj = wait_ready(cluster, ns, name, timeout=120)
        assert obj["status"]["sizing"]["gpuType"] == PRODUCTS[pool], obj["status"]["sizing"]
        assert serving_nodes(cluster, ns, name) <= set(nodes_of(cluster, PRODUCTS[pool]))
        deployment = get_json(cluster, "deployment", name, "-n", ns)
        assert deployment["spec"]["template"]["spec"]["nodeSelector"][POOL] == pool
        assert "nodeSelector" not in obj["spec"]  # the user's object is not changed
    print(f"two shards: both deployments Ready {time.monotonic() - started:.1f} s after apply")
    pinned = wait_until(lambda: condition(get_llmd(cluster, ns, "pinned"), "Ready"), 30,
                        what="pinned has a Ready condition")
    assert pinned[:2] == ("False", "InvalidSpec"), pinned
    assert f"spec.nodeSelector.{POOL}" in pinned[2] and f"{POOL}=a" in pinned[2], pinned
    # no operator serves a deployment of no shard: no status, no children
    assert not (get_llmd(cluster, ns, "nobody") or {}).get("status")
    assert get_json(cluster, "deployment", "nobody", "-n", ns) is None
    writes_b = shards["b"].writes()

    # relabelled from shard b to a: A takes it over and moves it to pool a; B lets it go
    cluster.kubectl("label", "llmd", "qb", "-n", ns, f"{SHARD}=a", "--overwrite")

    def moved() -> bool:
        obj = get_llmd(cluster, ns, "qb") or {}
        ready = condition(obj, "Ready")
        return bool(ready and ready[0] == "True"
                    and obj["status"]["sizing"]["gpuType"] == PRODUCTS["a"]
                    and serving_nodes(cluster, ns, "qb") <= set(nodes_of(cluster, PRODUCTS["a"])))

    wait_until(moved, 120, what="qb Ready on pool a")
    deployment = get_json(cluster, "deployment", "qb", "-n", ns)
    assert deployment["spec"]["template"]["spec"]["nodeSelector"][POOL] == "a"
    time.sleep(6)  # a resync of B
    assert shards["b"].writes() == writes_b, "shard b still writes for a deployment it let go"
