"""The GPU catalogue (``data/gpus.yaml``): names, memory, compute capability, kernel support.

``lookup_gpu`` maps what users and clusters call a GPU (a GPU Feature Discovery product label, one
of its other spellings, a short alias such as ``l4``/``h100``/``a100-80gb``, or a cloud label value)
onto one catalogue entry, case-insensitively. MIG and time-slicing suffixes are stripped first
(``NVIDIA-A100-SXM4-40GB-MIG-1g.5gb`` and ``NVIDIA-L4-SHARED`` name the parent GPU): the entry
then gives the compute capability; a MIG slice's memory comes from ``mig_slice_memory_mib``.

``gpu_supports`` answers whether a GPU generation runs a quantization's kernels, from the
``kernels`` table of the same file (a fast path and an optional slower fallback per method).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from kubellm.datafiles import load_mapping
from kubellm.sizing.types import GpuType, Quant

_MIG = re.compile(r"-MIG-(?P<g>\d+)g\.(?P<gb>\d+)gb$", re.IGNORECASE)
_SHARED = re.compile(r"-SHARED$", re.IGNORECASE)


@dataclass(frozen=True)
class KernelRule:
    """Minimum compute capability for one quantization method on one runtime (or, under the
    key ``min_compute_capability``, for the runtime itself)."""

    full: tuple[int, int]
    fallback: tuple[int, int] | None = None
    fallback_note: str = ""
    source: str = ""


def _cc(value: Any) -> tuple[int, int]:
    major, _, minor = str(value).partition(".")
    return int(major), int(minor or 0)


def _raw() -> dict[str, Any]:
    return load_mapping("gpus.yaml")


@cache
def load_gpu_catalog() -> tuple[GpuType, ...]:
    """Every GPU of ``data/gpus.yaml``, in file order."""
    out: list[GpuType] = []
    for entry in _raw()["gpus"]:
        out.append(
            GpuType(
                product=str(entry["product"]),
                memory_gib=round(int(entry["memory_mib"]) / 1024, 2),
                compute_capability=_cc(entry["compute_capability"]),
                aliases=tuple(str(a) for a in entry.get("aliases", ())),
                products=tuple(str(p) for p in entry.get("products", ())),
                relative_cost=float(entry.get("relative_cost", 1.0)),
                source=str(entry.get("source", "")),
            )
        )
    return tuple(out)


@cache
def _index() -> dict[str, GpuType]:
    index: dict[str, GpuType] = {}
    for gpu in load_gpu_catalog():
        for name in (gpu.product, *gpu.products, *gpu.aliases):
            key = name.lower()
            if key in index and index[key] is not gpu:
                raise ValueError(f"kubellm/data/gpus.yaml: name {name!r} is used twice")
            index[key] = gpu
    return index


def base_product(name: str) -> str:
    """``NVIDIA-A100-SXM4-40GB-MIG-1g.5gb`` -> ``NVIDIA-A100-SXM4-40GB``; ``X-SHARED`` -> ``X``."""
    stripped = _SHARED.sub("", name.strip())
    return _MIG.sub("", stripped)


def is_mig(product: str) -> bool:
    return _MIG.search(_SHARED.sub("", product.strip())) is not None


def is_shared(product: str) -> bool:
    return _SHARED.search(product.strip()) is not None


def mig_slice_memory_mib(product: str) -> int | None:
    """The memory of a MIG slice from its profile name (``...-MIG-3g.20gb`` -> 20480)."""
    match = _MIG.search(_SHARED.sub("", product.strip()))
    return int(match.group("gb")) * 1024 if match else None


def lookup_gpu(name: str) -> GpuType | None:
    """The catalogue entry for a product label, another spelling or an alias (case-insensitive).

    MIG (``-MIG-<profile>``) and time-slicing (``-SHARED``) suffixes are stripped, so the result
    is the parent GPU. Returns None for names the catalogue does not know.
    """
    return _index().get(base_product(name).lower())


def known_gpu_names() -> list[str]:
    """Canonical products and their first alias, for error messages."""
    return [f"{g.product} ({g.aliases[0]})" if g.aliases else g.product for g in load_gpu_catalog()]


@cache
def kernel_rule(runtime: str, method: str) -> KernelRule | None:
    kernels: dict[str, Any] = _raw().get("kernels", {})
    table = kernels.get(runtime, {})
    entry = table.get(method) if isinstance(table, dict) else None
    if entry is None:
        entry = kernels.get("vllm", {}).get(method)
    if entry is None:
        return None
    return KernelRule(
        full=_cc(entry["full"]),
        fallback=_cc(entry["fallback"]) if "fallback" in entry else None,
        fallback_note=str(entry.get("fallback_note", "")),
        source=str(entry.get("source", "")),
    )


def _fmt(cc: tuple[int, int]) -> str:
    return f"{cc[0]}.{cc[1]}"


def gpu_supports(gpu: GpuType, quant: Quant, *, runtime: str = "vllm") -> tuple[bool, str]:
    """Whether ``gpu`` runs ``quant`` on ``runtime``, and a short explanation.

    Compressed-tensors checkpoints of 8 bits and more follow the FP8 rule (W8A8 on Ada/Hopper,
    weight-only Marlin below); lower widths follow the compressed-tensors rule (Marlin, Ampere+).
    """
    method = quant.method
    if method == "compressed-tensors" and quant.bits_per_weight >= 7.5:
        method = "fp8"
    cc = gpu.compute_capability
    floor = kernel_rule(runtime, "min_compute_capability")
    if floor is not None and cc < floor.full:
        return False, (
            f"{runtime} does not run on {gpu.product} (compute capability {_fmt(cc)}; "
            f"needs {_fmt(floor.full)} or newer)"
        )
    rule = kernel_rule(runtime, method)
    if rule is None:
        return True, f"{method}: no kernel requirement recorded"
    if cc >= rule.full:
        return True, f"{method} runs natively on compute capability {_fmt(cc)}"
    if rule.fallback is not None and cc >= rule.fallback:
        return True, f"{method} on compute capability {_fmt(cc)}: {rule.fallback_note}"
    need = rule.fallback or rule.full
    return False, (
        f"{runtime} cannot run {method} on {gpu.product} (compute capability {_fmt(cc)}; "
        f"needs {_fmt(need)} or newer)"
    )
