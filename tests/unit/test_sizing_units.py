"""Sizing building blocks: KV formula, quantization, weights, catalogue, refusals (tables)."""

from __future__ import annotations

from typing import Any

import pytest

from kubellm.api.v1alpha1 import LLMDeploymentSpec
from kubellm.errors import SpecError
from kubellm.facts import Architecture, ModelFacts, QuantizationConfig, WeightFile
from kubellm.sizing import (
    Inventory,
    NodePool,
    Quant,
    default_inventory,
    gpu_supports,
    kv_bytes_per_token,
    lookup_gpu,
    resolve_quant,
    size,
)
from kubellm.sizing.memory import kv_heads_from_config
from kubellm.sizing.quant import gguf_type, weight_bytes

GIB = 1024**3


def spec(**kw: Any) -> LLMDeploymentSpec:
    return LLMDeploymentSpec.model_validate({"model": {"repo": "x/y"}, **kw})


from archs import (  # noqa: E402
    DEEPSEEK_V3,
    FALCON_7B_MQA,
    FALCON_40B,
    GEMMA2_9B,
    LLAMA_8B,
    LLAMA_70B,
    LLAMA_405B,
    QWEN2_1_5B,
)


@pytest.mark.parametrize(
    ("arch", "kv_dtype", "tp", "pp", "expected"),
    [
        (LLAMA_8B, "auto", 1, 1, 131_072),
        (LLAMA_70B, "auto", 1, 1, 327_680),
        (LLAMA_405B, "auto", 1, 1, 516_096),
        (GEMMA2_9B, "auto", 1, 1, 344_064),  # head_dim from config, not hidden/heads
        (FALCON_40B, "auto", 1, 1, 122_880),
        (FALCON_7B_MQA, "auto", 1, 1, 8_192),  # multi_query: one KV head
        (DEEPSEEK_V3, "auto", 1, 1, 70_272),  # MLA: 61 x (512 + 64) x 2
        (DEEPSEEK_V3, "auto", 8, 1, 70_272),  # MLA is replicated on every TP rank
        (DEEPSEEK_V3, "fp8", 1, 1, 35_136),
        (LLAMA_70B, "fp8", 1, 1, 163_840),  # fp8 KV halves
        (LLAMA_70B, "auto", 4, 1, 81_920),  # GQA: 8 KV heads split over 4 ranks
        (LLAMA_70B, "auto", 8, 1, 40_960),
        (QWEN2_1_5B, "auto", 4, 1, 14_336),  # tp 4 > 2 KV heads: replicated, not split
        (LLAMA_70B, "auto", 8, 3, 40_960 * 27 // 80),  # pp: ceil(80/3) = 27 layers per stage
    ],
)
def test_kv_bytes_per_token(
    arch: Architecture, kv_dtype: str, tp: int, pp: int, expected: int
) -> None:
    assert kv_bytes_per_token(arch, kv_dtype, tp=tp, pp=pp) == expected


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"num_attention_heads": 64, "num_key_value_heads": 8}, 8),
        ({"num_attention_heads": 128, "num_kv_heads": 8}, 8),  # Falcon-40B
        ({"num_attention_heads": 71, "multi_query": True}, 1),  # Falcon-7B
        ({"num_attention_heads": 32}, 32),  # plain multi-head attention
    ],
)
def test_kv_heads_from_config(config: dict[str, Any], expected: int) -> None:
    assert kv_heads_from_config(config) == expected


def facts(arch: Architecture = LLAMA_70B, **kw: Any) -> ModelFacts:
    return ModelFacts(repo=kw.pop("repo", "org/model"), architecture=arch, **kw)


AWQ = QuantizationConfig(method="awq", bits=4, group_size=128)
FP8_QC = QuantizationConfig(method="fp8")


@pytest.mark.parametrize(
    ("quantization", "the_facts", "method", "from_checkpoint"),
    [
        ("auto", facts(), "none", True),
        ("auto", facts(Architecture(**{**LLAMA_70B.__dict__, "quantization": AWQ})), "awq", True),
        ("auto", facts(weight_files=(WeightFile("m-Q4_K_M.gguf", 1),)), "gguf", True),
        ("fp8", facts(), "fp8", False),  # on the fly
        (
            "fp8",
            facts(Architecture(**{**LLAMA_70B.__dict__, "quantization": FP8_QC})),
            "fp8",
            True,
        ),
        ("bitsandbytes", facts(), "bitsandbytes", False),
        ("none", facts(), "none", True),
    ],
)
def test_resolve_quant(
    quantization: str, the_facts: ModelFacts, method: str, from_checkpoint: bool
) -> None:
    q = resolve_quant(spec(quantization=quantization), the_facts)
    assert (q.method, q.from_checkpoint) == (method, from_checkpoint)


