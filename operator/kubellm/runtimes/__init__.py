"""Serving runtimes behind one interface (pure): the registry.

A runtime is an entry of ``data/runtimes.yaml`` (image, port, probes, capability table, drain,
multi-node) plus one small module saying what differs (its arguments, env, multi-node
commands), registered in ``RUNTIMES``; a test keeps the two in step. The API's ``spec.runtime``
enum, the CRD, the chart and the docs are derived from the catalogue's names.

``get_runtime(name)`` returns a ``Runtime``; an unknown name is an UnsupportedError listing the
known ones (no silent default). ``choose_runtime`` resolves ``spec.runtime: auto`` to the first
runtime of ``AUTO_ORDER`` (runtimes.yaml ``auto_order``: vLLM, actively developed and serving
almost everything; TGI, maintenance mode upstream, for what the pinned vLLM cannot serve,
bitsandbytes) that serves the quantization. Either way the choice is checked against the
quantization and the GPU, and a refusal lists what is supported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kubellm.errors import UnsupportedError
from kubellm.runtimes.base import RenderContext, Runtime, endpoint_url
from kubellm.runtimes.catalog import auto_order, downloader_image
from kubellm.runtimes.sglang import SglangRuntime
from kubellm.runtimes.tgi import TgiRuntime
from kubellm.runtimes.vllm import VllmRuntime

if TYPE_CHECKING:
    from kubellm.api.v1alpha1 import LLMDeploymentSpec
    from kubellm.sizing.types import GpuType, Quant

RUNTIMES: dict[str, Runtime] = {
    r.name: r for r in (SglangRuntime(), TgiRuntime(), VllmRuntime())
}
AUTO_ORDER = auto_order()  # spec.runtime: auto takes the first that serves the quantization
DEFAULT_RUNTIME = AUTO_ORDER[0]

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
