"""status of an LLMDeployment, written by the operator only: conditions, the licence decision,
the GPU sizing breakdown, the cache and evaluation in use, and the printer-column fields."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from kubellm.api.v1alpha1.cache import CacheStatus
from kubellm.api.v1alpha1.common import Decision, LicenseClass, Openness, _Model
from kubellm.api.v1alpha1.evaluation import EvaluationStatus
from kubellm.api.v1alpha1.serving import runtime_names


class Condition(_Model):
    """A Kubernetes condition (metav1.Condition)."""

    type: str = Field(description="LicenseApproved, Sized, CacheReady, Available or Ready.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(description="CamelCase reason.")
    message: str = Field(default="", description="Human-readable explanation.")
    last_transition_time: str = Field(description="When the status last changed (RFC 3339).")
    observed_generation: int | None = Field(
        default=None, description="The .metadata.generation the condition was computed for."
    )


class LicenseReason(_Model):
    """One machine-readable reason of a licence decision."""

    rule: str = Field(description="The rule that fired, e.g. commercialUse, jurisdiction.")
    effect: Literal["deny", "warn", "allow", "info"] = Field(description="What the rule did.")
    message: str = Field(description="What the rule found, with the fact it used.")
    fact: str | None = Field(default=None, description="The fact and its source.")


class LicenseDecisionStatus(_Model):
    """The licence decision as recorded in status."""

    id: str | None = Field(default=None, description="Effective Hub licence id.")
    name: str | None = Field(default=None, description="license_name for license=other.")
    class_: LicenseClass = Field(alias="class", description="Licence class.")
    decision: Decision = Field(description="Allowed, AllowedWithWarnings or Denied.")
    allowed: bool = Field(description="Whether serving pods may run.")
    openness: Openness = Field(default="unknown", description="open-source or open-weight.")
    policy: str | None = Field(default=None, description="The LicensePolicy that decided.")
    reasons: list[LicenseReason] = Field(default_factory=list, description="Why.")
    obligations: list[str] = Field(
        default_factory=list, description="Attribution strings, notices, use policies to honour."
    )
    declared: bool = Field(
        default=False, description="True when the licence came from spec.model, not the Hub."
    )


class SizingStatus(_Model):
    """The GPU sizing breakdown (GiB per GPU unless named otherwise)."""

    fits: bool = Field(description="Whether a configuration fits the inventory.")
    gpu_type: str | None = Field(default=None, description="Chosen nvidia.com/gpu.product.")
    gpus_per_replica: int | None = Field(default=None, description="GPUs per serving replica.")
    tensor_parallel_size: int | None = Field(default=None, description="Tensor parallel degree.")
    pipeline_parallel_size: int | None = Field(default=None, description="Pipeline stages (nodes).")
    max_model_len: int | None = Field(default=None, description="Context length to serve.")
    concurrency: int | None = Field(default=None, description="Sequences of maxModelLen that fit.")
    quantization: str | None = Field(default=None, description="Effective quantization.")
    weights_gi_b: float | None = Field(
        default=None, alias="weightsGiB", description="Weights per GPU."
    )
    kv_cache_gi_b: float | None = Field(
        default=None, alias="kvCacheGiB", description="KV cache per GPU."
    )
    overhead_gi_b: float | None = Field(
        default=None, alias="overheadGiB", description="Activations, CUDA context per GPU."
    )
    per_gpu_gi_b: float | None = Field(
        default=None, alias="perGpuGiB", description="Total needed per GPU."
    )
    gpu_memory_gi_b: float | None = Field(
        default=None, alias="gpuMemoryGiB", description="Usable memory per GPU."
    )
    message: str | None = Field(default=None, description="The sizing explained in one sentence.")


class CardClaim(_Model):
    """One result the model card's model-index claims: as published, not measured by kubellm."""

    benchmark: str = Field(description="Benchmark (the dataset's name), e.g. MMLU.")
    metric: str = Field(description="Metric name, e.g. accuracy, pass@1.")
    value: float = Field(description="The claimed value, as the card states it.")
    task: str | None = Field(default=None, description="Task, e.g. Text Generation.")
    split: str | None = Field(default=None, description="Dataset split.")
    source: str | None = Field(default=None, description="Who reported it.")
    url: str | None = Field(default=None, description="Where it was reported.")
    verified: bool = Field(default=False, description="Verified by Hugging Face.")


class LLMDeploymentStatus(_Model):
    """Observed state, written by the operator only."""

    observed_generation: int | None = Field(default=None, description="Last reconciled generation.")
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Per-stage conditions: LicenseApproved, Sized, CacheReady, Available, Ready.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    )
    license: LicenseDecisionStatus | None = Field(default=None, description="Licence decision.")
    sizing: SizingStatus | None = Field(default=None, description="GPU sizing breakdown.")
    cache: CacheStatus | None = Field(default=None, description="The shared model cache in use.")
    evaluation: EvaluationStatus | None = Field(
        default=None, description="The last evaluation (spec.evaluation)."
    )
    claims: list[CardClaim] = Field(
        default_factory=list, max_length=50,
        description="What the model card's model-index claims (benchmark results as published, "
        "at most 50; not measured by kubellm: compare with evaluation).",
    )
    runtime: str | None = Field(
        default=None,
        description=f"Effective runtime ({' or '.join(runtime_names()[1:])}).",
    )
    resolved_revision: str | None = Field(default=None, description="Commit sha being served.")
    endpoint: str | None = Field(
        default=None, description="In-cluster OpenAI-compatible base URL (…/v1)."
    )
    replicas: int | None = Field(default=None, description="Serving pods (scale subresource).")
    ready_replicas: int | None = Field(default=None, description="Ready serving pods.")
    selector: str | None = Field(default=None, description="Label selector of the serving pods.")
    gpus: int | None = Field(default=None, description="GPUs per replica (printer column).")
    ready: str | None = Field(default=None, description="Ready condition status (printer column).")
    reason: str | None = Field(default=None, description="Ready condition reason (printer column).")
