"""The GPU sizer: model facts + spec + inventory -> SizingResult (pure, deterministic).

Search order (auto): fewest GPUs first, then the smallest memory class (GiB rounded), then the
lowest relative cost, then the larger tensor-parallel size; the first configuration that fits
wins. Configurations of a node pool:

- tensor parallel tp in {1, 2, 4, 8}, at most the node's GPUs, dividing the attention heads, and
  with the KV heads and tp dividing one another (vLLM QKVParallelLinear; TGI num_shard too);
- pipeline parallel only once tp is the largest valid for the node: pp stages of tp GPUs, packed
  gpus_per_node // tp stages per node, so pp > stages-per-node means a multi-node replica
  (``nodes_per_replica``). TGI has no pipeline parallelism; MIG slices are used one at a time.
- an explicit ``spec.gpu.count`` must be a valid tp or a multiple of the largest valid tp
  (SpecError otherwise); on each pool it is split as the largest valid tp that divides it.

maxModelLen auto: the largest that fits concurrency sequences, rounded down to MAX_LEN_STEP,
capped at max_position_embeddings; a configuration that cannot hold MIN_AUTO_MAX_LEN (or the cap
when smaller) is skipped. An explicit maxModelLen is checked and refused with numbers.

Runtime differences (``runtime``): tgi has no pipeline parallelism and its own kernel table
(fp8 and AWQ need newer GPUs); otherwise the same arithmetic on the memory the engine really
fills: GPU memory x memoryUtilization x the runtime's effective multiplier
(``runtimes.catalog.memory_multiplier``: vLLM 1.0; TGI sizes its KV cache to
--cuda-memory-fraction x TGI_WIGGLE_ROOM 0.90, so 0.9 leaves 19 % of the GPU unused, not 10 %).

Unknown architecture (no config.json): weights are sized, the KV cache cannot be: maxModelLen must
be explicit and UNKNOWN_ARCH_KV_RESERVE of usable memory is kept free; tp is not checked against
heads (noted in ``considered``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from kubellm.api.v1alpha1 import LLMDeploymentSpec
from kubellm.errors import SpecError
from kubellm.facts import Architecture, ModelFacts
from kubellm.reasons import Reason
from kubellm.runtimes.catalog import auto_order, memory_multiplier, runtime_info, runtime_infos
from kubellm.sizing import memory as mem
from kubellm.sizing.catalog import gpu_supports, is_mig, known_gpu_names, lookup_gpu
from kubellm.sizing.quant import describe, resolve_quant, weight_bytes
from kubellm.sizing.types import GpuType, Inventory, NodePool, Quant, SizingResult

TP_SIZES = (1, 2, 4, 8)
MAX_CONSIDERED = 40


@dataclass(frozen=True)
class _Pool:
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
class _Option:
    pool: _Pool
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
class _Eval:
    option: _Option
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


def _valid_tp(arch: Architecture | None, tp: int) -> bool:
    if arch is None or not arch.num_attention_heads:
        return True
    if arch.num_attention_heads % tp:
        return False
    kv = 1 if arch.is_mla else (arch.effective_kv_heads or arch.num_attention_heads)
    if arch.is_mla:
        return True
    return (kv % tp == 0) if kv >= tp else (tp % kv == 0)


def _model_tps(arch: Architecture | None) -> list[int]:
    return [t for t in TP_SIZES if _valid_tp(arch, t)]


def _check_count(count: int, arch: Architecture | None) -> None:
    tps = _model_tps(arch)
    if count in tps or (count > max(tps) and count % max(tps) == 0):
        return
    heads = arch.num_attention_heads if arch else None
    raise SpecError(
        "spec.gpu.count",
        f"{count} GPUs cannot split a model with {heads} attention heads "
        f"(tensor parallel must be one of {tps}; beyond that, a multiple of {max(tps)})",
        f"use count {' or '.join(str(t) for t in tps)}, a multiple of {max(tps)}, or auto",
    )


def _pools(inventory: Inventory, wanted: GpuType | None) -> tuple[list[_Pool], list[str]]:
    pools: list[_Pool] = []
    notes: list[str] = []
    for p in inventory.pools:
        gpu = lookup_gpu(p.gpu_product)
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
        pools.append(_Pool(pool=p, gpu=gpu, memory_gib=round(memory, 2), mig=mig))
    return pools, notes


def _options(
    pool: _Pool, arch: Architecture | None, count: int | None, runtime: str
) -> list[_Option]:
    gpn = pool.pool.gpus_per_node
    tps = [t for t in _model_tps(arch) if t <= gpn]
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
        return [_Option(pool, tp, pp)]
    out = [_Option(pool, t, 1) for t in tps]
    if pp_ok:
        tmax = max(tps)
        stages = sum(n // tmax for n in (gpn,) * pool.pool.nodes)
        out += [_Option(pool, tmax, pp) for pp in range(2, min(stages, layers) + 1)]
    return out


def _place(option: _Option, replicas: int = 1) -> tuple[bool, int]:
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
class _Model:
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


def _evaluate(model: _Model, option: _Option) -> _Eval:
    arch = model.arch
    layers = arch.num_hidden_layers if arch else None
    weights = mem.weights_per_gpu_gib(model.weight_bytes, option.tp, option.pp, layers)
    overhead = mem.overhead_gib(weights)
    usable = option.pool.memory_gib * model.fraction
    room = usable - weights - overhead
    placeable, nodes = _place(option, model.replicas)
    if not model.kv_known or arch is None:
        length = model.explicit_len or 0
        reserve = usable * mem.UNKNOWN_ARCH_KV_RESERVE
        return _Eval(option, room >= reserve, placeable, nodes, length, weights, 0.0, overhead,
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
    return _Eval(option, fits, placeable, nodes, length, weights, kv, overhead, usable, room)


def _line(e: _Eval, model: _Model) -> str:
    o = e.option
    need = (
        f"{e.weights_gib:.2f} weights + {e.kv_gib:.2f} KV + {e.overhead_gib:.2f} overhead = "
        f"{e.per_gpu_gib:.2f} GiB per GPU of {e.usable_gib:.2f} usable"
    )
    if not e.fits_memory:
        verdict = "does not fit"
    elif not e.placeable:
        verdict = f"fits, but {_busy(o, model.replicas)}"
    else:
        verdict = f"fits, maxModelLen {e.max_len} x {model.concurrency}"
    return f"{o.label()}: {need}: {verdict}"


def _all_free(option: _Option) -> _Option:
    """The same option on its pool with every GPU free (capacity, not current use)."""
    pool = replace(option.pool, pool=replace(option.pool.pool, free_gpus_per_node=None))
    return replace(option, pool=pool)


def _busy(option: _Option, replicas: int) -> str:
    """'only N of those GPUs are free now (per node ...); needs ...' for a placement refusal."""
    free = option.pool.free
    need = f"{replicas} x {option.gpus}" if replicas > 1 else str(option.gpus)
    where = " on one node" if option.gpus <= option.pool.pool.gpus_per_node else ""
    return (
        f"only {sum(free)} of those GPUs are free now (free per node: "
        f"{', '.join(str(f) for f in free)}; the others are used by pods or promised to other "
        f"deployments); needs {need}{where if replicas == 1 else ' (each replica on one node)'}"
    )


def _name(facts: ModelFacts) -> str:
    return facts.repo.rsplit("/", 1)[-1]


def size(
    facts: ModelFacts,
    spec: LLMDeploymentSpec,
    inventory: Inventory,
    *,
    runtime: str = "vllm",
) -> SizingResult:
    """Choose GPU type, count, parallelism and maxModelLen for one replica (see module docstring).

    The free GPUs must hold all ``spec.replicas`` replicas of that shape, except against the
    built-in catalogue (``source == "catalogue"``: it says which GPUs exist, not how many).
    Never raises for does-not-fit (``fits=False`` with the numbers in ``message``); raises
    SpecError for invalid input.
    """
    runtime = auto_order()[0] if runtime == "auto" else runtime
    if runtime not in runtime_infos():
        raise SpecError("spec.runtime", f"unknown runtime {runtime!r}",
                        f"use {', '.join(runtime_infos())} or auto")
    quant = resolve_quant(spec, facts)
    total = weight_bytes(facts, spec, quant)
    arch = facts.architecture
    kv_known = mem.kv_known(arch)
    ctx = spec.context
    cap = (arch.max_position_embeddings if arch else None) or mem.FALLBACK_MAX_POSITION
    explicit_len = ctx.max_model_len if isinstance(ctx.max_model_len, int) else None
    notes: list[str] = []
    if not kv_known:
        if explicit_len is None:
            raise SpecError(
                "spec.context.maxModelLen",
                f"the architecture of {facts.repo} is unknown (no config.json), so the KV cache "
                "per token cannot be computed and auto cannot pick a length",
                "set an explicit maxModelLen, e.g. 4096",
            )
        notes.append(
            f"architecture unknown: KV cache not computed; {mem.UNKNOWN_ARCH_KV_RESERVE:.0%} of "
            "usable memory kept free for it; tensor parallel not checked against heads"
        )
    elif (
        explicit_len is not None
        and arch
        and arch.max_position_embeddings
        and explicit_len > arch.max_position_embeddings
    ):
        raise SpecError(
            "spec.context.maxModelLen",
            f"{explicit_len} exceeds the model's max_position_embeddings "
            f"{arch.max_position_embeddings}",
            f"use at most {arch.max_position_embeddings}, or auto",
        )
    if arch is not None and not arch.max_position_embeddings and kv_known:
        notes.append(f"max_position_embeddings unknown: auto maxModelLen capped at {cap}")

    try:
        multiplier = memory_multiplier(runtime, list(spec.env))
    except ValueError as exc:
        raise SpecError("spec.env", str(exc), "remove it or give a number such as 0.9") from None

    count = spec.gpu.count if isinstance(spec.gpu.count, int) else None
    if count is not None and kv_known:
        _check_count(count, arch)

    wanted: GpuType | None = None
    if spec.gpu.type.lower() != "auto":
        wanted = lookup_gpu(spec.gpu.type)
        if wanted is None:
            raise SpecError(
                "spec.gpu.type",
                f"unknown GPU type {spec.gpu.type!r}",
                "use auto or one of: " + ", ".join(known_gpu_names()),
            )

    model = _Model(
        name=_name(facts),
        quant=quant,
        quant_label=describe(quant, facts),
        weight_bytes=total,
        arch=arch,
        kv_known=kv_known,
        cap=cap,
        explicit_len=explicit_len,
        concurrency=ctx.concurrency,
        kv_dtype=ctx.kv_cache_dtype,
        utilization=spec.gpu.memory_utilization,
        replicas=spec.replicas if inventory.source != "catalogue" else 1,
        multiplier=multiplier,
        multiplier_env=runtime_info(runtime).memory_fraction.multiplier_env,
    )
    base = SizingResult(
        fits=False,
        quant=quant,
        concurrency=ctx.concurrency,
        kv_cache_dtype=ctx.kv_cache_dtype,
        memory_utilization=spec.gpu.memory_utilization,
        total_weight_bytes=total,
    )

    pools, skipped = _pools(inventory, wanted)
    considered: list[str] = [*notes, *inventory.notes, *skipped]
    if wanted is not None and not pools:
        have = _inventory_summary(inventory)
        return replace(
            base,
            reason=Reason.DOES_NOT_FIT,
            message=f"spec.gpu.type {spec.gpu.type} ({wanted.product}) is not in the inventory "
            f"({inventory.source}); it has {have}",
            considered=tuple(considered),
        )

    supported: list[_Pool] = []
    unsupported: list[str] = []
    for pool in pools:
        ok, why = gpu_supports(pool.gpu, quant, runtime=runtime)
        if ok:
            supported.append(pool)
        else:
            unsupported.append(why)
            considered.append(f"{pool.pool.gpu_product}: {why}")
    if pools and not supported:
        return replace(
            base, reason=Reason.UNSUPPORTED, message=unsupported[0], considered=tuple(considered)
        )

    options = sorted(
        (o for pool in supported for o in _options(pool, arch, count, runtime)),
        key=lambda o: o.key(),
    )
    evals: list[_Eval] = []
    chosen: _Eval | None = None
    for option in options:
        e = _evaluate(model, option)
        evals.append(e)
        if len(considered) < MAX_CONSIDERED:
            considered.append(_line(e, model))
        if e.fits_memory and e.placeable:
            chosen = e
            break
    if len(evals) > 0 and chosen is None and len(considered) >= MAX_CONSIDERED:
        considered.append(f"... {len(evals)} options evaluated in all")
    if chosen is None:
        return _refusal(base, model, evals, supported, inventory, count, considered)
    return _result(base, model, chosen, considered)


def _inventory_summary(inventory: Inventory) -> str:
    if not inventory.pools:
        return "no GPU nodes"
    return "; ".join(f"{p.nodes} x {p.gpus_per_node} x {p.gpu_product}" for p in inventory.pools)


def _result(base: SizingResult, model: _Model, e: _Eval, considered: list[str]) -> SizingResult:
    o = e.option
    kv_text = (
        f"{e.kv_gib:.2f} GiB KV ({e.max_len} tokens x {model.concurrency}"
        + (", fp8" if model.kv_dtype == "fp8" else "")
        + ")"
        if model.kv_known
        else "KV not computed (architecture unknown)"
    )
    where = f"{o.gpus} x {o.pool.pool.gpu_product}"
    if o.pp > 1:
        where += f" (tp {o.tp} x pp {o.pp}" + (f" across {e.nodes} nodes)" if e.nodes > 1 else ")")
    message = (
        f"{model.name} {model.quant_label}: {e.weights_gib:.2f} GiB weights + {kv_text} + "
        f"{e.overhead_gib:.2f} GiB overhead = {e.per_gpu_gib:.2f} GiB per GPU -> {where} "
        f"({e.usable_gib:.2f} GiB usable at {model.fraction_text})"
    )
    return replace(
        base,
        fits=True,
        gpu_type=o.pool.pool.gpu_product,
        gpu_label_key=o.pool.pool.label_key,
        gpus_per_replica=o.gpus,
        tensor_parallel_size=o.tp,
        pipeline_parallel_size=o.pp,
        max_model_len=e.max_len,
        weights_gib=round(e.weights_gib, 2),
        kv_cache_gib=round(e.kv_gib, 2),
        overhead_gib=round(e.overhead_gib, 2),
        per_gpu_gib=round(e.per_gpu_gib, 2),
        gpu_memory_gib=round(e.usable_gib, 2),
        nodes_per_replica=e.nodes,
        message=message,
        considered=tuple(considered),
    )


def _refusal(
    base: SizingResult,
    model: _Model,
    evals: list[_Eval],
    pools: list[_Pool],
    inventory: Inventory,
    count: int | None,
    considered: list[str],
) -> SizingResult:
    prefix = f"{model.name} {model.quant_label}"
    if not pools:
        return replace(
            base,
            reason=Reason.DOES_NOT_FIT,
            message=f"{prefix}: the inventory ({inventory.source}) has no usable GPU nodes",
            considered=tuple(considered),
        )
    fitting = [e for e in evals if e.fits_memory]
    if fitting and not any(_place(_all_free(e.option), model.replicas)[0] for e in fitting):
        e = fitting[0]
        nodes = e.option.pool.pool
        return replace(
            base,
            reason=Reason.DOES_NOT_FIT,
            max_model_len=e.max_len,
            message=f"{prefix}: fits {e.option.label()} per replica, but {model.replicas} "
            f"replicas need more than the inventory's {nodes.nodes} x {nodes.gpus_per_node} x "
            f"{nodes.gpu_product} even when all are free",
            considered=tuple(considered),
        )
    if fitting:
        e = next(e for e in fitting if _place(_all_free(e.option), model.replicas)[0])
        return replace(
            base,
            reason=Reason.GPUS_BUSY,
            max_model_len=e.max_len,
            message=f"{prefix}: fits {e.option.label()}"
            + (f" per replica x {model.replicas} replicas" if model.replicas > 1 else "")
            + f" but {_busy(e.option, model.replicas)}",
            considered=tuple(considered),
        )
    if not evals:
        shapes = ", ".join(f"{p.pool.gpus_per_node} x {p.pool.gpu_product}" for p in pools)
        return replace(
            base,
            reason=Reason.DOES_NOT_FIT,
            message=f"{prefix}: {count} GPUs per replica cannot be placed on the inventory's "
            f"nodes ({shapes})",
            considered=tuple(considered),
        )
    best = max(evals, key=lambda e: (e.free_for_kv_gib, -e.option.gpus))
    arch = model.arch
    largest = max(pools, key=lambda p: (p.pool.gpus_per_node * p.memory_gib, p.memory_gib))
    offer = (
        f"the largest node offers {largest.pool.gpus_per_node} x {largest.memory_gib:.1f} GiB "
        f"({largest.pool.gpu_product}, {largest.memory_gib * model.fraction:.1f} GiB usable "
        "each)"
    )
    if model.explicit_len is not None and model.kv_known and arch and best.free_for_kv_gib > 0:
        o = best.option
        per_token = mem.kv_bytes_per_token(arch, model.kv_dtype, tp=o.tp, pp=o.pp)
        fit_tokens = int(best.free_for_kv_gib * mem.GIB // (per_token * model.concurrency))
        message = (
            f"{prefix}: maxModelLen {model.explicit_len} x {model.concurrency} needs "
            f"{best.kv_gib:.2f} GiB KV per GPU on {o.label()} but only "
            f"{best.free_for_kv_gib:.2f} GiB remain after weights and overhead; the largest "
            f"that fits there is {fit_tokens // mem.MAX_LEN_STEP * mem.MAX_LEN_STEP}"
        )
    else:
        tokens = model.explicit_len or mem.min_auto_len(model.cap)
        kv_total = 0.0
        if model.kv_known and arch:
            kv_total = mem.kv_bytes_per_token(arch, model.kv_dtype) * tokens * model.concurrency
        weights = model.weight_bytes * mem.WEIGHT_EXPANSION_FACTOR
        replica = (weights + kv_total) / mem.GIB + mem.overhead_gib(weights / mem.GIB)
        message = (
            f"{prefix}: needs {replica:.1f} GiB per replica ({weights / mem.GIB:.1f} weights + "
            f"{kv_total / mem.GIB:.1f} KV for {tokens} tokens x {model.concurrency} + overhead); "
            f"{offer}{_spread_note(evals)}"
        )
    return replace(
        base,
        reason=Reason.DOES_NOT_FIT,
        weights_gib=round(best.weights_gib, 2),
        kv_cache_gib=round(best.kv_gib, 2),
        overhead_gib=round(best.overhead_gib, 2),
        per_gpu_gib=round(best.per_gpu_gib, 2),
        gpu_memory_gib=round(best.usable_gib, 2),
        message=message,
        considered=tuple(considered),
    )


def _spread_note(evals: list[_Eval]) -> str:
    """The widest multi-node option tried (pipeline stages on several nodes), when there was one:
    a refusal then says that splitting across nodes was considered and by how much it misses."""
    spread = [e for e in evals if e.nodes > 1]
    if not spread:
        return ""
    e = max(spread, key=lambda e: (e.option.gpus, e.usable_gib))
    return (
        f"; split across {e.nodes} nodes ({e.option.label()}) it would need "
        f"{e.per_gpu_gib:.1f} GiB per GPU of {e.usable_gib:.1f} usable"
    )
