"""spec.model: which model to serve and from where (the sources of data/sources.yaml), the facts
declared for air-gapped use, and ``parse_parameters`` for declared parameter counts."""

from __future__ import annotations

import math
import re
from typing import Any

from pydantic import Field, field_validator, model_validator

from kubellm.api.v1alpha1.common import _Model


def model_source_names() -> tuple[str, ...]:
    """spec.model.source values: the entries of data/sources.yaml (huggingface first)."""
    return tuple(sorted(model_source_defaults(), key=lambda n: (n != "huggingface", n)))


def model_source_defaults() -> dict[str, str]:
    """Each source's default revision (data/sources.yaml ``default_revision``)."""
    from kubellm.datafiles import load_mapping

    return {str(k): str(v["default_revision"])
            for k, v in load_mapping("sources.yaml")["sources"].items()}


def _no_schema_default(schema: dict[str, Any]) -> None:
    """The revision's default depends on spec.model.source, so the CRD carries none (the
    apiserver would otherwise write main into every object); the validator fills it in."""
    schema.pop("default", None)


class ModelSpec(_Model):
    """Which model to serve, and facts declared for air-gapped use."""

    repo: str = Field(
        description=(
            "Hugging Face Hub repo id, e.g. meta-llama/Llama-3.1-8B-Instruct "
            "(or the id of a repo in the offline cache / mirror)."
        ),
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$",
    )
    source: str = Field(
        default="huggingface",
        description=(
            "Where the model comes from: huggingface (the Hugging Face Hub, HF_ENDPOINT's mirror "
            "or the offline HF cache) or modelscope (ModelScope, MODELSCOPE_ENDPOINT)."
        ),
        json_schema_extra={"enum": list(model_source_names())},
    )
    revision: str = Field(
        default="main",
        description=(
            "Branch, tag or 40-hex commit sha. Pin a sha in production: licences change. "
            "Default: main (huggingface), master (modelscope)."
        ),
        min_length=1,
        max_length=255,
        json_schema_extra=_no_schema_default,
    )
    file: str | None = Field(
        default=None,
        description="For GGUF repos: the one .gguf file to serve (e.g. model-Q4_K_M.gguf).",
        min_length=6,
        max_length=255,
        pattern=r"^[^/].*\.gguf$",
    )
    license: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description=(
            "Declared Hub licence id (apache-2.0, llama3.1, other, ...), used when the Hub and "
            "the cache cannot tell (air-gapped). Reported as declared in status."
        ),
    )
    license_name: str | None = Field(
        default=None,
        min_length=1,
        max_length=100,
        description="Declared license_name for license=other (e.g. qwen, mrl, tongyi-qianwen).",
    )
    parameters: int | str | None = Field(
        default=None,
        json_schema_extra={"maxLength": 32},
        description=(
            "Declared parameter count when no checkpoint metadata is available: an integer or a "
            "string such as 8B, 70.6B, 560M."
        ),
    )
    base_model: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Declared base model repo id (for licence inheritance) when the card has none.",
    )

    @field_validator("parameters")
    @classmethod
    def _parameters(cls, value: int | str | None) -> int | str | None:
        if value is not None:
            parse_parameters(value)
        return value

    @field_validator("source")
    @classmethod
    def _source(cls, value: str) -> str:
        if value not in model_source_names():
            raise ValueError(f"unknown model source {value!r}: use one of "
                             f"{', '.join(model_source_names())}")
        return value

    @model_validator(mode="before")
    @classmethod
    def _source_revision(cls, data: Any) -> Any:
        """An unset revision is the source's default branch (main, or ModelScope's master)."""
        if isinstance(data, dict) and data.get("revision") is None:
            source = data.get("source") or "huggingface"
            default = model_source_defaults().get(str(source))
            if default is not None:
                data = {**data, "revision": default}
        return data


MAX_PARAMETERS = 2**63 - 1  # the apiserver's int64: a larger integer cannot be stored


def parse_parameters(value: int | str) -> int:
    """``8B`` -> 8_000_000_000; ``560M`` -> 560_000_000; ``7000000000`` -> 7_000_000_000."""
    if isinstance(value, int):
        if value <= 0:
            raise ValueError("parameters must be positive")
        if value > MAX_PARAMETERS:
            raise ValueError(f"parameters must be at most {MAX_PARAMETERS} (int64)")
        return value
    text = value.strip().upper().replace("_", "")
    scale = {"K": 10**3, "M": 10**6, "B": 10**9, "T": 10**12}
    unit = scale.get(text[-1:], 1)
    digits = text[:-1] if unit != 1 else text
    try:
        if not re.fullmatch(r"[0-9]+(\.[0-9]+)?", digits):
            raise ValueError(digits)
        number = float(digits) * unit
    except ValueError:
        raise ValueError(
            f"parameters {value!r} is not a number; write it like 8B, 70.6B or 560M"
        ) from None
    if number <= 0:
        raise ValueError("parameters must be positive")
    if not math.isfinite(number) or number > MAX_PARAMETERS:
        raise ValueError(f"parameters {value!r} is too large (at most {MAX_PARAMETERS}, int64)")
    return round(number)