@pytest.mark.parametrize(
    ("quantization", "the_facts", "match"),
    [
        ("awq", facts(), "pre-quantized checkpoint"),
        ("gptq", facts(), "pre-quantized checkpoint"),
        ("gguf", facts(), "needs a .gguf file"),
        ("none", facts(Architecture(**{**LLAMA_70B.__dict__, "quantization": AWQ})), "already"),
        ("fp8", facts(Architecture(**{**LLAMA_70B.__dict__, "quantization": AWQ})), "awq-quant"),
    ],
)
def test_resolve_quant_refuses(quantization: str, the_facts: ModelFacts, match: str) -> None:
    with pytest.raises(SpecError, match=match) as err:
        resolve_quant(spec(quantization=quantization), the_facts)
    assert err.value.field == "spec.quantization"


def test_gguf_q4_k_m_70b_is_about_43_gb() -> None:
    f = facts(
        parameters=70_600_000_000,
        weight_files=(WeightFile("Meta-Llama-3.1-70B-Instruct-Q4_K_M.gguf"),),
    )
    q = resolve_quant(spec(), f)
    assert (q.method, q.gguf_type) == ("gguf", "Q4_K_M")
    assert weight_bytes(f, spec(), q) / 1e9 == pytest.approx(43.1, abs=0.3)
    # The file's own size wins when known; the chosen file among several variants:
    f2 = facts(
        parameters=70_600_000_000,
        weight_files=(
            WeightFile("m-Q4_K_M.gguf", 43_100_000_000),
            WeightFile("m-Q8_0.gguf", 75_000_000_000),
        ),
    )
    s2 = spec(model={"repo": "x/y", "file": "m-Q8_0.gguf"})
    assert weight_bytes(f2, s2, resolve_quant(s2, f2)) == 75_000_000_000
    # No file chosen: the Q4_K_M variant, like kubellm.modelinfo (which downloads that one).
    q2 = resolve_quant(spec(), f2)
    assert (q2.gguf_type, weight_bytes(f2, spec(), q2)) == ("Q4_K_M", 43_100_000_000)


def test_gguf_facts_as_modelinfo_records_them() -> None:
    """modelinfo sets quantization_config = gguf with the type, and only the chosen files."""
    qc = QuantizationConfig(method="gguf", bits=4.8944, raw={"type": "Q4_K_M"})
    f = ModelFacts(
        repo="org/m-GGUF",
        architecture=Architecture(quantization=qc),  # GGUF repos often have no config.json
        weight_bytes=4_920_000_000,
        weight_files=(WeightFile("m-Q4_K_M.gguf", 4_920_000_000),),
    )
    q = resolve_quant(spec(), f)
    assert (q.method, q.gguf_type, q.from_checkpoint) == ("gguf", "Q4_K_M", True)
    r = size(f, spec(context={"maxModelLen": 8192}), default_inventory())
    assert r.fits and r.total_weight_bytes == 4_920_000_000
    assert "architecture unknown" in r.message


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("a-Q4_K_M.gguf", "Q4_K_M"),
        ("b.q8_0.gguf", "Q8_0"),
        ("c-Q5_K_M-00001-of-00002.gguf", "Q5_K_M"),
        ("d-f16.gguf", "F16"),
        ("e.gguf", None),
    ],
)
def test_gguf_type(name: str, kind: str | None) -> None:
    assert gguf_type(name) == kind


def test_awq_70b_fits_one_h100_with_moderate_context() -> None:
    arch = Architecture(**{**LLAMA_70B.__dict__, "quantization": AWQ})
    f = facts(arch, parameters=70_600_000_000)
    w = weight_bytes(f, spec(), resolve_quant(spec(), f)) / GIB
    assert 35 <= w <= 37.5  # hugging-quants card: "around 35 GiB"; embeddings stay fp16
    r = size(f, spec(gpu={"type": "h100"}, context={"maxModelLen": 32768}), default_inventory())
    assert (r.fits, r.gpus_per_replica, r.max_model_len) == (True, 1, 32768), r.message


