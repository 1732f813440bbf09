"""Can a runtime serve this deployment (pure)? The checks every runtime makes before rendering,
read from its catalogue entry (``data/runtimes.yaml``): the quantization (and whether it needs a
pre-quantized checkpoint), the GPU's compute capability, and whether the sizing's layout
(several nodes per replica, pipeline stages) is one the runtime can run. Each refusal is an
``UnsupportedError`` saying what the runtime does serve and which runtimes would.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kubellm.errors import UnsupportedError
from kubellm.runtimes.catalog import (
    QuantSupport,
    RuntimeInfo,
    as_cc,
    capability_row,
    cc_text,
    runtime_info,
    runtime_infos,
    runtimes_that,
    serves_on,
)

if TYPE_CHECKING:
    from kubellm.runtimes.context import RenderContext
    from kubellm.sizing.types import GpuType, Quant


def supported_text(info: RuntimeInfo) -> str:
    """``none (compute capability 7.0+), fp8 (8.0+), ...`` for error messages."""
    parts = []
    for method, qs in info.quantizations.items():
        extra = ", pre-quantized checkpoint" if qs.needs_checkpoint else ""
        parts.append(f"{method} (compute capability {cc_text(qs.min_cc)}+{extra})")
    return ", ".join(parts)


def _others_serving(name: str, method: str) -> list[str]:
    infos = runtime_infos()
    return [n for n, i in infos.items() if n != name and method in i.quantizations]


def check_support(name: str, quant: Quant, gpu: GpuType | None) -> None:
    """Raise UnsupportedError (listing what is supported) unless runtime ``name`` can serve
    ``quant`` on ``gpu`` (``gpu`` None: the quantization alone is checked)."""
    info = runtime_info(name)
    method = quant.method
    qs: QuantSupport | None = info.quantizations.get(method)
    if qs is None:
        reason = info.unsupported.get(method, f"{method} is not in its catalogue")
        others = _others_serving(name, method)
        fix = (
            f"set spec.runtime to {' or '.join([*others, 'auto'])}"
            if others
            else "choose another spec.quantization"
        )
        raise UnsupportedError(
            f"spec.runtime: runtime {name} cannot serve quantization {method} "
            f"({reason}). {name} serves: {supported_text(info)}. Fix: {fix}."
        )
    if qs.needs_checkpoint and not quant.from_checkpoint:
        on_the_fly = sorted(m for m, q in info.quantizations.items() if not q.needs_checkpoint)
        raise UnsupportedError(
            f"spec.quantization: {method} needs a checkpoint that is already quantized with "
            f"{method} (its config.json quantization_config); {name} cannot quantize to "
            f"{method} on the fly. Fix: pick a {method.upper()} repo in spec.model.repo, or "
            f"set spec.quantization to "
            f"{' or '.join(on_the_fly)}."
        )
    if gpu is None:
        return
    cc = as_cc(gpu.compute_capability)
    ok, why = serves_on(info, method, quant.bits_per_weight, cc, gpu.product)
    if not ok:
        fitting = [
            m for m in info.quantizations
            if serves_on(info, m, quant.bits_per_weight, cc, gpu.product)[0]
        ]  # fmt: skip
        row = info.quantizations[capability_row(info, method, quant.bits_per_weight)]
        note = f" ({row.note})" if row.note and row.native_cc is None else ""
        raise UnsupportedError(
            f"spec.gpu.type: {why}{note}. Fix: choose a newer GPU in spec.gpu.type, or a "
            f"spec.quantization this GPU supports with {name}: "
            f"{', '.join(fitting) or 'none'}."
        )


def check_layout(name: str, ctx: RenderContext, *, multi_node: bool) -> None:
    """Raise UnsupportedError unless runtime ``name`` can run the sizing's layout: one replica
    across ``ctx.nodes`` nodes (``multi_node``) and ``ctx.pp`` pipeline stages."""
    info = runtime_info(name)
    if ctx.nodes > 1 and not multi_node:
        can = runtimes_that(lambda i: i.multi_node is not None, but=name)
        how = "; ".join(f"{runtime_info(n).display_name} can ({runtime_info(n).multi_node})"
                        for n in can)
        raise UnsupportedError(
            f"spec.runtime: runtime {name} cannot run one replica across several nodes, "
            f"and the sizing needs {ctx.nodes} nodes x {ctx.gpus_per_pod} GPUs (tp {ctx.tp} "
            f"x pp {ctx.pp}). {how}. Fix: set spec.runtime to {' or '.join([*can, 'auto'])}, "
            f"or a GPU type with more memory in spec.gpu.type."
        )
    if info.no_pipeline_parallel and ctx.pp > 1:
        can = runtimes_that(lambda i: not i.no_pipeline_parallel, but=name)
        raise UnsupportedError(
            f"spec.runtime: runtime {name} has no pipeline parallelism but the sizing "
            f"chose {ctx.pp} stages x {ctx.tp} GPUs. Fix: set spec.runtime to "
            f"{' or '.join([*can, 'auto'])}, or a GPU type with more memory in spec.gpu.type."
        )
