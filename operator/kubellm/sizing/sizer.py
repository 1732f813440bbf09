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

from dataclasses import replace

from kubellm.api.v1alpha1 import LLMDeploymentSpec
from kubellm.errors import SpecError
from kubellm.facts import Architecture, ModelFacts
from kubellm.reasons import Reason
from kubellm.runtimes.catalog import auto_order, memory_multiplier, runtime_info, runtime_infos
from kubellm.sizing import memory as mem
from kubellm.sizing.catalog import gpu_supports, known_gpu_names, lookup_gpu
from kubellm.sizing.options import (
    Evaluation,
    Option,
    Pool,
    SizingModel,
    all_free,
    candidate_pools,
    evaluate,
    model_tps,
    options_for,
    place,
)
from kubellm.sizing.quant import describe, resolve_quant, weight_bytes
from kubellm.sizing.types import GpuType, Inventory, SizingResult

MAX_CONSIDERED = 40


def _check_count(count: int, arch: Architecture | None) -> None:
    tps = model_tps(arch)
    if count in tps or (count > max(tps) and count % max(tps) == 0):
        return
    heads = arch.num_attention_heads if arch else None
    raise SpecError(
        "spec.gpu.count",
        f"{count} GPUs cannot split a model with {heads} attention heads "
        f"(tensor parallel must be one of {tps}; beyond that, a multiple of {max(tps)})",
        f"use count {' or '.join(str(t) for t in tps)}, a multiple of {max(tps)}, or auto",
    )


def _line(e: Evaluation, model: SizingModel) -> str:
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


def _busy(option: Option, replicas: int) -> str:
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
        wanted = lookup_gpu(spec.gpu.type, inventory.gpus)
        if wanted is None:
            raise SpecError(
                "spec.gpu.type",
                f"unknown GPU type {spec.gpu.type!r}",
                "use auto or one of: " + ", ".join(known_gpu_names(inventory.gpus)),
            )

    model = SizingModel(
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

    pools, skipped = candidate_pools(inventory, wanted)
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

    supported: list[Pool] = []
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
        (o for pool in supported for o in options_for(pool, arch, count, runtime)),
        key=lambda o: o.key(),
    )
    evals: list[Evaluation] = []
    chosen: Evaluation | None = None
    for option in options:
        e = evaluate(model, option)
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


def _result(
    base: SizingResult, model: SizingModel, e: Evaluation, considered: list[str]
) -> SizingResult:
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
    model: SizingModel,
    evals: list[Evaluation],
    pools: list[Pool],
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
    if fitting and not any(place(all_free(e.option), model.replicas)[0] for e in fitting):
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
        e = next(e for e in fitting if place(all_free(e.option), model.replicas)[0])
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


def _spread_note(evals: list[Evaluation]) -> str:
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