def test_on_the_fly_fp8_halves_linear_layers_only() -> None:
    f = facts(weight_bytes=int(131.42 * GIB))
    w = weight_bytes(f, spec(quantization="fp8"), resolve_quant(spec(quantization="fp8"), f))
    assert w / GIB == pytest.approx(67.7, abs=0.1)


def test_weights_unknown_asks_for_parameters() -> None:
    with pytest.raises(SpecError) as err:
        size(facts(), spec(), default_inventory())
    assert err.value.field == "spec.model.parameters"
    # Declared parameters are enough: 8B bf16 = 16 GB.
    r = size(facts(LLAMA_8B), spec(model={"repo": "x/y", "parameters": "8B"}), default_inventory())
    assert r.total_weight_bytes == 16_000_000_000 and r.fits


@pytest.mark.parametrize(
    ("gpu", "quant", "ok", "why"),
    [
        ("h100", Quant("fp8", 8, True), True, "natively"),
        ("l4", Quant("fp8", 8, True), True, "natively"),  # Ada 8.9
        ("a100-80gb", Quant("fp8", 8, True), True, "weight-only"),  # FP8 Marlin
        ("v100", Quant("fp8", 8, True), False, "needs 7.5"),
        ("t4", Quant("awq", 4.16, True), True, "without the Marlin"),
        ("t4", Quant("gptq", 4.16, True), True, "without the Marlin"),
        ("t4", Quant("none", 16, True), True, "fp16"),  # no bf16 before Ampere
        ("v100", Quant("gptq", 4.16, True), False, "vllm does not run"),  # vLLM needs 7.5 now
        ("v100", Quant("none", 16, True), False, "needs 7.5"),
        ("a10g", Quant("gptq", 4.16, True), True, "natively"),
        ("a100", Quant("mxfp4", 4.25, True), True, "Marlin"),
    ],
)
def test_gpu_supports(gpu: str, quant: Quant, ok: bool, why: str) -> None:
    g = lookup_gpu(gpu)
    assert g is not None
    result, text = gpu_supports(g, quant)
    assert result is ok and why in text


def test_tgi_fp8_needs_hopper() -> None:
    g = lookup_gpu("l40s")
    assert g is not None
    assert gpu_supports(g, Quant("fp8", 8, True), runtime="tgi")[0] is False


@pytest.mark.parametrize(
    ("name", "product"),
    [
        ("h100", "NVIDIA-H100-80GB-HBM3"),
        ("H100", "NVIDIA-H100-80GB-HBM3"),
        ("nvidia-h100-80gb-hbm3", "NVIDIA-H100-80GB-HBM3"),
        ("a100", "NVIDIA-A100-SXM4-40GB"),
        ("a100-80gb", "NVIDIA-A100-SXM4-80GB"),
        ("NVIDIA-A100-PCIe-40GB", "NVIDIA-A100-PCIE-40GB"),
        ("NVIDIA-A100-SXM4-40GB-MIG-1g.5gb", "NVIDIA-A100-SXM4-40GB"),
        ("NVIDIA-L4-SHARED", "NVIDIA-L4"),
        ("nvidia-tesla-t4", "Tesla-T4"),
        ("l4", "NVIDIA-L4"),
    ],
)
def test_lookup_gpu(name: str, product: str) -> None:
    g = lookup_gpu(name)
    assert g is not None and g.product == product


def test_unknown_gpu_type_is_a_spec_error_listing_known_types() -> None:
    with pytest.raises(SpecError) as err:
        size(
            facts(LLAMA_8B, weight_bytes=16 * 10**9),
            spec(gpu={"type": "h9000"}),
            default_inventory(),
        )
    assert err.value.field == "spec.gpu.type"
    assert "NVIDIA-L4" in str(err.value) and "h100" in str(err.value)


def l4_nodes(nodes: int = 1, per_node: int = 4) -> Inventory:
    return Inventory(pools=(NodePool("NVIDIA-L4", per_node, nodes),), source="file:test")


def test_known_type_absent_from_inventory_does_not_fit_and_names_the_inventory() -> None:
    r = size(facts(LLAMA_8B, weight_bytes=16 * 10**9), spec(gpu={"type": "h100"}), l4_nodes())
    assert not r.fits and r.reason == "DoesNotFit"
    assert "NVIDIA-H100-80GB-HBM3" in r.message and "NVIDIA-L4" in r.message


