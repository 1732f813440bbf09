"""The LLMDeployment kind: its spec (model, quantization, runtime, sizing inputs, cache,
evaluation and the pass-through pod fields) with the cross-field validators, and the object."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from kubellm.api.v1alpha1.cache import CacheSpec
from kubellm.api.v1alpha1.common import ObjectMeta, Quantization, SecretKeyRef, _Model
from kubellm.api.v1alpha1.corev1 import check_env_var, check_resources, check_toleration
from kubellm.api.v1alpha1.evaluation import EvaluationSpec
from kubellm.api.v1alpha1.model import ModelSpec
from kubellm.api.v1alpha1.serving import (
    MAX_ARGS,
    ContextSpec,
    GpuSpec,
    _refused_arg,
    runtime_names,
)
from kubellm.api.v1alpha1.status import LLMDeploymentStatus


class LLMDeploymentSpec(_Model):
    """The desired state of an LLM serving deployment."""

    model: ModelSpec = Field(description="The model to serve.")
    quantization: Quantization = Field(
        default="auto",
        description=(
            "auto: follow the checkpoint (its quantization_config or GGUF format; none when "
            "unquantized); or an explicit method."
        ),
    )
    runtime: str = Field(
        default="auto",
        description=(
            f"Serving runtime: {', '.join(runtime_names()[1:])}, or auto (chosen by "
            "quantization and support)."
        ),
        json_schema_extra={"enum": list(runtime_names())},
    )
    replicas: int = Field(default=1, ge=0, le=1000, description="Serving replicas.")
    context: ContextSpec = Field(
        default_factory=ContextSpec,
        description="Context and concurrency.",
        json_schema_extra={"default": {}},
    )
    gpu: GpuSpec = Field(
        default_factory=GpuSpec,
        description="GPU type, count and utilization.",
        json_schema_extra={"default": {}},
    )
    cache: CacheSpec = Field(
        default_factory=CacheSpec,
        description="Shared model cache.",
        json_schema_extra={"default": {}},
    )
    hub_token_secret_ref: SecretKeyRef | None = Field(
        default=None,
        description="Secret with a Hugging Face token (needed for gated repos such as meta-llama).",
    )
    served_model_name: str | None = Field(
        default=None,
        description="Name clients use in OpenAI requests (default: the repo id).",
    )
    image: str | None = Field(default=None, description="Override the runtime image.")
    args: list[Annotated[str, Field(max_length=4096)]] = Field(
        default_factory=list,
        max_length=MAX_ARGS,
        description=(
            "Extra runtime arguments, appended after kubellm's: options of the pinned runtime "
            "with their exact long names. Flags that select a model, revision, tokenizer, "
            "source, code or the listening address, and flags kubellm sets from other spec "
            "fields, are refused (NotPermitted; the lists are data/overrides.yaml)."
        ),
    )
    env: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Extra environment variables (core/v1 EnvVar objects) for the server.",
    )
    resources: dict[str, Any] | None = Field(
        default=None,
        description=(
            "core/v1 ResourceRequirements merged over kubellm's (GPU limits are kubellm's)."
        ),
    )
    node_selector: dict[str, str] = Field(
        default_factory=dict, description="Extra node selector labels for the serving pods."
    )
    tolerations: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Extra tolerations (core/v1 Toleration) for the serving pods.",
    )
    evaluation: EvaluationSpec | None = Field(
        default=None,
        description="Application checks run against the endpoint after each rollout.",
    )

    @field_validator("args")
    @classmethod
    def _args(cls, value: list[str]) -> list[str]:
        for index, arg in enumerate(value):
            if _refused_arg(arg):
                raise ValueError(
                    f"args[{index}] {arg.split('=', 1)[0]!r} is set by kubellm or not permitted "
                    "(it selects the model, revision, source, code or listening address); "
                    "remove it or set the matching spec field"
                )
        return value

    @field_validator("env")
    @classmethod
    def _env(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for index, item in enumerate(value):
            check_env_var(item, f"env[{index}]")
        return value

    @field_validator("tolerations")
    @classmethod
    def _tolerations(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for index, item in enumerate(value):
            check_toleration(item, f"tolerations[{index}]")
        return value

    @field_validator("resources")
    @classmethod
    def _resources(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None:
            check_resources(value, "resources")
        return value

    @field_validator("runtime")
    @classmethod
    def _runtime(cls, value: str) -> str:
        if value not in runtime_names():
            raise ValueError(f"unknown runtime {value!r}: use one of {', '.join(runtime_names())}")
        return value

    @model_validator(mode="after")
    def _cross_field(self) -> LLMDeploymentSpec:
        if self.quantization == "gguf" and self.runtime == "tgi":
            raise ValueError(
                "runtime tgi cannot serve quantization gguf (use runtime vllm or auto)"
            )
        if self.model.file is not None and self.quantization not in ("auto", "gguf"):
            raise ValueError("model.file selects a GGUF file: set quantization to gguf or auto")
        return self


class LLMDeployment(_Model):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, alias_generator=to_camel)
    api_version: Literal["kubellm.io/v1alpha1"] = "kubellm.io/v1alpha1"
    kind: Literal["LLMDeployment"] = "LLMDeployment"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: LLMDeploymentSpec
    status: LLMDeploymentStatus | None = None
