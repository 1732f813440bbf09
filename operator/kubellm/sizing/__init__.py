"""GPU sizing (pure, data-driven): weights + KV cache + overhead against what the cluster offers.

Modules: ``catalog`` (data/gpus.yaml, kernel support), ``quant`` (quantization resolution and
weight bytes), ``memory`` (KV per token, named constants), ``inventory`` (Node labels / file /
catalogue), ``commitments`` (GPUs promised to deployments but not yet held by bound pods),
``sizer`` (the search: type, count, tp x pp, maxModelLen), ``types`` (shared data).
"""

from kubellm.sizing.catalog import gpu_supports, load_gpu_catalog, lookup_gpu
from kubellm.sizing.inventory import default_inventory, inventory_from_file, inventory_from_nodes
from kubellm.sizing.memory import kv_bytes_per_token
from kubellm.sizing.quant import resolve_quant
from kubellm.sizing.sizer import size
from kubellm.sizing.types import GpuType, Inventory, NodePool, Quant, SizingResult

__all__ = [
    "GpuType",
    "Inventory",
    "NodePool",
    "Quant",
    "SizingResult",
    "default_inventory",
    "gpu_supports",
    "inventory_from_file",
    "inventory_from_nodes",
    "kv_bytes_per_token",
    "load_gpu_catalog",
    "lookup_gpu",
    "resolve_quant",
    "size",
]