def test_nothing_fits_says_why_with_numbers() -> None:
    r = size(facts(weight_bytes=int(131.42 * GIB)), spec(), l4_nodes(1, 4))
    assert not r.fits and r.reason == "DoesNotFit"
    assert "needs 14" in r.message and "the largest node offers 4 x 22.5 GiB" in r.message
    assert len(r.considered) >= 3  # tp1, tp2, tp4 each with its per-GPU need
    assert "split across" not in r.message  # one node: no multi-node option was tried


def test_nothing_fits_even_across_nodes_says_so() -> None:
    r = size(facts(weight_bytes=int(131.42 * GIB)), spec(), l4_nodes(4, 1))
    assert not r.fits and r.reason == "DoesNotFit"
    assert "the largest node offers 1 x 22.5 GiB" in r.message
    # the widest pipeline-parallel option it tried, and by how much it misses
    assert "split across 4 nodes (4 x NVIDIA-L4 (tp1 x pp4)) it would need 3" in r.message
    assert r.message.endswith("GiB per GPU of 20.2 usable")


def test_explicit_max_model_len_too_big_is_refused_with_numbers() -> None:
    f = facts(LLAMA_8B, weight_bytes=int(14.96 * GIB))
    r = size(f, spec(context={"maxModelLen": 131072}), l4_nodes(1, 1))
    assert not r.fits
    assert "maxModelLen 131072 x 1 needs 16.00 GiB KV" in r.message
    assert "the largest that fits there is" in r.message
    with pytest.raises(SpecError, match="max_position_embeddings"):
        size(f, spec(context={"maxModelLen": 262144}), l4_nodes())


def test_auto_max_model_len_is_largest_multiple_that_fits_concurrency() -> None:
    f = facts(LLAMA_8B, weight_bytes=int(14.96 * GIB))
    r1 = size(f, spec(gpu={"type": "l4", "count": 1}), l4_nodes(1, 1))
    r4 = size(f, spec(gpu={"type": "l4", "count": 1}, context={"concurrency": 4}), l4_nodes(1, 1))
    assert r1.fits and r4.fits and r1.max_model_len and r4.max_model_len
    assert r1.max_model_len % 256 == 0 and r4.max_model_len % 256 == 0
    assert r4.max_model_len <= r1.max_model_len // 4 + 256
    assert (r1.per_gpu_gib or 0) <= (r1.gpu_memory_gib or 0)
    # Long enough context is capped at max_position_embeddings on a roomy GPU.
    big = size(f, spec(gpu={"type": "h100"}), default_inventory())
    assert big.max_model_len == 131072


def test_405b_fp8_needs_more_than_one_node_pipeline_parallel() -> None:
    f = facts(LLAMA_405B, parameters=405_800_000_000)
    inv = Inventory(pools=(NodePool("NVIDIA-L40S", 8, 4),), source="file:test")
    r = size(f, spec(quantization="fp8"), inv)
    assert r.fits, r.message
    assert r.tensor_parallel_size == 8 and (r.pipeline_parallel_size or 0) >= 2
    assert (r.nodes_per_replica or 0) >= 2 and "across" in r.message
    # The same model fits one node of 8 x H100 (Meta's published FP8 deployment).
    h = size(f, spec(quantization="fp8"), Inventory(pools=(NodePool("NVIDIA-H100-80GB-HBM3", 8),)))
    assert (h.gpus_per_replica, h.pipeline_parallel_size) == (8, 1)
    # TGI has no pipeline parallelism: refused on L40S nodes.
    t = size(f, spec(quantization="fp8"), inv, runtime="tgi")
    assert not t.fits


def test_explicit_count_is_respected_and_checked() -> None:
    f = facts(LLAMA_8B, weight_bytes=int(14.96 * GIB))
    r = size(f, spec(gpu={"type": "l4", "count": 2}), l4_nodes(1, 4))
    assert (r.gpus_per_replica, r.tensor_parallel_size) == (2, 2)
    with pytest.raises(SpecError, match=r"spec\.gpu\.count"):
        size(f, spec(gpu={"count": 6}), l4_nodes(2, 4))
    # 16 = tp 4 x pp 4 on 4-GPU nodes.
    r16 = size(f, spec(gpu={"count": 16}), l4_nodes(4, 4))
    assert (r16.tensor_parallel_size, r16.pipeline_parallel_size, r16.nodes_per_replica) == (
        4,
        4,
        4,
    )


