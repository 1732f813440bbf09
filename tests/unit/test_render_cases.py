"""Inputs for the renderer tests, built directly (no Hub, no sizer): models, GPUs, sizings.

Numbers are the real checkpoints' (safetensors byte sizes from the Hub file listings, rounded
where noted); the sizings are plausible, not the sizer's: the renderer only renders them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubellm.api.v1alpha1 import LLMDeploymentSpec
from kubellm.cache import CacheRef, plan_cache
from kubellm.facts import Architecture, ModelFacts, QuantizationConfig, WeightFile
from kubellm.runtimes import RenderContext
from kubellm.sizing.memory import overhead_gib
from kubellm.sizing.types import GpuType, Quant, SizingResult

IMAGE = "ghcr.io/kubellm/kubellm:0.1.0"
SHA_8B = "0e9e39f249a16976918f6564b8830bc894c89659"
SHA_70B = "6f6073b423013f6a7d4d9f39144961bfbfbc386b"
SHA_AWQ = "2123003760781134cfc31124aa6560a45b491fdf"
SHA_GPTQ = "b0b0e4a1a4aab2bfc1c2a4a7f8bcd4e1b8c2d0f1"
SHA_GGUF = "bf5b95e96dac0462e2a09145ec66cae9a3f12067"
SHA_MISTRAL = "0000000000000000000000000000000000000007"  # placeholder commit
SHA_GEMMA3 = "0000000000000000000000000000000000000003"  # placeholder commit

L4 = GpuType("NVIDIA-L4", 24.0, (8, 9), aliases=("l4",))
L40S = GpuType("NVIDIA-L40S", 48.0, (8, 9), aliases=("l40s",))
A100_80 = GpuType(
    "NVIDIA-A100-SXM4-80GB",
    80.0,
    (8, 0),
    aliases=("a100-80gb",),
    products=("NVIDIA-A100-80GB-PCIe",),
)
H100 = GpuType("NVIDIA-H100-80GB-HBM3", 80.0, (9, 0), aliases=("h100",))
T4 = GpuType("Tesla-T4", 16.0, (7, 5), aliases=("t4",))

BF16 = Quant("none", 16.0, from_checkpoint=False)
FP8_ON_THE_FLY = Quant("fp8", 8.0, from_checkpoint=False)
AWQ = Quant("awq", 4.16, from_checkpoint=True)
GPTQ = Quant("gptq", 4.16, from_checkpoint=True)
GGUF_Q4 = Quant("gguf", 4.8944, from_checkpoint=True, gguf_type="Q4_K_M")

LLAMA_ARCH = Architecture(
    model_type="llama", num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
    hidden_size=4096, max_position_embeddings=131072, torch_dtype="bfloat16",
)  # fmt: skip


def llama_8b() -> ModelFacts:
    files = (
        WeightFile("model-00001-of-00004.safetensors", 4976698672),
        WeightFile("model-00002-of-00004.safetensors", 4999802720),
        WeightFile("model-00003-of-00004.safetensors", 4915916176),
        WeightFile("model-00004-of-00004.safetensors", 1168138808),
        WeightFile("original/consolidated.00.pth", 16060617592),  # Meta's duplicate: not cached
    )
    return ModelFacts(
        repo="meta-llama/Llama-3.1-8B-Instruct", sha=SHA_8B, license="llama3.1", gated="manual",
        architecture=LLAMA_ARCH, weight_bytes=16060556376, parameters=8030261248,
        weight_files=files,
    )  # fmt: skip


def llama_70b() -> ModelFacts:
    files = tuple(
        WeightFile(f"model-{i:05d}-of-00030.safetensors", 4_700_000_000) for i in range(1, 31)
    )  # 30 shards, ~141 GB in all (rounded)
    return ModelFacts(
        repo="meta-llama/Llama-3.3-70B-Instruct", sha=SHA_70B, license="llama3.3", gated="manual",
        weight_bytes=141_000_000_000, parameters=70_553_706_496, weight_files=files,
    )  # fmt: skip


def llama_70b_awq() -> ModelFacts:
    files = tuple(
        WeightFile(f"model-{i:05d}-of-00009.safetensors", 4_400_000_000) for i in range(1, 10)
    )
    return ModelFacts(
        repo="hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4", sha=SHA_AWQ,
        license="llama3.1", weight_bytes=39_600_000_000, weight_files=files,
        architecture=Architecture(quantization=QuantizationConfig("awq", 4, 128)),
    )  # fmt: skip


def qwen_7b_gptq() -> ModelFacts:
    files = (
        WeightFile("model-00001-of-00002.safetensors", 3_990_000_000),
        WeightFile("model-00002-of-00002.safetensors", 1_590_000_000),
    )
    return ModelFacts(
        repo="Qwen/Qwen2.5-7B-Instruct-GPTQ-Int4", sha=SHA_GPTQ, license="apache-2.0",
        weight_bytes=5_580_000_000, weight_files=files,
        architecture=Architecture(quantization=QuantizationConfig("gptq", 4, 128)),
    )  # fmt: skip


def llama_8b_gguf() -> ModelFacts:
    files = (
        WeightFile("Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf", 4920734016),
        WeightFile("Meta-Llama-3.1-8B-Instruct-Q8_0.gguf", 8540770560),
        WeightFile("Meta-Llama-3.1-8B-Instruct-f32.gguf", 32_130_000_000),
    )
    return ModelFacts(
        repo="bartowski/Meta-Llama-3.1-8B-Instruct-GGUF", sha=SHA_GGUF, license="llama3.1",
        weight_bytes=4920734016, weight_files=files,
    )  # fmt: skip


def mistral_7b() -> ModelFacts:
    """Mistral's layout: the HF shards and, beside them, consolidated.safetensors (the same
    weights in Mistral's own format). Sizes rounded."""
    files = (
        WeightFile("consolidated.safetensors", 14_500_000_000),
        WeightFile("model-00001-of-00003.safetensors", 4_950_000_000),
        WeightFile("model-00002-of-00003.safetensors", 5_000_000_000),
        WeightFile("model-00003-of-00003.safetensors", 4_550_000_000),
    )
    arch = Architecture(
        model_type="mistral", num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
        head_dim=128, hidden_size=4096, max_position_embeddings=32768, torch_dtype="bfloat16",
    )
    return ModelFacts(
        repo="mistralai/Mistral-7B-Instruct-v0.3", sha=SHA_MISTRAL, license="apache-2.0",
        architecture=arch, weight_bytes=14_500_000_000, weight_files=files,
    )  # fmt: skip


