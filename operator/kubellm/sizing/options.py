"""The configurations the sizer considers, and the arithmetic of each (pure).

:func:`candidate_pools` turns an inventory into pools with their GPU type and memory;
:func:`options_for` lists one pool's (tensor parallel, pipeline parallel) shapes for a model;
:func:`place` says whether replicas of a shape fit the free GPUs and on how many nodes;
:func:`evaluate` computes weights, KV cache and overhead per GPU against the memory the runtime
really fills, and the longest maxModelLen that fits. :mod:`kubellm.sizing.sizer` searches these
in order and explains the choice or the refusal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from kubellm.facts import Architecture
from kubellm.runtimes.catalog import runtime_info
from kubellm.sizing import memory as mem
from kubellm.sizing.catalog import is_mig, lookup_gpu
from kubellm.sizing.types import GpuType, Inventory, NodePool, Quant

TP_SIZES = (1, 2, 4, 8)


@dataclass(frozen=True)
class Pool:
    pool: NodePool
    gpu: GpuType
    memory_gib: float
    mig: bool

    @property
    def free(self) -> tuple[int, ...]:
        p = self.pool
        if p.free_gpus_per_node is not None:
            return p.free_gpus_per_node
        return (p.gpus_per_node,) * p.nodes


@dataclass(frozen=True)
class Option:
    pool: Pool
    tp: int
    pp: int

    @property
    def gpus(self) -> int:
        return self.tp * self.pp

    def key(self) -> tuple[int, int, float, int, str]:
        return (
            self.gpus,
            round(self.pool.memory_gib),
            self.pool.gpu.relative_cost,
            -self.tp,
            self.pool.pool.gpu_product,
        )

    def label(self) -> str:
        par = f"tp{self.tp}" + (f" x pp{self.pp}" if self.pp > 1 else "")
        return f"{self.gpus} x {self.pool.pool.gpu_product} ({par})"


@dataclass(frozen=True)
class Evaluation:
    option: Option
    fits_memory: bool
    placeable: bool
    nodes: int
    max_len: int
    weights_gib: float
    kv_gib: float
    overhead_gib: float
    usable_gib: float
    free_for_kv_gib: float

    @property
    def per_gpu_gib(self) -> float:
        return self.weights_gib + self.kv_gib + self.overhead_gib


def valid_tp(arch: Architecture | None, tp: int) -> bool:
    if arch is None or not arch.num_attention_heads:
        return True
    if arch.num_attention_heads % tp:
        return False
    kv = 1 if arch.is_mla else (arch.effective_kv_heads or arch.num_attention_heads)
    if arch.is_mla:
        return True
    return (kv % tp == 0) if kv >= tp else (tp % kv == 0)


def model_tps(arch: Architecture | None) -> list[int]:
    return [t for t in TP_SIZES if valid_tp(arch, t)]


def candidate_pools(inventory: Inventory, wanted: GpuType | None) -> tuple[list[Pool], list[str]]:
    pools: list[Pool] = []
    notes: list[str] = []
    for p in inventory.pools:
        gpu = lookup_gpu(p.gpu_product, inventory.gpus)
        mig = is_mig(p.gpu_product)
        if gpu is None:
            if not p.gpu_memory_mib:
                notes.append(f"{p.gpu_product}: not in the GPU catalogue, skipped")
                continue
            # Unknown GPU with a memory label: assume the oldest generation the kernels allow.
            gpu = GpuType(product=p.gpu_product, memory_gib=p.gpu_memory_mib / 1024,
                          compute_capability=(7, 0))  # fmt: skip
        if wanted is not None and gpu.product != wanted.product:
            continue
        memory = (p.gpu_memory_mib / 1024) if p.gpu_memory_mib else gpu.memory_gib
        pools.append(Pool(pool=p, gpu=gpu, memory_gib=round(memory, 2), mig=mig))
    return pools, notes


def options_for(
    pool: Pool, arch: Architecture | None, count: int | None, runtime: str
) -> list[Option]:
    gpn = pool.pool.gpus_per_node
    tps = [t for t in model_tps(arch) if t <= gpn]
    if pool.mig:
        tps = [1]
    if not tps:
        return []
    pp_ok = not runtime_info(runtime).no_pipeline_parallel and not pool.mig
    capacity = sum(pool.pool.gpus_per_node for _ in range(pool.pool.nodes))
    layers = arch.num_hidden_layers if arch and arch.num_hidden_layers else 10**6
    if count is not None:
        divisors = [t for t in tps if count % t == 0]
        if not divisors:
            return []
        tp = max(divisors)
        pp = count // tp
        if (pp > 1 and not pp_ok) or count > capacity or pp > layers:
            return []
        return [Option(pool, tp, pp)]
    out = [Option(pool, t, 1) for t in tps]
    if pp_ok:
        tmax = max(tps)
        stages = sum(n // tmax for n in (gpn,) * pool.pool.nodes)
        out += [Option(pool, tmax, pp) for pp in range(2, min(stages, layers) + 1)]
    return out


def place(option: Option, replicas: int = 1) -> tuple[bool, int]:
    """Whether ``replicas`` replicas of pp stages of tp GPUs fit the free GPUs, and on how many
    nodes one replica runs (fewest).

    A replica that fits one node (tp x pp <= GPUs per node) is one pod: it needs all its GPUs on
    one node, so the replicas are whole pods packed per node. A multi-node replica is packed as
    stages of tp GPUs (replicas x pp of them) across the nodes.
    """
    free = sorted(option.pool.free, reverse=True)
    gpn = option.pool.pool.gpus_per_node
    if option.gpus <= gpn:
        return sum(f // option.gpus for f in free) >= replicas, 1
    per_node = max(1, gpn // option.tp)
    nodes = math.ceil(option.pp / per_node)
    stages_left = option.pp * replicas
    for count, f in enumerate(free, start=1):
        take = min(f // option.tp, stages_left)
        if take <= 0:
            break
        stages_left -= take
        if stages_left == 0:
            return True, (count if replicas == 1 else nodes)
    return stages_left <= 0, nodes


@dataclass(frozen=True)
class SizingModel:
    name: str
    quant: Quant
    quant_label: str
    weight_bytes: int
    arch: Architecture | None
    kv_known: bool
    cap: int
    explicit_len: int | None
    concurrency: int
    kv_dtype: str
    utilization: float
    replicas: int = 1  # replicas that must fit the free GPUs together
    multiplier: float = 1.0  # share of the utilization the runtime really fills (TGI 0.90)
    multiplier_env: str | None = None  # its name, for messages (TGI_WIGGLE_ROOM)

    @property
    def fraction(self) -> float:
        """The share of each GPU's memory weights, overhead and KV must fit in."""
        return self.utilization * self.multiplier

    @property
    def fraction_text(self) -> str:
        """``0.9`` (vLLM), ``0.9 x 0.9 TGI_WIGGLE_ROOM`` (TGI)."""
        if self.multiplier == 1.0:
            return f"{self.utilization}"
        return f"{self.utilization} x {self.multiplier:g} {self.multiplier_env or 'engine share'}"


