"""Model facts: what kubellm knows about a model, whatever the source (Hub, offline cache, spec).

Pure data. ``kubellm.modelinfo`` fills it from huggingface_hub; the licence engine and the sizer
read it. Every field may be unknown (None); ``declared`` lists the fields that came from the
LLMDeployment's ``spec.model`` rather than from the Hub, so status can say so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class QuantizationConfig:
    """The checkpoint's ``quantization_config`` (config.json), normalised.

    ``method`` is the lower-case ``quant_method`` (awq, gptq, fp8, compressed-tensors,
    bitsandbytes, mxfp4, ...). ``bits`` is the weight bit width when the config says it.
    """

    method: str
    bits: float | None = None
    group_size: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class Architecture:
    """The shape of the network, from config.json (text_config for multimodal models)."""

    model_type: str | None = None
    architectures: tuple[str, ...] = ()
    num_hidden_layers: int | None = None
    num_attention_heads: int | None = None
    num_key_value_heads: int | None = None
    head_dim: int | None = None
    hidden_size: int | None = None
    intermediate_size: int | None = None
    vocab_size: int | None = None
    max_position_embeddings: int | None = None
    torch_dtype: str | None = None
    quantization: QuantizationConfig | None = None
    # Mixture of experts (all experts are resident in memory).
    num_experts: int | None = None
    num_experts_per_tok: int | None = None
    # Multi-head latent attention (DeepSeek V2/V3/R1).
    kv_lora_rank: int | None = None
    qk_rope_head_dim: int | None = None
    # Multimodal (vision towers): relevant for licences with multimodal-only clauses.
    multimodal: bool = False

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank is not None and self.qk_rope_head_dim is not None

    @property
    def effective_head_dim(self) -> int | None:
        if self.head_dim:
            return self.head_dim
        if self.hidden_size and self.num_attention_heads:
            return self.hidden_size // self.num_attention_heads
        return None

    @property
    def effective_kv_heads(self) -> int | None:
        if self.num_key_value_heads:
            return self.num_key_value_heads
        return self.num_attention_heads


@dataclass(frozen=True)
class BaseModelRef:
    """One link of the ``base_model`` chain and the licence it carries (if it could be resolved)."""

    repo: str
    relation: str = "finetune"  # finetune | quantized | merge | adapter | unknown
    license: str | None = None
    license_name: str | None = None
    resolved: bool = False  # True when its card was read; else only the repo id is known


@dataclass(frozen=True)
class WeightFile:
    path: str
    size: int | None = None


@dataclass(frozen=True)
class Claim:
    """One result the model card's ``model-index`` claims (as published; not measured here)."""

    benchmark: str  # the dataset's name (or type), e.g. "MMLU", "gsm8k"
    metric: str  # the metric's name (or type), e.g. "accuracy", "pass@1"
    value: float
    task: str | None = None  # e.g. "text-generation"
    split: str | None = None
    source: str | None = None  # who reported it, e.g. "Open LLM Leaderboard"
    url: str | None = None
    verified: bool = False  # the Hub's "verified" flag (evaluated by Hugging Face)


@dataclass(frozen=True)
class ModelFacts:
    """Everything kubellm knows about one model at one revision."""

    repo: str
    revision: str = "main"
    sha: str | None = None  # the resolved 40-hex commit, when known
    license: str | None = (
        None  # Hub licence id (card ``license``), e.g. apache-2.0, llama3.1, other
    )
    license_name: str | None = None  # card ``license_name`` when license is ``other``
    license_link: str | None = None
    tags: tuple[str, ...] = ()
    gated: str | None = None  # None/"" = not gated, "auto" or "manual"
    eu_disallowed: bool = False  # card ``extra_gated_eu_disallowed``
    base_models: tuple[BaseModelRef, ...] = ()
    datasets: tuple[str, ...] = ()
    claims: tuple[Claim, ...] = ()  # the card's model-index results
    architecture: Architecture | None = None
    weight_bytes: int | None = None
    parameters: int | None = None
    weight_files: tuple[WeightFile, ...] = ()  # the files of the checkpoint (for the cache key)
    library_name: str | None = None
    pipeline_tag: str | None = None
    source: str = "hub"  # hub | cache | declared
    # The endpoint a source other than Hugging Face read these facts from when it was configured
    # (MODELSCOPE_ENDPOINT, a mirror): the download Job downloads from the same place. Hugging
    # Face's is the operator's HF_ENDPOINT (planner ``hub_endpoint``).
    endpoint: str | None = None
    declared: tuple[str, ...] = ()  # field names filled from spec.model
    # Why the repo's files could not be read although its public metadata could (a gated repo
    # without a usable token). The licence can still be decided; sizing and serving cannot.
    access_error: str | None = None
    # Why the model card's metadata (README.md front matter) could not be read, when it could not:
    # its licence is then unknown, and the licence decision says why.
    card_error: str | None = None

    @property
    def is_gguf(self) -> bool:
        return any(f.path.endswith(".gguf") for f in self.weight_files)
