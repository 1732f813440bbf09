"""What GPUs a cluster offers: from Node/Pod objects, from a file, or the whole catalogue (pure).

``inventory_from_nodes`` reads Node and Pod objects as plain dicts, exactly as the Kubernetes API
returns them (camelCase keys). Rules:

- The GPU is named by ``nvidia.com/gpu.product`` (GPU Feature Discovery), else by the cloud labels
  ``cloud.google.com/gke-accelerator`` or ``karpenter.k8s.aws/instance-gpu-name``; the pool's
  ``label_key`` records which label, for node selectors. Capacity is ``status.allocatable``
  ``nvidia.com/gpu``; memory is ``nvidia.com/gpu.memory`` (MiB) when labelled.
- Skipped, with a note in ``Inventory.notes``: cordoned (``spec.unschedulable``) and NotReady nodes,
  nodes without allocatable GPUs, GPUs the catalogue does not know (without a memory label), and
  time-sliced ``-SHARED`` products: their memory is not partitioned between the pods that share
  one GPU, so a runtime that reserves 90 % of it would starve (or be starved by) its neighbours.
- MIG (``-MIG-<g>g.<gb>gb``, single strategy): each slice is an ``nvidia.com/gpu`` of the slice's
  memory (label, else the profile name). The sizer uses slices one at a time (no tensor parallel
  across MIG instances: NCCL does not span them).
- Free GPUs per node = allocatable minus the GPU requests of non-terminated pods bound to the node
  (requests, else limits; init containers per Kubernetes' effective-request rule). The operator
  should leave its own deployment's pods out of ``pods``, or a re-size would see its own GPUs busy.
  ``reserved`` (per node) subtracts GPUs promised but not yet held by a bound pod
  (``kubellm.sizing.commitments``).
- Identical nodes (same label, product, GPUs per node and memory) form one pool.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from kubellm.errors import SpecError
from kubellm.naming import selector_labels
from kubellm.sizing.catalog import (
    GpuCatalog,
    builtin_gpu_catalog,
    is_mig,
    is_shared,
    known_gpu_names,
    lookup_gpu,
    mig_slice_memory_mib,
)
from kubellm.sizing.types import Inventory, NodePool

GPU_RESOURCE = "nvidia.com/gpu"
PRODUCT_LABEL = "nvidia.com/gpu.product"
MEMORY_LABEL = "nvidia.com/gpu.memory"
CLOUD_LABELS = ("cloud.google.com/gke-accelerator", "karpenter.k8s.aws/instance-gpu-name")
DEFAULT_GPUS_PER_NODE = 8


def _int(value: Any) -> int:
    """Quantities of whole GPUs: 8, "8"; anything else counts as 0."""
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return 0


def _get(obj: Mapping[str, Any], *path: str) -> Any:
    cur: Any = obj
    for key in path:
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(key)
    return cur


def _ready(node: Mapping[str, Any]) -> bool:
    for cond in _get(node, "status", "conditions") or ():
        if isinstance(cond, Mapping) and cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def _container_gpus(container: Mapping[str, Any]) -> int:
    resources = container.get("resources") or {}
    requests = resources.get("requests") or {}
    limits = resources.get("limits") or {}
    return _int(requests.get(GPU_RESOURCE, limits.get(GPU_RESOURCE, 0)))


def pod_gpu_request(pod: Mapping[str, Any]) -> int:
    """Effective nvidia.com/gpu request: max(sum of containers, largest init container)."""
    spec = pod.get("spec") or {}
    main = sum(_container_gpus(c) for c in spec.get("containers") or ())
    init = max((_container_gpus(c) for c in spec.get("initContainers") or ()), default=0)
    return max(main, init)


def _used_by_node(pods: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    used: dict[str, int] = {}
    for pod in pods:
        node = _get(pod, "spec", "nodeName")
        if not node or _get(pod, "status", "phase") in ("Succeeded", "Failed"):
            continue
        used[node] = used.get(node, 0) + pod_gpu_request(pod)
    return used


SERVING_LABEL_KEYS = frozenset(selector_labels("x"))  # the keys a serving pod's selector uses


def node_view(node: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a Node that this module and ``commitments`` read (name, labels, cordon,
    allocatable GPUs, Ready): what a watch store keeps instead of the whole object (~5 % of it).
    Every node is kept, with or without GPUs, so counts of "nodes skipped" stay the same."""
    meta: Mapping[str, Any] = node.get("metadata") or {}
    gpus = (_get(node, "status", "allocatable") or {}).get(GPU_RESOURCE)
    ready = [
        {"type": "Ready", "status": c.get("status")}
        for c in _get(node, "status", "conditions") or ()
        if isinstance(c, Mapping) and c.get("type") == "Ready"
    ]
    view: dict[str, Any] = {
        "metadata": {"name": meta.get("name"), "labels": dict(meta.get("labels") or {})},
        "status": {"allocatable": {GPU_RESOURCE: gpus} if gpus is not None else {},
                   "conditions": ready[:1]},
    }
    if _get(node, "spec", "unschedulable"):
        view["spec"] = {"unschedulable": True}
    return view


