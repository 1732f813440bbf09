"""TGI v3.3.7 facts the rendering and the sizer must respect (issue 10, "workloads the real
engines accept"). Each rule comes from data/runtimes.yaml's tgi section, which carries the
upstream source lines."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from test_render_cases import BF16, L4, Case, llama_8b

from kubellm.api.v1alpha1 import LLMDeploymentSpec
from kubellm.errors import SpecError
from kubellm.runtimes import get_runtime
from kubellm.runtimes.catalog import memory_multiplier, runtime_info
from kubellm.sizing import default_inventory, lookup_gpu, size


def flag(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


# --- memory: TGI fills memoryUtilization x TGI_WIGGLE_ROOM --------------------------------------


def _spec(runtime: str, **kw: Any) -> LLMDeploymentSpec:
    return LLMDeploymentSpec.model_validate(
        {"model": {"repo": "meta-llama/Llama-3.1-8B-Instruct"}, "runtime": runtime, **kw}
    )


def test_tgi_sizing_leaves_the_headroom_tgi_keeps() -> None:
    """Llama-3.1-8B bf16 on one L4: vLLM fits 15616 tokens at 0.9; TGI's KV budget is
    0.9 x 0.90 of the GPU, which cannot hold weights + overhead + 2048 tokens there."""
    l4 = {"gpu": {"type": "l4", "count": 1}}
    vllm = size(llama_8b(), _spec("vllm", **l4), default_inventory(), runtime="vllm")
    assert vllm.fits and vllm.max_model_len == 15616
    tgi = size(llama_8b(), _spec("tgi", **l4), default_inventory(), runtime="tgi")
    assert not tgi.fits, tgi.message
    auto = size(llama_8b(), _spec("tgi"), default_inventory(), runtime="tgi")
    assert auto.fits and auto.gpu_memory_gib is not None and auto.per_gpu_gib is not None
    gpu = lookup_gpu(auto.gpu_type or "")
    assert gpu is not None
    assert auto.gpu_memory_gib == pytest.approx(gpu.memory_gib * 0.9 * 0.9, abs=0.01)
    assert auto.per_gpu_gib <= auto.gpu_memory_gib
    assert "usable at 0.9 x 0.9 TGI_WIGGLE_ROOM" in auto.message
    # Given more of the GPU, one L4 serves it with TGI too, at a shorter context than vLLM's.
    more = size(llama_8b(), _spec("tgi", gpu={"type": "l4", "count": 1, "memoryUtilization": 0.97}),
                default_inventory(), runtime="tgi")  # fmt: skip
    assert more.fits and (more.max_model_len or 0) < 15616
    assert more.per_gpu_gib is not None and gpu is not None
    l4_gpu = lookup_gpu("l4")
    assert l4_gpu is not None and more.per_gpu_gib <= l4_gpu.memory_gib * 0.97 * 0.9


def test_tgi_rendered_fraction_is_memory_utilization() -> None:
    # --cuda-memory-fraction also caps torch's allocator (dist.py:56): it stays the share of the
    # GPU the user gave; the sizer counts the part TGI keeps back.
    ctx = Case("t", "tgi", llama_8b(), BF16, L4, {}).context()
    ctx = replace(ctx, sizing=replace(ctx.sizing, memory_utilization=0.95))
    c = get_runtime("tgi").container(ctx)
    assert flag(c["args"], "--cuda-memory-fraction") == "0.95"
    assert runtime_info("tgi").memory_fraction.effective_multiplier == 0.9
    assert runtime_info("vllm").memory_fraction.effective_multiplier == 1.0


def test_wiggle_room_from_spec_env() -> None:
    env = [{"name": "TGI_WIGGLE_ROOM", "value": "0.95"}]
    assert memory_multiplier("tgi", env) == 0.95
    assert memory_multiplier("tgi", [{"name": "TGI_WIGGLE_ROOM", "valueFrom": {}}]) == 0.9
    assert memory_multiplier("vllm", env) == 1.0
    r = size(llama_8b(), _spec("tgi", gpu={"type": "l4", "count": 1}, env=env),
             default_inventory(), runtime="tgi")  # fmt: skip
    l4 = lookup_gpu("l4")
    assert l4 is not None and r.gpu_memory_gib == pytest.approx(l4.memory_gib * 0.9 * 0.95, 0.01)
    with pytest.raises(SpecError, match="TGI_WIGGLE_ROOM"):
        size(llama_8b(), _spec("tgi", env=[{"name": "TGI_WIGGLE_ROOM", "value": "1.5"}]),
             default_inventory(), runtime="tgi")  # fmt: skip