def gemma3_27b() -> ModelFacts:
    """A vision-language model TGI serves without prefill chunking (model_type gemma3; the
    shape is its text_config's). 12 shards, ~54.9 GB in all (rounded)."""
    files = tuple(
        WeightFile(f"model-{i:05d}-of-00012.safetensors", 4_575_000_000) for i in range(1, 13)
    )
    arch = Architecture(
        model_type="gemma3", num_hidden_layers=62, num_attention_heads=32, num_key_value_heads=16,
        head_dim=128, hidden_size=5376, max_position_embeddings=131072, torch_dtype="bfloat16",
        multimodal=True,
    )
    return ModelFacts(
        repo="google/gemma-3-27b-it", sha=SHA_GEMMA3, license="gemma", gated="manual",
        architecture=arch, weight_bytes=54_900_000_000, weight_files=files,
    )  # fmt: skip


def sizing(
    quant: Quant,
    gpu: GpuType,
    *,
    tp: int = 1,
    pp: int = 1,
    nodes: int = 1,
    max_model_len: int = 16384,
    kv: str = "auto",
    weight_bytes: int | None = None,
    fits: bool = True,
    breakdown: bool = False,
) -> SizingResult:
    """``breakdown``: also the per-GPU usable memory and overhead, as the sizer reports them
    (SGLang's --mem-fraction-static is computed from them)."""
    per_gpu = (weight_bytes or 0) / (tp * pp) / 1024**3
    usable = round(gpu.memory_gib * 0.9, 2) if breakdown else None
    overhead = round(overhead_gib(per_gpu), 2) if breakdown else None
    return SizingResult(
        fits=fits, quant=quant, gpu_type=gpu.product, gpus_per_replica=tp * pp,
        tensor_parallel_size=tp, pipeline_parallel_size=pp, nodes_per_replica=nodes,
        max_model_len=max_model_len, kv_cache_dtype=kv,
        memory_utilization=0.9, total_weight_bytes=weight_bytes,
        gpu_memory_gib=usable, overhead_gib=overhead,
        message="test sizing" if fits else "needs 2 x 80 GiB, the cluster has 1",
    )  # fmt: skip


