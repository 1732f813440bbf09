"""The shared ground of kubellm.io/v1alpha1: group and version, the enumerated value types
(quantization, licence class, openness, decision), the camelCase pydantic base class every model
derives from, and the small objects several kinds embed (a Secret key reference, ObjectMeta)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "kubellm.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

Quantization = Literal[
    "auto",  # from the checkpoint's quantization_config / file format; none when unquantized
    "none",  # serve the checkpoint dtype (bf16/fp16)
    "fp8",  # on-the-fly FP8 (or an FP8 checkpoint)
    "awq",
    "gptq",
    "gguf",
    "bitsandbytes",
    "compressed-tensors",
    "mxfp4",
]
KvCacheDtype = Literal["auto", "fp8"]
LicenseClass = Literal["permissive", "restrictive-community", "research-only", "unknown"]
Openness = Literal["open-source", "open-weight", "unknown"]
Decision = Literal["Allowed", "AllowedWithWarnings", "Denied"]


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=False,
    )

    def dump(self) -> dict[str, Any]:
        """The wire form: camelCase, without unset optional fields."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


class SecretKeyRef(_Model):
    """A key of a Secret in the LLMDeployment's namespace."""

    name: str = Field(description="Name of the Secret.", min_length=1, max_length=253)
    key: str = Field(default="HF_TOKEN", description="Key in the Secret that holds the value.")


class ObjectMeta(_Model):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    name: str | None = None
    namespace: str | None = None
    generation: int | None = None
    uid: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
