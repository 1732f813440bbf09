"""Sizing data types shared by the sizer, the renderers, the planner and the operator (pure).

``Inventory`` is what a cluster offers (from Node labels when connected, from a file for
``kubellm plan``); ``SizingResult`` is the decision with its memory breakdown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kubellm.api.v1alpha1 import SizingStatus

if TYPE_CHECKING:
    from kubellm.sizing.catalog import GpuCatalog


@dataclass(frozen=True)
class GpuType:
    """One GPU model from the catalogue (``data/gpus.yaml``)."""

    product: str  # canonical nvidia.com/gpu.product, e.g. NVIDIA-H100-80GB-HBM3
    memory_gib: float  # physical memory
    compute_capability: tuple[int, int]  # (8, 9) Ada, (9, 0) Hopper, (8, 0) Ampere, (7, 5) Turing
    aliases: tuple[str, ...] = ()  # short names users may write: h100, l4, a100-80gb
    products: tuple[str, ...] = ()  # other label spellings that mean this GPU
    relative_cost: float = 1.0  # to order equally small options (cheaper first)
    source: str = ""


@dataclass(frozen=True)
class NodePool:
    """Identical GPU nodes: ``nodes`` nodes with ``gpus_per_node`` GPUs of ``gpu_product`` each.

    ``gpu_product`` is the GPU Feature Discovery label value (nvidia.com/gpu.product).
    ``gpu_memory_mib`` is nvidia.com/gpu.memory when the node reports it (else the catalogue's).
    ``free_gpus_per_node`` lists, per node, the GPUs not yet requested by running pods
    (None when unknown: treated as all free).
    """

    gpu_product: str
    gpus_per_node: int
    nodes: int = 1
    gpu_memory_mib: int | None = None
    free_gpus_per_node: tuple[int, ...] | None = None
    node_names: tuple[str, ...] = ()
    # The node label that names the GPU (for node selectors): GFD's product label, or a cloud
    # label when GFD is absent (cloud.google.com/gke-accelerator,
    # karpenter.k8s.aws/instance-gpu-name).
    label_key: str = "nvidia.com/gpu.product"


@dataclass(frozen=True)
class Inventory:
    pools: tuple[NodePool, ...] = ()
    source: str = "catalogue"  # catalogue | file:<path> | cluster
    notes: tuple[str, ...] = ()  # nodes skipped and why (cordoned, NotReady, -SHARED, unknown GPU)
    # the catalogue its GPU products are read in (None: the built-in one; --gpu-catalog adds)
    gpus: GpuCatalog | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Quant:
    """The effective quantization of a deployment (after resolving ``auto``)."""

    method: str  # none | fp8 | awq | gptq | gguf | bitsandbytes | compressed-tensors | mxfp4
    bits_per_weight: float  # average over quantized layers, for sizing without a checkpoint
    from_checkpoint: bool  # True: the checkpoint is already quantized (runtime detects it)
    gguf_type: str | None = None  # Q4_K_M, ... for GGUF


@dataclass(frozen=True)
class SizingResult:
    """The GPU decision for one replica, with the breakdown (GiB per GPU)."""

    fits: bool
    quant: Quant
    gpu_type: str | None = None  # nvidia.com/gpu.product
    gpus_per_replica: int | None = None
    tensor_parallel_size: int | None = None
    pipeline_parallel_size: int | None = None
    max_model_len: int | None = None
    concurrency: int = 1
    kv_cache_dtype: str = "auto"  # auto | fp8
    weights_gib: float | None = None
    kv_cache_gib: float | None = None
    overhead_gib: float | None = None
    per_gpu_gib: float | None = None
    gpu_memory_gib: float | None = None  # usable per GPU = memory x utilization
    memory_utilization: float = 0.9
    total_weight_bytes: int | None = None
    message: str = ""
    considered: tuple[str, ...] = field(default=())  # one line per option tried, for `plan`
    nodes_per_replica: int | None = None  # > 1: pipeline stages on several nodes (multi-node)
    reason: str | None = None  # when fits is False: DoesNotFit | Unsupported | GpusBusy
    gpu_label_key: str = "nvidia.com/gpu.product"  # the node label whose value is gpu_type

    def to_status(self) -> SizingStatus:
        return SizingStatus(
            fits=self.fits,
            gpu_type=self.gpu_type,
            gpus_per_replica=self.gpus_per_replica,
            tensor_parallel_size=self.tensor_parallel_size,
            pipeline_parallel_size=self.pipeline_parallel_size,
            max_model_len=self.max_model_len,
            concurrency=self.concurrency,
            quantization=self.quant.method,
            weights_gi_b=self.weights_gib,
            kv_cache_gi_b=self.kv_cache_gib,
            overhead_gi_b=self.overhead_gib,
            per_gpu_gi_b=self.per_gpu_gib,
            gpu_memory_gi_b=self.gpu_memory_gib,
            message=self.message,
        )
