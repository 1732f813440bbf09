"""GPU memory arithmetic: KV cache per token, per-GPU weights and overhead (pure).

Every constant is named with its rationale and source. The per-GPU check (sizing.md) is::

    weights  = 1.02 x W / tp x (layers on this pipeline stage / layers)
    overhead = 2.3 GiB + 0.05 x weights
    kv       = kv_bytes_per_token_per_gpu(tp, pp) x maxModelLen x concurrency
    fits  <=>  weights + overhead + kv <= GPU memory x gpu_memory_utilization

which mirrors vLLM's profiler (vllm/utils/mem_utils.py ``MemoryProfilingResult``, v1
``gpu_worker.determine_available_memory``): requested = total x gpu_memory_utilization, KV budget
= requested - (weights + torch peak activations + non-torch memory). vLLM refuses to start
unless one sequence of maxModelLen fits that budget; kubellm asks for concurrency x maxModelLen.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from kubellm.facts import Architecture

GIB = 1024**3

#: Weights take ~2 % more GPU memory than their safetensors bytes once loaded by vLLM (kaito
#: pkg/workspace/estimator/nodesestimator/estimator.go ``weightExpansionFactor``).
WEIGHT_EXPANSION_FACTOR = 1.02
#: Model-independent per-GPU overhead: CUDA context, NCCL buffers and other non-torch memory
#: (<= 0.6 GiB) plus baseline activations and CUDA graphs (<= 1.7 GiB), measured by kaito on vLLM
#: 0.10.1 (``baseOverheadGiB``).
BASE_OVERHEAD_GIB = 2.3
#: Peak activations and CUDA-graph memory grow with the model and shard like its weights: kaito
#: adds 5 % of the per-GPU weight share (``overheadWeightFactor``).
OVERHEAD_WEIGHT_FACTOR = 0.05
#: Auto maxModelLen is rounded down to a multiple of this (a multiple of vLLM's 16-token KV block
#: and friendly to the usual 2^n context sizes).
MAX_LEN_STEP = 256
#: Auto maxModelLen never goes below this (or below max_position_embeddings when that is
#: smaller): a configuration that cannot hold it is skipped for the next larger one.
MIN_AUTO_MAX_LEN = 2048
#: Context cap when the config does not say max_position_embeddings (conservative).
FALLBACK_MAX_POSITION = 4096
#: Architecture unknown (no config.json): the KV cache cannot be computed, so at least this share
#: of the usable memory must stay free after weights and overhead (and maxModelLen must be given).
UNKNOWN_ARCH_KV_RESERVE = 0.10


def kv_heads_from_config(config: Mapping[str, Any]) -> int | None:
    """KV heads per sizing.md: ``num_key_value_heads``, else ``num_kv_heads`` (Falcon), else 1 if
    ``multi_query``, else ``num_attention_heads``."""
    for key in ("num_key_value_heads", "num_kv_heads", "n_head_kv"):
        value = config.get(key)
        if isinstance(value, int) and value > 0:
            return value
    if config.get("multi_query"):
        return 1
    heads = config.get("num_attention_heads", config.get("n_head"))
    return heads if isinstance(heads, int) and heads > 0 else None


def kv_dtype_bytes(kv_cache_dtype: str) -> int:
    """fp8 KV cache: 1 byte per element; auto: the served model dtype (16-bit)."""
    return 1 if kv_cache_dtype.startswith("fp8") else 2


def kv_known(arch: Architecture | None) -> bool:
    if arch is None or not arch.num_hidden_layers:
        return False
    if arch.is_mla:
        return True
    return bool(arch.effective_kv_heads and arch.effective_head_dim)


def kv_bytes_per_token(
    arch: Architecture, kv_cache_dtype: str = "auto", *, tp: int = 1, pp: int = 1
) -> int:
    """KV-cache bytes one token takes on one GPU (tp=pp=1: the whole model's per-token bytes).

    Standard/GQA/MQA: 2 x layers x kv_heads x head_dim x bytes. MLA (DeepSeek V2/V3/R1):
    layers x (kv_lora_rank + qk_rope_head_dim) x bytes, replicated on every TP rank (vLLM treats
    it as one KV head). Under tensor parallelism each rank keeps max(1, kv_heads // tp) heads, so
    the cache is replicated once tp > kv_heads. Pipeline stages hold ceil(layers / pp) layers.
    """
    if not kv_known(arch):
        raise ValueError("architecture lacks num_hidden_layers / KV heads / head_dim")
    assert arch.num_hidden_layers is not None
    layers = math.ceil(arch.num_hidden_layers / pp)
    size = kv_dtype_bytes(kv_cache_dtype)
    if arch.is_mla:
        assert arch.kv_lora_rank is not None and arch.qk_rope_head_dim is not None
        return layers * (arch.kv_lora_rank + arch.qk_rope_head_dim) * size
    kv_heads = arch.effective_kv_heads
    head_dim = arch.effective_head_dim
    assert kv_heads is not None and head_dim is not None
    return 2 * layers * max(1, kv_heads // tp) * head_dim * size


def stage_fraction(layers: int | None, pp: int) -> float:
    """Share of the model on the fullest pipeline stage (ceil(layers/pp)/layers; 1/pp unknown)."""
    if pp <= 1:
        return 1.0
    if not layers:
        return 1.0 / pp
    return math.ceil(layers / pp) / layers


def weights_per_gpu_gib(total_weight_bytes: int, tp: int, pp: int, layers: int | None) -> float:
    """Loaded weights on the fullest GPU of a tp x pp replica, GiB."""
    return total_weight_bytes * WEIGHT_EXPANSION_FACTOR / tp * stage_fraction(layers, pp) / GIB


def overhead_gib(weights_gib: float) -> float:
    """Activations, CUDA graphs, CUDA context and NCCL per GPU, GiB."""
    return BASE_OVERHEAD_GIB + OVERHEAD_WEIGHT_FACTOR * weights_gib


def auto_max_len(tokens_that_fit: int, cap: int) -> int:
    """The cap when it fits, else the fitting tokens rounded down to MAX_LEN_STEP."""
    if tokens_that_fit >= cap:
        return cap
    return max(0, tokens_that_fit // MAX_LEN_STEP * MAX_LEN_STEP)


def min_auto_len(cap: int) -> int:
    return min(MIN_AUTO_MAX_LEN, cap)
