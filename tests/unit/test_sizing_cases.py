"""Sizing against published deployments (sizing_cases.json) and the worked checks of sizing.md.

A plan never needs more GPUs than a published working configuration of the same model,
quantization, GPU and context, and never fewer than the weights physically need.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from kubellm.api.v1alpha1 import LLMDeploymentSpec
from kubellm.facts import Architecture, ModelFacts, QuantizationConfig
from kubellm.sizing import default_inventory, kv_bytes_per_token, lookup_gpu, size

CASES_FILE = Path(__file__).resolve().parents[1] / "data" / "sizing_cases.json"
CASES: list[dict[str, Any]] = json.loads(CASES_FILE.read_text())
GIB = 1024**3

# Published GPU description -> the alias kubellm users write (None: any GPU, type auto).
GPU_ALIAS = {
    "NVIDIA A100 80GB": "a100-80gb",
    "NVIDIA H100 80GB": "h100",
    "NVIDIA L4 24GB": "l4",
}


def arch_of(block: dict[str, Any], quant: QuantizationConfig | None = None) -> Architecture:
    return Architecture(
        num_hidden_layers=block["num_hidden_layers"],
        num_attention_heads=block["num_attention_heads"],
        num_key_value_heads=block["num_key_value_heads"],
        head_dim=block.get("head_dim"),
        hidden_size=block["hidden_size"],
        intermediate_size=block.get("intermediate_size"),
        vocab_size=block.get("vocab_size"),
        max_position_embeddings=block["max_position_embeddings"],
        torch_dtype=block.get("torch_dtype", "bfloat16"),
        quantization=quant,
    )


def facts_of(case: dict[str, Any]) -> ModelFacts:
    """Facts as the Hub would give them. FP8 checkpoints: parameters only (their safetensors size
    is not in the case file; the bf16 size there belongs to the base model)."""
    block = case["arch"]
    q = (case["quantization"] or "").lower()
    if q.startswith("fp8"):
        qc = QuantizationConfig(method="compressed-tensors", bits=8)
        return ModelFacts(
            repo=case["model"],
            architecture=arch_of(block, qc),
            parameters=int(case["params_b"] * 1e9),
        )
    mx = QuantizationConfig(method="mxfp4") if q.startswith("mxfp4") else None
    return ModelFacts(
        repo=case["model"],
        architecture=arch_of(block, mx),
        weight_bytes=int(block["safetensors_GiB"] * GIB),
        parameters=int(case["params_b"] * 1e9),
    )


def spec_of(case: dict[str, Any]) -> LLMDeploymentSpec:
    gpu = next((a for k, a in GPU_ALIAS.items() if case["gpu"].startswith(k)), "auto")
    kv_fp8 = "kv-cache-dtype=fp8" in case.get("note", "")
    return LLMDeploymentSpec.model_validate(
        {
            "model": {"repo": "x/y"},
            "gpu": {"type": gpu},
            "context": {
                "maxModelLen": case["max_model_len"] or "auto",
                "kvCacheDtype": "fp8" if kv_fp8 else "auto",
            },
        }
    )


def runtime_of(case: dict[str, Any]) -> str:
    return "tgi" if case["runtime"].startswith("tgi") else "vllm"


@pytest.mark.parametrize("case", CASES, ids=[f"{c['model']}@{c['gpu_count']}" for c in CASES])
def test_published_case(case: dict[str, Any]) -> None:
    facts = facts_of(case)
    spec = spec_of(case)
    result = size(facts, spec, default_inventory(), runtime=runtime_of(case))
    assert result.fits, result.message
    assert result.gpus_per_replica is not None and result.per_gpu_gib is not None
    # Never more than a published working configuration...
    assert result.gpus_per_replica <= case["gpu_count"], result.considered
    # ... never fewer than the bare weights need on that GPU's physical memory.
    gpu = lookup_gpu(result.gpu_type or "")
    assert gpu is not None
    assert result.total_weight_bytes is not None
    floor = math.ceil(result.total_weight_bytes / GIB / gpu.memory_gib)
    assert result.gpus_per_replica >= floor
    assert result.per_gpu_gib <= (result.gpu_memory_gib or 0)
    if case["max_model_len"]:
        assert result.max_model_len == case["max_model_len"]
    assert kv_bytes_per_token(facts.architecture) == case["arch"]["kv_bytes_per_token_bf16"]  # type: ignore[arg-type]


LLAMA_70B = next(c for c in CASES if c["model"] == "meta-llama/Llama-3.3-70B-Instruct")


def _spec(**kw: Any) -> LLMDeploymentSpec:
    return LLMDeploymentSpec.model_validate({"model": {"repo": "x/y"}, **kw})


def test_worked_check_70b_bf16_16k_a100_needs_4() -> None:
    facts = facts_of(LLAMA_70B)
    spec = _spec(gpu={"type": "a100-80gb"}, context={"maxModelLen": 16384})
    result = size(facts, spec, default_inventory())
    assert (result.gpus_per_replica, result.tensor_parallel_size) == (4, 4)
    assert result.weights_gib == pytest.approx(131.42 * 1.02 / 4, abs=0.01)
    two = [line for line in result.considered if line.startswith("2 x ")]
    assert two and two[0].endswith("does not fit")
    assert not any(line.startswith("3 x ") for line in result.considered)  # 3 ∤ 64 heads
    with pytest.raises(Exception, match=r"spec\.gpu\.count"):
        size(facts, _spec(gpu={"type": "a100-80gb", "count": 3}), default_inventory())


@pytest.mark.parametrize(
    ("utilization", "kv_dtype", "fits"),
    [
        (0.98, "fp8", True),  # sizing.md: fits with little to spare
        (0.98, "auto", False),  # bf16 KV (5 GiB at 16k) is what does not fit: fp8 KV is needed
        (0.95, "fp8", False),  # weights 69 GiB + overhead 5.7 GiB leave too little at 0.95
        (0.90, "fp8", False),
    ],
)
def test_worked_check_70b_fp8_one_h100_16k(utilization: float, kv_dtype: str, fits: bool) -> None:
    case = next(c for c in CASES if c["model"].endswith("Llama-3.1-70B-Instruct-FP8"))
    facts = facts_of(case)
    spec = _spec(
        gpu={"type": "h100", "count": 1, "memoryUtilization": utilization},
        context={"maxModelLen": 16384, "kvCacheDtype": kv_dtype},
    )
    result = size(facts, spec, default_inventory())
    assert result.fits is fits, result.message
    # FP8 70B ≈ 67.7 GiB of weights (sizing.md, derived): embeddings and lm_head stay bf16.
    assert (result.total_weight_bytes or 0) / GIB == pytest.approx(67.7, abs=0.1)
    if fits:
        spare = (result.gpu_memory_gib or 0) - (result.per_gpu_gib or 0)
        assert 0 <= spare < 3
    else:
        assert "maxModelLen 16384" in result.message or "needs" in result.message