def pod_view(pod: Mapping[str, Any]) -> dict[str, Any] | None:
    """The fields of a Pod that GPU accounting reads (namespace, name, labels, deletion, node,
    effective GPU request, phase), or None for a pod that neither holds a GPU nor may count as
    a replica of a kubellm serving workload (``commitments`` counts bound pods by their
    selector labels): it requests no GPU and lacks those labels, or it has terminated. Both
    readers skip such pods, so the views answer exactly as the whole objects."""
    gpus = pod_gpu_request(pod)
    meta: Mapping[str, Any] = pod.get("metadata") or {}
    if _get(pod, "status", "phase") in ("Succeeded", "Failed") or (
            gpus <= 0 and not (meta.get("labels") or {}).keys() >= SERVING_LABEL_KEYS):
        return None
    view_meta: dict[str, Any] = {"name": meta.get("name"), "namespace": meta.get("namespace"),
                                 "labels": dict(meta.get("labels") or {})}
    if meta.get("deletionTimestamp"):
        view_meta["deletionTimestamp"] = meta["deletionTimestamp"]
    spec: dict[str, Any] = {"containers": [{"resources": {"requests": {GPU_RESOURCE: gpus}}}]}
    if _get(pod, "spec", "nodeName"):
        spec["nodeName"] = _get(pod, "spec", "nodeName")
    return {"metadata": view_meta, "spec": spec,
            "status": {"phase": _get(pod, "status", "phase")}}


def _offered(node: Mapping[str, Any] | None) -> int:
    if node is None or _get(node, "spec", "unschedulable") or not _ready(node):
        return 0
    return _int((_get(node, "status", "allocatable") or {}).get(GPU_RESOURCE, 0))


def gpus_freed(kind: str, old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> bool:
    """Whether a change of a Node or Pod view (``node_view``/``pod_view``; None: absent) can let
    a deployment waiting for GPUs fit: a bound GPU pod gone or terminated, or a node offering
    more schedulable GPUs than before (added, Ready again, uncordoned, more allocatable)."""
    if kind == "Pod":
        return old is not None and new is None and bool(_get(old, "spec", "nodeName"))
    return kind == "Node" and _offered(new) > _offered(old)


def inventory_from_nodes(
    nodes: Sequence[Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]] = (),
    reserved: Mapping[str, int] | None = None,
    catalog: GpuCatalog | None = None,
) -> Inventory:
    """Group schedulable, Ready GPU nodes into pools with their free GPUs (see module docstring);
    products are read in ``catalog`` (default: the built-in catalogue)."""
    used = dict(_used_by_node(pods))
    for node_name, gpus_reserved in (reserved or {}).items():
        used[node_name] = used.get(node_name, 0) + gpus_reserved
    notes: list[str] = []
    groups: dict[tuple[str, str, int, int | None], list[tuple[str, int]]] = {}
    for node in sorted(nodes, key=lambda n: str(_get(n, "metadata", "name") or "")):
        name = str(_get(node, "metadata", "name") or "?")
        labels: Mapping[str, Any] = _get(node, "metadata", "labels") or {}
        gpus = _int((_get(node, "status", "allocatable") or {}).get(GPU_RESOURCE, 0))
        if gpus <= 0:
            continue
        label_key, product = PRODUCT_LABEL, labels.get(PRODUCT_LABEL)
        if not product:
            for key in CLOUD_LABELS:
                if labels.get(key):
                    label_key, product = key, labels[key]
                    break
        if not product:
            notes.append(f"node {name}: {gpus} GPUs without a {PRODUCT_LABEL} label: skipped")
            continue
        product = str(product)
        if _get(node, "spec", "unschedulable"):
            notes.append(f"node {name} ({product}): cordoned, skipped")
            continue
        if not _ready(node):
            notes.append(f"node {name} ({product}): NotReady, skipped")
            continue
        if is_shared(product):
            notes.append(
                f"node {name} ({product}): time-sliced GPUs share memory between pods, skipped"
            )
            continue
        memory = _int(labels.get(MEMORY_LABEL)) or None
        if is_mig(product) and memory is None:
            memory = mig_slice_memory_mib(product)
        if lookup_gpu(product, catalog) is None and memory is None:
            notes.append(f"node {name}: GPU {product} is not in the catalogue, skipped")
            continue
        free = max(0, gpus - used.get(name, 0))
        groups.setdefault((label_key, product, gpus, memory), []).append((name, free))
    pools = tuple(
        NodePool(
            gpu_product=product,
            gpus_per_node=gpus,
            nodes=len(members),
            gpu_memory_mib=memory,
            free_gpus_per_node=tuple(free for _, free in members),
            node_names=tuple(n for n, _ in members),
            label_key=label_key,
        )
        for (label_key, product, gpus, memory), members in sorted(
            groups.items(), key=lambda kv: (kv[0][1], kv[0][2], kv[0][3] or 0, kv[0][0])
        )
    )
    return Inventory(pools=pools, source="cluster", notes=tuple(notes), gpus=catalog)


