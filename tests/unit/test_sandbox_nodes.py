"""Node-pool files: the default pools, the Node objects built from them, and errors that name
the offending field."""

from __future__ import annotations

from pathlib import Path

import pytest

from kubellm.errors import SpecError
from kubellm.sandbox import nodes


def test_default_pools_are_the_documented_ones() -> None:
    pools = nodes.load_pools()
    summary = [(p.name, p.count, p.gpu.product if p.gpu else None, p.gpu.count if p.gpu else 0)
               for p in pools]
    assert summary == [
        ("h100", 2, "NVIDIA-H100-80GB-HBM3", 8),
        ("a100", 2, "NVIDIA-A100-SXM4-80GB", 4),
        ("l4", 4, "NVIDIA-L4", 1),
        ("cpu", 1, None, 0),
    ]


def test_gpu_node_manifest_has_gfd_labels_capacity_and_kwok_annotation() -> None:
    [pool] = nodes.parse_pools(
        "pools:\n- name: l4\n  count: 2\n  gpu: {product: NVIDIA-L4, count: 1, memoryMiB: 23034}\n"
    )
    built = nodes.node_manifests([pool])
    assert [n["metadata"]["name"] for n in built] == ["kubellm-l4-0", "kubellm-l4-1"]
    node = built[1]
    assert node["metadata"]["annotations"] == {"kwok.x-k8s.io/node": "fake"}
    labels = node["metadata"]["labels"]
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-L4"
    assert labels["nvidia.com/gpu.memory"] == "23034"
    assert labels["nvidia.com/gpu.count"] == "1"
    assert labels["nvidia.com/gpu.present"] == "true"
    assert labels["kubernetes.io/hostname"] == "kubellm-l4-1"
    assert node["spec"]["providerID"] == "kwok://kubellm-l4-1"
    assert node["status"]["capacity"] == node["status"]["allocatable"]
    assert node["status"]["capacity"]["nvidia.com/gpu"] == "1"
    assert int(node["status"]["capacity"]["pods"]) >= 500


def test_cpu_pool_has_no_gpu_labels_or_resource() -> None:
    [node] = nodes.node_manifests(nodes.parse_pools("pools: [{name: cpu, count: 1, cpu: 64}]"))
    assert not any(k.startswith("nvidia.com/") for k in node["metadata"]["labels"])
    assert "nvidia.com/gpu" not in node["status"]["capacity"]
    assert node["status"]["capacity"]["cpu"] == "64"


def test_labels_and_taints_are_passed_through() -> None:
    [pool] = nodes.parse_pools(
        "pools:\n- name: x\n  count: 1\n  labels: {zone: a, spot: true}\n"
        "  taints: [{key: nvidia.com/gpu, value: present, effect: NoSchedule}]\n"
    )
    [node] = nodes.node_manifests([pool])
    assert node["metadata"]["labels"]["spot"] == "true"
    assert node["spec"]["taints"] == [
        {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
    ]


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("pools: [", "nodes.yaml"),
        ("[]", "nodes.yaml: pools"),
        ("pools: []", "nodes.yaml: pools"),
        ("pools: [{name: a, count: 1}]\nextra: 1", "nodes.yaml: extra"),
        ("pools: [{count: 1}]", "nodes.yaml: pools[0].name"),
        ("pools: [{name: Big_Pool, count: 1}]", "nodes.yaml: pools[0].name"),
        ("pools: [{name: a, count: 0}]", "nodes.yaml: pools[0].count"),
        ("pools: [{name: a, count: two}]", "nodes.yaml: pools[0].count"),
        ("pools: [{name: a, count: 1, gpus: 2}]", "nodes.yaml: pools[0].gpus"),
        ("pools: [{name: a, count: 1}, {name: a, count: 1}]", "nodes.yaml: pools[1].name"),
        ("pools: [{name: a, count: 1, cpu: lots}]", "nodes.yaml: pools[0].cpu"),
        ("pools: [{name: a, count: 1, memory: 1 TB}]", "nodes.yaml: pools[0].memory"),
        (
            "pools: [{name: a, count: 1, gpu: {product: NVIDIA-L4, count: eight, memoryMiB: 1}}]",
            "nodes.yaml: pools[0].gpu.count",
        ),
        (
            "pools: [{name: a, count: 1, gpu: {product: NVIDIA L4, count: 1, memoryMiB: 1}}]",
            "nodes.yaml: pools[0].gpu.product",
        ),
        (
            "pools: [{name: a, count: 1, gpu: {product: NVIDIA-L4, count: 1}}]",
            "nodes.yaml: pools[0].gpu.memoryMiB",
        ),
        (
            "pools: [{name: a, count: 1, gpu: {product: X, count: 1, memoryMiB: 1, vram: 2}}]",
            "nodes.yaml: pools[0].gpu.vram",
        ),
        ("pools: [{name: a, count: 1, taints: [{key: k, effect: Never}]}]",
         "nodes.yaml: pools[0].taints[0].effect"),
        ("pools: [{name: a, count: 5000}]", "nodes.yaml: pools"),
    ],
)
def test_malformed_file_names_the_field(text: str, field: str) -> None:
    with pytest.raises(SpecError) as err:
        nodes.parse_pools(text)
    assert err.value.field == field
    assert str(err.value).startswith(f"{field}: ")


def test_missing_file_is_a_spec_error(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="cannot read the node-pool file"):
        nodes.load_pools(tmp_path / "absent.yaml")


def test_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "pools.yaml"
    path.write_text("pools: [{name: a, count: -1}]")
    with pytest.raises(SpecError, match=r"^pools\.yaml: pools\[0\]\.count: must be an integer"):
        nodes.load_pools(path)
