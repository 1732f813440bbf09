"""Inventory from Node/Pod dicts and files, and a property of the sizer (hypothesis)."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archs import LLAMA_8B
from kubellm.api.v1alpha1 import LLMDeploymentSpec
from kubellm.errors import SpecError
from kubellm.facts import Architecture, ModelFacts
from kubellm.sizing import (
    Inventory,
    NodePool,
    default_inventory,
    inventory_from_file,
    inventory_from_nodes,
    size,
)
from kubellm.sizing.catalog import load_gpu_catalog


def node(
    name: str,
    product: str | None = "NVIDIA-L4",
    gpus: int | str = "4",
    *,
    ready: bool = True,
    cordoned: bool = False,
    memory: str | None = None,
    extra: dict[str, str] | None = None,
) -> dict[str, Any]:
    labels = {"kubernetes.io/hostname": name, **(extra or {})}
    if product:
        labels["nvidia.com/gpu.product"] = product
    if memory:
        labels["nvidia.com/gpu.memory"] = memory
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {"unschedulable": True} if cordoned else {},
        "status": {
            "allocatable": {"cpu": "16", "nvidia.com/gpu": gpus},
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }


def pod(
    node_name: str, gpus: int, phase: str = "Running", *, limits_only: bool = False, init: int = 0
) -> dict[str, Any]:
    res = {"limits": {"nvidia.com/gpu": str(gpus)}}
    if not limits_only:
        res["requests"] = {"nvidia.com/gpu": str(gpus)}
    spec: dict[str, Any] = {"nodeName": node_name, "containers": [{"name": "c", "resources": res}]}
    if init:
        spec["initContainers"] = [{"name": "i", "resources": {"limits": {"nvidia.com/gpu": init}}}]
    return {"metadata": {"name": f"p-{node_name}"}, "spec": spec, "status": {"phase": phase}}


def test_inventory_from_nodes_groups_skips_and_counts_free_gpus() -> None:
    nodes = [
        node("l4-a"),
        node("l4-b"),
        node("l4-c", cordoned=True),
        node("l4-d", ready=False),
        node("h100-a", "NVIDIA-H100-80GB-HBM3", "8", memory="81920"),
        node("cpu-1", None, "0"),
        node("shared-1", "NVIDIA-L4-SHARED", "16"),
        node("mig-1", "NVIDIA-A100-SXM4-40GB-MIG-3g.20gb", "2"),
        node("gke-1", None, "1", extra={"cloud.google.com/gke-accelerator": "nvidia-l4"}),
        node("odd-1", "NVIDIA-Mystery-1", "2"),
    ]
    pods = [
        pod("l4-a", 1),
        pod("l4-a", 2, limits_only=True),  # GPU requests default to limits
        pod("l4-b", 4, phase="Succeeded"),  # terminated: frees its GPUs
        pod("h100-a", 1, init=3),  # init container dominates: 3
        {"metadata": {"name": "pending"}, "spec": {"containers": []}, "status": {}},
    ]
    inv = inventory_from_nodes(nodes, pods)
    by_product = {(p.gpu_product, p.label_key): p for p in inv.pools}
    l4 = by_product[("NVIDIA-L4", "nvidia.com/gpu.product")]
    assert (l4.nodes, l4.gpus_per_node, l4.free_gpus_per_node) == (2, 4, (1, 4))
    assert l4.node_names == ("l4-a", "l4-b")
    h100 = by_product[("NVIDIA-H100-80GB-HBM3", "nvidia.com/gpu.product")]
    assert (h100.free_gpus_per_node, h100.gpu_memory_mib) == ((5,), 81920)
    mig = by_product[("NVIDIA-A100-SXM4-40GB-MIG-3g.20gb", "nvidia.com/gpu.product")]
    assert mig.gpu_memory_mib == 20480
    assert ("nvidia-l4", "cloud.google.com/gke-accelerator") in by_product
    text = "\n".join(inv.notes)
    for expected in (
        "l4-c (NVIDIA-L4): cordoned",
        "l4-d (NVIDIA-L4): NotReady",
        "shared-1",
        "NVIDIA-Mystery-1 is not in the catalogue",
    ):
        assert expected in text
    assert inv.source == "cluster"


def test_mig_slices_are_used_one_at_a_time() -> None:
    inv = inventory_from_nodes([node("mig-1", "NVIDIA-A100-SXM4-40GB-MIG-3g.20gb", "2")])
    facts = ModelFacts(repo="org/8b", architecture=ARCH_8B, weight_bytes=16 * 10**9)
    r = size(facts, LLMDeploymentSpec.model_validate({"model": {"repo": "x/y"}}), inv)
    assert not r.fits  # 16 GB of weights on 20 GiB slices, and no tp across slices
    assert all("(tp1)" in line for line in r.considered if " x NVIDIA-A100" in line)


def test_inventory_from_file() -> None:
    inv = inventory_from_file(
        [
            {"gpuProduct": "l4", "gpusPerNode": 4, "nodes": 2},
            {"gpuProduct": "NVIDIA-H100-80GB-HBM3", "gpusPerNode": 8, "freeGpusPerNode": [3]},
            {"gpuProduct": "Custom-GPU", "gpusPerNode": 1, "gpuMemoryMiB": 65536},
        ],
        "inventory.yaml",
    )
    assert [p.gpu_product for p in inv.pools] == [
        "NVIDIA-L4",
        "NVIDIA-H100-80GB-HBM3",
        "Custom-GPU",
    ]
    assert inv.pools[1].free_gpus_per_node == (3,) and inv.source == "file:inventory.yaml"
    assert inventory_from_file([], "file:inventory.yaml").source == "file:inventory.yaml"


def test_cloud_label_pool_carries_its_label_key_to_the_result() -> None:
    inv = inventory_from_nodes(
        [node("gke-1", None, "1", extra={"cloud.google.com/gke-accelerator": "nvidia-l4"})]
    )
    facts = ModelFacts(repo="org/8b", architecture=ARCH_8B, weight_bytes=15 * 1024**3)
    r = size(facts, LLMDeploymentSpec.model_validate({"model": {"repo": "x/y"}}), inv)
    assert (r.gpu_type, r.gpu_label_key) == ("nvidia-l4", "cloud.google.com/gke-accelerator")


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"gpuProduct": "l4"}, "inv.yaml"),
        ([{"gpuProduct": "l4", "gpusPerNode": 0}], "inv.yaml[0].gpusPerNode"),
        ([{"gpuProduct": "l4", "gpusPerNode": 1}, {"gpusPerNode": 1}], "inv.yaml[1].gpuProduct"),
        ([{"gpuProduct": "h9000", "gpusPerNode": 1}], "inv.yaml[0].gpuProduct"),
        ([{"gpuProduct": "l4", "gpusPerNode": 2, "color": "red"}], "inv.yaml[0].color"),
        (
            [{"gpuProduct": "l4", "gpusPerNode": 2, "freeGpusPerNode": [3]}],
            "inv.yaml[0].freeGpusPerNode",
        ),
    ],
)
def test_inventory_file_errors_name_index_and_field(data: Any, field: str) -> None:
    with pytest.raises(SpecError) as err:
        inventory_from_file(data, "inv.yaml")
    assert err.value.field == field


def test_default_inventory_is_the_catalogue_eight_per_node() -> None:
    inv = default_inventory()
    assert len(inv.pools) == len(load_gpu_catalog())
    assert {p.gpus_per_node for p in inv.pools} == {8}


ARCH_8B = LLAMA_8B


@st.composite
def architectures(draw: st.DrawFn) -> Architecture:
    heads = draw(st.sampled_from([8, 12, 16, 28, 32, 40, 56, 64, 96, 128]))
    kv = draw(st.sampled_from([d for d in (1, 2, 4, 8, 16, heads) if heads % d == 0]))
    return Architecture(
        num_hidden_layers=draw(st.integers(1, 128)),
        num_attention_heads=heads,
        num_key_value_heads=kv,
        head_dim=draw(st.sampled_from([64, 128, 256])),
        hidden_size=heads * 128,
        max_position_embeddings=draw(st.sampled_from([2048, 4096, 32768, 131072])),
    )


@settings(max_examples=150, deadline=None)
@given(
    arch=architectures(),
    gib=st.floats(0.5, 900),
    concurrency=st.integers(1, 64),
    kv_dtype=st.sampled_from(["auto", "fp8"]),
    utilization=st.sampled_from([0.8, 0.9, 0.95]),
    max_len=st.sampled_from(["auto", 4096, 16384]),
)
def test_chosen_configuration_always_fits_and_divides_heads(
    arch: Architecture,
    gib: float,
    concurrency: int,
    kv_dtype: str,
    utilization: float,
    max_len: int | str,
) -> None:
    if isinstance(max_len, int) and max_len > (arch.max_position_embeddings or 0):
        max_len = "auto"
    facts = ModelFacts(repo="org/m", architecture=arch, weight_bytes=int(gib * 1024**3))
    spec = LLMDeploymentSpec.model_validate(
        {
            "model": {"repo": "x/y"},
            "gpu": {"memoryUtilization": utilization},
            "context": {
                "maxModelLen": max_len,
                "concurrency": concurrency,
                "kvCacheDtype": kv_dtype,
            },
        }
    )
    r = size(facts, spec, default_inventory())
    assert r.message
    if not r.fits:
        return
    assert r.per_gpu_gib is not None and r.gpu_memory_gib is not None
    assert r.per_gpu_gib <= r.gpu_memory_gib
    tp, pp = r.tensor_parallel_size or 0, r.pipeline_parallel_size or 0
    assert arch.num_attention_heads is not None and arch.num_key_value_heads is not None
    assert arch.num_attention_heads % tp == 0
    kv = arch.num_key_value_heads
    assert (kv % tp == 0) if kv >= tp else (tp % kv == 0)
    assert r.gpus_per_replica == tp * pp
    assert r.max_model_len is not None and r.max_model_len <= (arch.max_position_embeddings or 0)
    if max_len == "auto":
        assert r.max_model_len >= min(2048, arch.max_position_embeddings or 0)


@st.composite
def inventories(draw: st.DrawFn) -> Inventory:
    products = [g.product for g in load_gpu_catalog()]
    pools = []
    for product in draw(st.lists(st.sampled_from(products), min_size=1, max_size=4, unique=True)):
        per_node = draw(st.sampled_from([1, 2, 4, 8]))
        nodes = draw(st.integers(1, 4))
        free = tuple(draw(st.integers(0, per_node)) for _ in range(nodes))
        pools.append(NodePool(product, per_node, nodes, free_gpus_per_node=free))
    return Inventory(pools=tuple(pools), source="file:hypothesis")


@settings(max_examples=150, deadline=None)
@given(arch=architectures(), gib=st.floats(0.5, 400), inventory=inventories(),
       count=st.sampled_from(["auto", 1, 2, 4, 8, 16]))  # fmt: skip
def test_chosen_configuration_is_placeable_on_free_gpus(
    arch: Architecture, gib: float, inventory: Inventory, count: int | str
) -> None:
    facts = ModelFacts(repo="org/m", architecture=arch, weight_bytes=int(gib * 1024**3))
    spec = LLMDeploymentSpec.model_validate({"model": {"repo": "x/y"}, "gpu": {"count": count}})
    try:
        r = size(facts, spec, inventory)
    except SpecError as err:  # only an explicit count that cannot split the heads
        assert err.field == "spec.gpu.count" and count != "auto"
        return
    assert r.message
    if not r.fits:
        assert r.reason in ("DoesNotFit", "GpusBusy", "Unsupported")
        return
    pool = next(p for p in inventory.pools if p.gpu_product == r.gpu_type)
    tp, pp = r.tensor_parallel_size or 0, r.pipeline_parallel_size or 0
    assert tp <= pool.gpus_per_node and r.gpus_per_replica == tp * pp
    assert sum(f // tp for f in pool.free_gpus_per_node or ()) >= pp  # enough free stages
    assert count == "auto" or r.gpus_per_replica == count
    assert r.per_gpu_gib is not None and r.gpu_memory_gib is not None
    assert r.per_gpu_gib <= r.gpu_memory_gib