def _positive_int(value: Any, field: str, fix: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise SpecError(field, f"must be a positive integer, got {value!r}", fix)
    return value


def inventory_from_file(data: Any, source: str, catalog: GpuCatalog | None = None) -> Inventory:
    """Pools from a plan inventory file: a list (or ``{pools: [...]}``) of entries
    ``{gpuProduct, gpusPerNode, nodes, gpuMemoryMiB?, freeGpusPerNode?}``.

    ``source`` names the file in errors (``inventory.yaml[2].gpusPerNode``); a ``file:`` prefix
    is accepted and not doubled in ``Inventory.source``.
    """
    source = source.removeprefix("file:")
    if isinstance(data, Mapping) and "pools" in data:
        data = data["pools"]
    if not isinstance(data, list):
        raise SpecError(
            source,
            "an inventory file holds a list of node pools",
            "write e.g. [{gpuProduct: NVIDIA-L4, gpusPerNode: 4, nodes: 2}]",
        )
    pools: list[NodePool] = []
    for i, entry in enumerate(data):
        where = f"{source}[{i}]"
        if not isinstance(entry, Mapping):
            raise SpecError(where, "each entry must be a mapping", "give gpuProduct, gpusPerNode")
        unknown = sorted(set(entry) - {
            "gpuProduct", "gpusPerNode", "nodes", "gpuMemoryMiB", "freeGpusPerNode"
        })  # fmt: skip
        if unknown:
            raise SpecError(
                f"{where}.{unknown[0]}",
                "unknown field",
                "known fields: gpuProduct, gpusPerNode, nodes, gpuMemoryMiB, freeGpusPerNode",
            )
        product = entry.get("gpuProduct")
        if not isinstance(product, str) or not product:
            raise SpecError(
                f"{where}.gpuProduct", "missing", "a product label such as NVIDIA-L4, or an alias"
            )
        memory = entry.get("gpuMemoryMiB")
        if memory is not None:
            memory = _positive_int(memory, f"{where}.gpuMemoryMiB", "memory per GPU in MiB")
        gpu = lookup_gpu(product, catalog)
        if gpu is None and memory is None:
            raise SpecError(
                f"{where}.gpuProduct",
                f"unknown GPU {product!r}",
                "use one of " + ", ".join(known_gpu_names(catalog)) + ", or give gpuMemoryMiB",
            )
        label = product
        if gpu is not None and product.lower() in (a.lower() for a in gpu.aliases):
            label = gpu.product  # an alias in a file means the GPU's canonical label
        per_node = _positive_int(
            entry.get("gpusPerNode"), f"{where}.gpusPerNode", "GPUs per node, e.g. 8"
        )
        count = _positive_int(entry.get("nodes", 1), f"{where}.nodes", "number of nodes, e.g. 1")
        free_raw = entry.get("freeGpusPerNode")
        free: tuple[int, ...] | None = None
        if free_raw is not None:
            if (
                not isinstance(free_raw, list)
                or len(free_raw) != count
                or not all(isinstance(f, int) and 0 <= f <= per_node for f in free_raw)
            ):
                raise SpecError(
                    f"{where}.freeGpusPerNode",
                    f"must list {count} integers between 0 and {per_node}",
                    "one entry per node, or leave it out (all free)",
                )
            free = tuple(free_raw)
        pools.append(
            NodePool(
                gpu_product=label,
                gpus_per_node=per_node,
                nodes=count,
                gpu_memory_mib=memory,
                free_gpus_per_node=free,
            )
        )
    return Inventory(pools=tuple(pools), source=f"file:{source}", gpus=catalog)


def default_inventory(catalog: GpuCatalog | None = None) -> Inventory:
    """The catalogue (default: the built-in one): one node of 8 GPUs of each type (for
    `kubellm plan` offline)."""
    return Inventory(
        pools=tuple(
            NodePool(gpu_product=g.product, gpus_per_node=DEFAULT_GPUS_PER_NODE, nodes=1)
            for g in (catalog or builtin_gpu_catalog()).gpus
        ),
        source="catalogue",
        gpus=catalog,
    )
