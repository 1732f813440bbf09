"""Serving runtimes behind one interface: vLLM and TGI (pure).

``get_runtime(name)`` returns a ``Runtime``; an unknown name is an UnsupportedError listing the
known ones (no silent default). ``choose_runtime`` resolves ``spec.runtime: auto`` to the first
runtime of ``AUTO_ORDER`` that serves the quantization: vLLM, which is actively developed and
serves almost everything; TGI (maintenance mode upstream) only for what the pinned vLLM cannot
serve (bitsandbytes, an out-of-tree plugin since vLLM 0.29). Either way the choice is checked
against the quantization and the GPU, and a refusal lists what is supported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kubellm.errors import UnsupportedError
from kubellm.runtimes.base import RenderContext, Runtime, endpoint_url
from kubellm.runtimes.catalog import downloader_image
from kubellm.runtimes.tgi import TgiRuntime
from kubellm.runtimes.vllm import VllmRuntime

if TYPE_CHECKING:
    from kubellm.api.v1alpha1 import LLMDeploymentSpec
    from kubellm.sizing.types import GpuType, Quant

RUNTIMES: dict[str, Runtime] = {r.name: r for r in (TgiRuntime(), VllmRuntime())}
DEFAULT_RUNTIME = "vllm"
AUTO_ORDER = ("vllm", "tgi")  # spec.runtime: auto takes the first that serves the quantization

__all__ = [
    "DEFAULT_RUNTIME",
    "RUNTIMES",
    "RenderContext",
    "Runtime",
    "choose_runtime",
    "downloader_image",
    "endpoint_url",
    "get_runtime",
]


def get_runtime(name: str) -> Runtime:
    """The runtime called ``name``; UnsupportedError listing the known ones otherwise."""
    try:
        return RUNTIMES[name]
    except KeyError:
        raise UnsupportedError(
            f"spec.runtime: unknown runtime {name!r}; kubellm knows "
            f"{', '.join(sorted(RUNTIMES))} (or auto)."
        ) from None


def choose_runtime(spec: LLMDeploymentSpec, quant: Quant, gpu: GpuType | None) -> str:
    """The effective runtime name for ``spec.runtime``, checked for support.

    ``auto``: the first of ``AUTO_ORDER`` that serves ``quant`` (on ``gpu`` when given); when none
    does, the refusal of the first (it lists what it serves and who else could)."""
    if spec.runtime != "auto":
        get_runtime(spec.runtime).supports(quant, gpu)
        return spec.runtime
    first: UnsupportedError | None = None
    for name in AUTO_ORDER:
        try:
            get_runtime(name).supports(quant, gpu)
        except UnsupportedError as exc:
            first = first or exc
            continue
        return name
    assert first is not None
    raise first