@dataclass(frozen=True)
class Case:
    """One golden case: ``name`` is the golden file stem (<runtime>-<quant>[-variant])."""

    name: str
    runtime: str
    facts: ModelFacts
    quant: Quant
    gpu: GpuType
    spec: dict[str, Any]
    tp: int = 1
    pp: int = 1
    nodes: int = 1  # > 1: one replica across nodes (vLLM: LeaderWorkerSet)
    max_model_len: int = 16384
    kv: str = "auto"
    replicas: int | None = None
    llmd_name: str = "chat"

    def llmd_spec(self) -> LLMDeploymentSpec:
        base: dict[str, Any] = {"model": {"repo": self.facts.repo}, "runtime": self.runtime}
        return LLMDeploymentSpec.model_validate({**base, **self.spec})

    def cache(self) -> CacheRef | None:
        spec = self.llmd_spec()
        if not spec.cache.enabled:
            return None
        return plan_cache("ai", self.facts, self.quant, spec, image=IMAGE)

    def context(self) -> RenderContext:
        spec = self.llmd_spec()
        return RenderContext(
            name=self.llmd_name,
            namespace="ai",
            spec=spec,
            facts=self.facts,
            sizing=sizing(
                self.quant, self.gpu, tp=self.tp, pp=self.pp, nodes=self.nodes,
                max_model_len=self.max_model_len, kv=self.kv,
                weight_bytes=self.facts.weight_bytes, breakdown=self.runtime == "sglang",
            ),
            cache=self.cache(),
            replicas=self.replicas,
            gpu=self.gpu,
        )  # fmt: skip


TOKEN = {"hubTokenSecretRef": {"name": "hf-token"}}
NO_CACHE = {"cache": {"enabled": False}}


def cases() -> list[Case]:
    out: list[Case] = []
    for rt in ("vllm", "tgi", "sglang"):
        out += [
            Case(f"{rt}-bf16", rt, llama_8b(), BF16, L4, {**TOKEN}),
            Case(f"{rt}-bf16-nocache", rt, llama_8b(), BF16, L4, {**TOKEN, **NO_CACHE}),
            Case(
                f"{rt}-bf16-tp4", rt, llama_70b(), BF16, A100_80,
                {**TOKEN, "replicas": 2, "cache": {"storageClassName": "fast-rwx",
                                                   "accessMode": "ReadWriteMany"}},
                tp=4,
            ),
            Case(f"{rt}-fp8", rt, llama_8b(), FP8_ON_THE_FLY, H100, {**TOKEN}, kv="fp8",
                 max_model_len=32768),
            Case(f"{rt}-awq", rt, llama_70b_awq(), AWQ, L40S, {}, max_model_len=8192),
            Case(f"{rt}-gptq", rt, qwen_7b_gptq(), GPTQ, T4, {}, max_model_len=8192),
            Case(f"{rt}-gguf", rt, llama_8b_gguf(), GGUF_Q4, L4, {}, max_model_len=8192),
            Case(f"{rt}-multinode", rt, llama_70b(), BF16, H100, {**TOKEN, "replicas": 2},
                 tp=8, pp=2, nodes=2, max_model_len=8192),
        ]  # fmt: skip
    # TGI only: a shard without prefill chunking (--max-batch-prefill-tokens), and a repo whose
    # consolidated.safetensors TGI downloads too when there is no cache (emptyDir size).
    out += [
        Case("tgi-gemma3", "tgi", gemma3_27b(), BF16, H100, {**TOKEN}),
        Case("tgi-bf16-nocache-consolidated", "tgi", mistral_7b(), BF16, L4, {**NO_CACHE},
             max_model_len=8192),
    ]  # fmt: skip
    return out
