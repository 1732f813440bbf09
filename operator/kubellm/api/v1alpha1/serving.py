"""How a model is served: the runtime names of data/runtimes.yaml (``runtime_names``), context and
concurrency, GPUs, and the extra runtime arguments no namespace user may pass (data/overrides.yaml).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from kubellm.api.v1alpha1.common import KvCacheDtype, _Model


def runtime_names() -> tuple[str, ...]:
    """spec.runtime values: auto, then the runtimes of data/runtimes.yaml in its order."""
    from kubellm.datafiles import load_mapping

    return ("auto", *(str(n) for n in load_mapping("runtimes.yaml")["runtimes"]))


class ContextSpec(_Model):
    """Context length and concurrency: together they size the KV cache."""

    max_model_len: int | Literal["auto"] = Field(
        default="auto",
        description=(
            "Maximum tokens per sequence (prompt + output). auto: the largest that fits the "
            "chosen GPUs for the requested concurrency, capped at the model's "
            "max_position_embeddings. An explicit value is checked and refused with numbers if "
            "it cannot fit."
        ),
    )
    concurrency: int = Field(
        default=1,
        ge=1,
        le=4096,
        description="Sequences of max_model_len that must fit in the KV cache at once.",
    )
    kv_cache_dtype: KvCacheDtype = Field(
        default="auto",
        description="KV cache dtype: auto (the model dtype) or fp8 (half the memory).",
    )

    @field_validator("max_model_len")
    @classmethod
    def _len(cls, value: int | str) -> int | str:
        if isinstance(value, int) and not 16 <= value <= 10_485_760:
            raise ValueError("maxModelLen must be an integer between 16 and 10485760, or auto")
        return value


class GpuSpec(_Model):
    """Which GPUs, how many, and how much of their memory vLLM/TGI may use."""

    type: str = Field(
        default="auto",
        description=(
            "auto (the cheapest fitting GPU the cluster has), a GPU Feature Discovery product "
            "label (nvidia.com/gpu.product, e.g. NVIDIA-L4, NVIDIA-H100-80GB-HBM3) or an alias "
            "(l4, h100, a100-80gb, ...)."
        ),
        min_length=1,
    )
    count: int | Literal["auto"] = Field(
        default="auto",
        description="GPUs per replica: auto (the smallest valid count) or 1, 2, 4, 8, 16, ...",
    )
    memory_utilization: float = Field(
        default=0.9,
        gt=0.1,
        le=0.99,
        description=(
            "Fraction of each GPU's memory the runtime may use (vLLM --gpu-memory-utilization)."
        ),
    )

    @field_validator("count")
    @classmethod
    def _count(cls, value: int | str) -> int | str:
        if isinstance(value, int) and not 1 <= value <= 1024:
            raise ValueError("gpu.count must be an integer of at least 1, or auto")
        return value


MAX_ARGS = 128  # bounds the CRD's CEL cost; no runtime needs more extra arguments


def refused_arg_forms() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(exact args, arg prefixes) no runtime lets a namespace user pass: the owned and refused
    flags of ``data/overrides.yaml`` (every runtime), with ``_`` for ``-`` (vLLM reads both), as
    ``--flag``, ``--flag=...`` and ``--flag.key`` (vLLM's dotted JSON keys). The CRD's CEL rule
    and the validator below refuse these at admission; ``kubellm.runtimes.guard`` checks the
    rest (abbreviations, unknown flags, stray values) in the planner."""
    from kubellm.datafiles import load_mapping

    names: set[str] = set()
    for entry in load_mapping("overrides.yaml")["runtimes"].values():
        for flag in (*entry.get("owned", {}), *entry.get("refused", {})):
            names |= {flag, "--" + flag[2:].replace("-", "_")}
    exact = tuple(sorted(names))
    prefixes = tuple(sorted({f"{n}{sep}" for n in names for sep in ("=", ".")}))
    return exact, prefixes


def _refused_arg(arg: str) -> bool:
    exact, prefixes = refused_arg_forms()
    return arg in exact or arg.startswith(prefixes)
