"""Serving runtimes behind one interface: vLLM and TGI (pure).

``get_runtime(name)`` returns a ``Runtime``; an unknown name is an UnsupportedError listing the
known ones (no silent default). ``choose_runtime`` resolves ``spec.runtime: auto``: vLLM, which
serves every quantization kubellm knows (GGUF included) and is actively developed; TGI is in
maintenance mode upstream and is used only when ``spec.runtime: tgi`` asks for it. Either way the
choice is checked against the quantization and the GPU, and a refusal lists what is supported.
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
    """The effective runtime name for ``spec.runtime`` (auto -> vllm), checked for support."""
    name = DEFAULT_RUNTIME if spec.runtime == "auto" else spec.runtime
    get_runtime(name).supports(quant, gpu)
    return name