def test_busy_gpus_are_not_chosen() -> None:
    f = facts(weight_bytes=int(131.42 * GIB))
    busy = Inventory(pools=(NodePool("NVIDIA-H100-80GB-HBM3", 8, 1, free_gpus_per_node=(2,)),))
    r = size(f, spec(), busy)
    assert not r.fits and r.reason == "GpusBusy" and "only 2" in r.message


def h100_pool(*free: int) -> Inventory:
    return Inventory(pools=(NodePool("NVIDIA-H100-80GB-HBM3", 8, len(free),
                                     free_gpus_per_node=free),), source="cluster")


def test_all_replicas_must_fit_the_free_gpus() -> None:
    """spec.replicas x GPUs per replica is checked, each replica on one node."""
    f = facts(weight_bytes=int(131.42 * GIB))
    two = spec(replicas=2, gpu={"type": "h100", "count": 8})
    assert size(f, two, h100_pool(8, 8)).fits
    busy = size(f, two, h100_pool(8, 4))
    assert not busy.fits and busy.reason == "GpusBusy", busy.message
    assert "x 2 replicas" in busy.message and "only 12 of those GPUs are free" in busy.message
    assert "free per node: 8, 4" in busy.message
    # 12 free GPUs but no whole node for a second 8-GPU replica: still busy, not "fits"
    assert not size(f, two, h100_pool(6, 6)).fits
    # three replicas on two nodes cannot fit even when everything is free: DoesNotFit
    three = size(f, spec(replicas=3, gpu={"type": "h100", "count": 8}), h100_pool(8, 8))
    assert not three.fits and three.reason == "DoesNotFit"
    assert "3 replicas" in three.message and "2 x 8 x NVIDIA-H100" in three.message
    # 4-GPU replicas pack two per node
    four = spec(replicas=4, gpu={"type": "h100", "count": 4})
    assert size(f, four, h100_pool(8, 8)).fits
    assert size(f, four, h100_pool(8, 7)).reason == "GpusBusy"
    # replicas 0 needs nothing now; the catalogue says which GPUs exist, not how many
    assert size(f, spec(replicas=0, gpu={"type": "h100", "count": 8}), h100_pool(0, 0)).fits
    assert size(f, spec(replicas=5, gpu={"type": "h100", "count": 8}), default_inventory()).fits


def test_unknown_architecture_needs_explicit_max_model_len() -> None:
    f = ModelFacts(repo="org/mystery", weight_bytes=10 * GIB)
    with pytest.raises(SpecError) as err:
        size(f, spec(), default_inventory())
    assert err.value.field == "spec.context.maxModelLen"
    r = size(f, spec(context={"maxModelLen": 4096}), l4_nodes(1, 1))
    assert r.fits and "architecture unknown" in r.message


def test_unsupported_kernel_is_refused() -> None:
    arch = Architecture(**{**LLAMA_8B.__dict__, "quantization": FP8_QC})
    f = facts(arch, weight_bytes=9 * GIB)
    r = size(f, spec(), Inventory(pools=(NodePool("Tesla-V100-SXM2-32GB", 8),)))
    assert not r.fits and r.reason == "Unsupported" and "compute capability 7.0" in r.message


def test_auto_prefers_fewest_gpus_then_smaller_memory_then_cost() -> None:
    f = facts(LLAMA_8B, weight_bytes=int(14.96 * GIB))
    inv = Inventory(
        pools=(
            NodePool("NVIDIA-H100-80GB-HBM3", 8),
            NodePool("NVIDIA-A10G", 4),
            NodePool("NVIDIA-L4", 4),
        )
    )
    r = size(f, spec(), inv)
    assert (r.gpu_type, r.gpus_per_replica) == ("NVIDIA-L4", 1)  # L4 cheaper than A10G
    r2 = size(f, spec(context={"maxModelLen": 65536}), inv)
    assert (r2.gpu_type, r2.gpus_per_replica) == ("NVIDIA-H100-80GB-HBM3", 1)
    assert r.to_status().dump()["gpuType"] == "NVIDIA-L4"
