"""Node pools of the sandbox: parse a node-pool YAML file and build the simulated Node objects.

A node-pool file (default: ``kubellm/data/sandbox-nodes.yaml``) lists ``pools``; each pool becomes
``count`` Nodes named ``kubellm-<pool>-<i>`` that kwok manages (annotation
``kwok.x-k8s.io/node: fake``). GPU pools carry the labels NVIDIA GPU Feature Discovery sets
(``nvidia.com/gpu.present``, ``.product``, ``.memory`` in MiB, ``.count``, ``.family``) and the
extended resource ``nvidia.com/gpu`` in capacity and allocatable, so the real scheduler places
GPU pods exactly as on a real cluster. Every error names the offending field, e.g.
``nodes.yaml: pools[1].gpu.count: must be an integer >= 1, got 'eight'``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from kubellm.errors import SpecError

KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
KWOK_NODE_ANNOTATION_VALUE = "fake"
POOL_LABEL = "kubellm.io/sandbox-pool"
GPU_RESOURCE = "nvidia.com/gpu"
NODE_PREFIX = "kubellm-"

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,48}[a-z0-9])?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
_TAINT_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")
_POOL_KEYS = frozenset(
    {"name", "count", "gpu", "cpu", "memory", "pods", "ephemeralStorage", "labels", "taints"}
)
_GPU_KEYS = frozenset({"product", "count", "memoryMiB", "family"})
MAX_NODES = 2000


@dataclass(frozen=True)
class GpuSpec:
    product: str
    count: int
    memory_mib: int
    family: str | None = None


@dataclass(frozen=True)
class NodePool:
    name: str
    count: int
    gpu: GpuSpec | None = None
    cpu: str = "128"
    memory: str = "1000Gi"
    pods: str = "1000"
    ephemeral_storage: str = "100Ti"
    labels: dict[str, str] = field(default_factory=dict)
    taints: tuple[dict[str, str], ...] = ()

    def node_names(self) -> list[str]:
        return [f"{NODE_PREFIX}{self.name}-{i}" for i in range(self.count)]


def default_nodes_file() -> Path:
    """The packaged default node-pool file."""
    return Path(str(resources.files("kubellm") / "data" / "sandbox-nodes.yaml"))


def load_pools(path: Path | None = None) -> list[NodePool]:
    """Read and validate a node-pool file (the packaged default when ``path`` is None)."""
    path = path or default_nodes_file()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(str(path), f"cannot read the node-pool file: {exc.strerror}") from exc
    return parse_pools(text, source=path.name)


def parse_pools(text: str, source: str = "nodes.yaml") -> list[NodePool]:
    """Parse node-pool YAML; ``source`` prefixes every field name in errors."""
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise SpecError(source, f"is not valid YAML{where}", "fix the syntax") from exc
    if not isinstance(doc, dict) or "pools" not in doc:
        raise SpecError(
            f"{source}: pools", "missing", "the file must be a mapping with a list 'pools'"
        )
    unknown = sorted(set(doc) - {"pools"})
    if unknown:
        raise SpecError(
            f"{source}: {unknown[0]}", "unknown top-level key", "only 'pools' is allowed"
        )
    raw_pools = doc["pools"]
    if not isinstance(raw_pools, list) or not raw_pools:
        raise SpecError(f"{source}: pools", "must be a non-empty list of pools")
    pools: list[NodePool] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_pools):
        pool = _parse_pool(raw, f"{source}: pools[{index}]")
        if pool.name in seen:
            raise SpecError(f"{source}: pools[{index}].name", f"duplicate pool name {pool.name!r}")
        seen.add(pool.name)
        pools.append(pool)
    total = sum(p.count for p in pools)
    if total > MAX_NODES:
        raise SpecError(f"{source}: pools", f"{total} nodes in total, at most {MAX_NODES} allowed")
    return pools


def _reject_unknown(raw: dict[str, Any], allowed: frozenset[str], where: str) -> None:
    """A SpecError naming the first field of ``raw`` that is not ``allowed``."""
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise SpecError(
            f"{where}.{unknown[0]}", "unknown field", f"allowed: {', '.join(sorted(allowed))}"
        )


def _parse_pool(raw: Any, where: str) -> NodePool:
    if not isinstance(raw, dict):
        raise SpecError(where, "must be a mapping with at least 'name' and 'count'")
    _reject_unknown(raw, _POOL_KEYS, where)
    name = raw.get("name")
    if not isinstance(name, str) or not _DNS_LABEL.match(name):
        raise SpecError(
            f"{where}.name",
            f"must be a lower-case DNS label of at most 50 characters, got {name!r}",
        )
    count = _int(raw.get("count"), f"{where}.count", minimum=1)
    gpu = _parse_gpu(raw["gpu"], f"{where}.gpu") if raw.get("gpu") is not None else None
    labels_raw = raw.get("labels") or {}
    if not isinstance(labels_raw, dict):
        raise SpecError(f"{where}.labels", "must be a mapping of label keys to string values")
    labels: dict[str, str] = {}
    for key, value in labels_raw.items():
        if not isinstance(key, str) or not key or not isinstance(value, str | int | bool):
            raise SpecError(f"{where}.labels", f"invalid label {key!r}: {value!r}")
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if not _LABEL_VALUE.match(text):
            raise SpecError(f"{where}.labels.{key}", f"invalid label value {text!r}")
        labels[key] = text
    return NodePool(
        name=name,
        count=count,
        gpu=gpu,
        cpu=_quantity(raw.get("cpu", NodePool.cpu), f"{where}.cpu"),
        memory=_quantity(raw.get("memory", NodePool.memory), f"{where}.memory"),
        pods=_quantity(raw.get("pods", NodePool.pods), f"{where}.pods"),
        ephemeral_storage=_quantity(
            raw.get("ephemeralStorage", NodePool.ephemeral_storage), f"{where}.ephemeralStorage"
        ),
        labels=labels,
        taints=_parse_taints(raw.get("taints") or [], f"{where}.taints"),
    )


def _parse_gpu(raw: Any, where: str) -> GpuSpec:
    if not isinstance(raw, dict):
        raise SpecError(where, "must be a mapping with product, count and memoryMiB")
    _reject_unknown(raw, _GPU_KEYS, where)
    product = raw.get("product")
    if not isinstance(product, str) or not product or not _LABEL_VALUE.match(product):
        raise SpecError(
            f"{where}.product",
            f"must be the GPU Feature Discovery product label, e.g. NVIDIA-L4, got {product!r}",
            "spaces become hyphens",
        )
    family = raw.get("family")
    if family is not None and (not isinstance(family, str) or not _LABEL_VALUE.match(family)):
        raise SpecError(f"{where}.family", f"must be a label value like 'hopper', got {family!r}")
    return GpuSpec(
        product=product,
        count=_int(raw.get("count"), f"{where}.count", minimum=1),
        memory_mib=_int(raw.get("memoryMiB"), f"{where}.memoryMiB", minimum=1),
        family=family,
    )


def _parse_taints(raw: Any, where: str) -> tuple[dict[str, str], ...]:
    if not isinstance(raw, list):
        raise SpecError(where, "must be a list of {key, value, effect}")
    taints: list[dict[str, str]] = []
    for index, item in enumerate(raw):
        here = f"{where}[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise SpecError(here, "must be a mapping with a string 'key'")
        effect = item.get("effect", "NoSchedule")
        if effect not in _TAINT_EFFECTS:
            raise SpecError(f"{here}.effect", f"must be one of {', '.join(_TAINT_EFFECTS)}")
        taint = {"key": item["key"], "effect": str(effect)}
        if item.get("value") is not None:
            taint["value"] = str(item["value"])
        taints.append(taint)
    return tuple(taints)


def _int(value: Any, where: str, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise SpecError(where, f"must be an integer >= {minimum}, got {value!r}")
    return value


def _quantity(value: Any, where: str) -> str:
    text = str(value) if isinstance(value, int | float) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not _QUANTITY.match(text):
        raise SpecError(
            where, f"must be a Kubernetes quantity such as '64', '512Gi', got {value!r}"
        )
    return text


def gpu_labels(gpu: GpuSpec) -> dict[str, str]:
    """The labels GPU Feature Discovery (and the GPU operator) put on a node with ``gpu``."""
    labels = {
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.product": gpu.product,
        "nvidia.com/gpu.count": str(gpu.count),
        "nvidia.com/gpu.memory": str(gpu.memory_mib),
    }
    if gpu.family:
        labels["nvidia.com/gpu.family"] = gpu.family
    return labels


def node_manifests(pools: list[NodePool]) -> list[dict[str, Any]]:
    """One kwok-managed Node per pool member, with capacity == allocatable."""
    nodes: list[dict[str, Any]] = []
    for pool in pools:
        capacity = {
            "cpu": pool.cpu,
            "memory": pool.memory,
            "pods": pool.pods,
            "ephemeral-storage": pool.ephemeral_storage,
        }
        if pool.gpu:
            capacity[GPU_RESOURCE] = str(pool.gpu.count)
        for name in pool.node_names():
            labels = {
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/os": "linux",
                "kubernetes.io/hostname": name,
                "type": "kwok",
                POOL_LABEL: pool.name,
                **(gpu_labels(pool.gpu) if pool.gpu else {}),
                **pool.labels,
            }
            spec: dict[str, Any] = {"providerID": f"kwok://{name}"}
            if pool.taints:
                spec["taints"] = [dict(t) for t in pool.taints]
            nodes.append(
                {
                    "apiVersion": "v1",
                    "kind": "Node",
                    "metadata": {
                        "name": name,
                        "annotations": {KWOK_NODE_ANNOTATION: KWOK_NODE_ANNOTATION_VALUE},
                        "labels": dict(sorted(labels.items())),
                    },
                    "spec": spec,
                    "status": {"capacity": dict(capacity), "allocatable": dict(capacity)},
                }
            )
    return nodes