def evaluate(model: SizingModel, option: Option) -> Evaluation:
    arch = model.arch
    layers = arch.num_hidden_layers if arch else None
    weights = mem.weights_per_gpu_gib(model.weight_bytes, option.tp, option.pp, layers)
    overhead = mem.overhead_gib(weights)
    usable = option.pool.memory_gib * model.fraction
    room = usable - weights - overhead
    placeable, nodes = place(option, model.replicas)
    if not model.kv_known or arch is None:
        length = model.explicit_len or 0
        reserve = usable * mem.UNKNOWN_ARCH_KV_RESERVE
        return Evaluation(option, room >= reserve, placeable, nodes, length, weights, 0.0, overhead,
                     usable, room)  # fmt: skip
    per_token = mem.kv_bytes_per_token(arch, model.kv_dtype, tp=option.tp, pp=option.pp)
    if model.explicit_len is not None:
        length = model.explicit_len
        fits = room * mem.GIB >= per_token * length * model.concurrency
    else:
        tokens = int(max(room, 0.0) * mem.GIB // (per_token * model.concurrency))
        length = mem.auto_max_len(tokens, model.cap)
        fits = length >= mem.min_auto_len(model.cap)
    kv = (
        per_token * length * model.concurrency / mem.GIB
        if fits
        else (per_token * max(length, mem.min_auto_len(model.cap)) * model.concurrency / mem.GIB)
    )
    return Evaluation(option, fits, placeable, nodes, length, weights, kv, overhead, usable, room)


def all_free(option: Option) -> Option:
    """The same option on its pool with every GPU free (capacity, not current use)."""
    pool = replace(option.pool, pool=replace(option.pool.pool, free_gpus_per_node=None))
    return replace(option, pool=pool)
