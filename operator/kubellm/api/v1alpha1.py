"""kubellm.io/v1alpha1: ``LLMDeployment`` (namespaced, shortName llmd) and ``LicensePolicy``
(cluster-scoped), as pydantic models.

Field docstrings (``description=``) become the CRD's descriptions, so ``kubectl explain`` shows
them. Python names are snake_case; the wire names are camelCase (``by_alias=True``).
Cross-field rules are expressed twice on purpose: as CEL ``x-kubernetes-validations`` in the CRD
(the apiserver refuses bad objects at ``kubectl apply``) and as pydantic validators (``kubellm
plan`` refuses the same files offline). ``CEL_RULES`` below holds the CEL side.
"""

from __future__ import annotations

import datetime
import math
import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
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


def runtime_names() -> tuple[str, ...]:
    """spec.runtime values: auto, then the runtimes of data/runtimes.yaml in its order."""
    from kubellm.datafiles import load_mapping

    return ("auto", *(str(n) for n in load_mapping("runtimes.yaml")["runtimes"]))


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


# ---- core/v1 objects kept as free-form mappings in the schema (x-kubernetes-preserve-unknown-
# fields), so that kubellm passes them through; their shape is checked here, so that a malformed
# one is refused with its field path instead of reaching the rendered pod (the apiserver would
# refuse the Deployment) or breaking the render. Sources: k8s.io/api/core/v1 types.go (EnvVar,
# EnvVarSource, Toleration, ResourceRequirements) and apimachinery resource.Quantity.

_QUANTITY = re.compile(
    r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|[KMGTPE]i|[mkMGTPE]|)?$"
)
_ENV_SOURCES = ("configMapKeyRef", "secretKeyRef", "fieldRef", "resourceFieldRef", "fileKeyRef")
_TOLERATION_OPERATORS = ("Exists", "Equal")
_TAINT_EFFECTS = ("", "NoSchedule", "PreferNoSchedule", "NoExecute")


def _kind(value: object) -> str:
    return {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(value), type(value).__name__)


def _keys(item: object, where: str, allowed: tuple[str, ...], what: str) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise ValueError(f"{where} must be {what} (a mapping), not {_kind(item)}")
    unknown = sorted(str(k) for k in item if k not in allowed)
    if unknown:
        raise ValueError(f"{where}: unknown field {unknown[0]!r} ({what} has {', '.join(allowed)})")
    return item


def check_env_var(item: object, where: str) -> None:
    """A core/v1 EnvVar: ``name`` and one of ``value`` (a string) or ``valueFrom``."""
    env = _keys(item, where, ("name", "value", "valueFrom"), "a core/v1 EnvVar")
    name = env.get("name")
    if not isinstance(name, str) or not name or "=" in name:
        raise ValueError(f"{where}.name must be a non-empty string without '=', not {name!r}")
    if "value" in env and env["value"] is not None and not isinstance(env["value"], str):
        raise ValueError(
            f"{where}.value must be a string (quote numbers and booleans), not "
            f"{_kind(env['value'])}"
        )
    source = env.get("valueFrom")
    if source is not None:
        if env.get("value"):
            raise ValueError(f"{where}: value and valueFrom cannot both be set")
        refs = _keys(source, f"{where}.valueFrom", _ENV_SOURCES, "a core/v1 EnvVarSource")
        if len(refs) != 1 or not all(isinstance(v, dict) for v in refs.values()):
            raise ValueError(f"{where}.valueFrom must set exactly one of {', '.join(_ENV_SOURCES)}")


def check_toleration(item: object, where: str) -> None:
    """A core/v1 Toleration."""
    tol = _keys(item, where, ("key", "operator", "value", "effect", "tolerationSeconds"),
                "a core/v1 Toleration")
    for key in ("key", "value"):
        if tol.get(key) is not None and not isinstance(tol[key], str):
            raise ValueError(f"{where}.{key} must be a string, not {_kind(tol[key])}")
    if tol.get("operator") is not None and tol["operator"] not in _TOLERATION_OPERATORS:
        raise ValueError(f"{where}.operator must be Exists or Equal, not {tol['operator']!r}")
    if tol.get("effect") is not None and tol["effect"] not in _TAINT_EFFECTS:
        raise ValueError(
            f"{where}.effect must be NoSchedule, PreferNoSchedule or NoExecute, not "
            f"{tol['effect']!r}"
        )
    seconds = tol.get("tolerationSeconds")
    if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, int)
                                or abs(seconds) > 2**63 - 1):
        raise ValueError(f"{where}.tolerationSeconds must be an integer, not {_kind(seconds)}")


def check_resources(value: object, where: str) -> None:
    """A core/v1 ResourceRequirements: limits/requests map resource names to quantities."""
    res = _keys(value, where, ("limits", "requests", "claims"), "a core/v1 ResourceRequirements")
    for section in ("limits", "requests"):
        given = res.get(section)
        if given is None:
            continue
        if not isinstance(given, dict):
            raise ValueError(f"{where}.{section} must map resource names to quantities, not "
                             f"{_kind(given)}")
        for name, quantity in given.items():
            ok = (isinstance(quantity, str) and _QUANTITY.match(quantity.strip())) or (
                isinstance(quantity, int | float) and not isinstance(quantity, bool)
                and math.isfinite(quantity) and abs(quantity) < 2**63)
            if not isinstance(name, str) or not name or not ok:
                raise ValueError(
                    f"{where}.{section}.{name}: {quantity!r} is not a quantity (write e.g. 8, "
                    "500m, 64Gi)"
                )
    claims = res.get("claims")
    if claims is not None and not (
        isinstance(claims, list)
        and all(isinstance(c, dict) and isinstance(c.get("name"), str) for c in claims)
    ):
        raise ValueError(f"{where}.claims must be a list of {{name: ...}} (core/v1 ResourceClaim)")


class ContextSpec(_Model):
    """Context length and concurrency: together they size the KV cache."""

    max_model_len: int | Literal["auto"] = Field(
        default="auto",
        description=(
            "Maximum tokens per sequence (prompt + output). auto: the largest that fits the "
            "chosen GPUs for the requested concurrency, capped at the model's "
            "max_position_embeddings. An explicit value is checked and refused with numbers if "
            "it cannot fit."
        ),
    )
    concurrency: int = Field(
        default=1,
        ge=1,
        le=4096,
        description="Sequences of max_model_len that must fit in the KV cache at once.",
    )
    kv_cache_dtype: KvCacheDtype = Field(
        default="auto",
        description="KV cache dtype: auto (the model dtype) or fp8 (half the memory).",
    )

    @field_validator("max_model_len")
    @classmethod
    def _len(cls, value: int | str) -> int | str:
        if isinstance(value, int) and not 16 <= value <= 10_485_760:
            raise ValueError("maxModelLen must be an integer between 16 and 10485760, or auto")
        return value


class GpuSpec(_Model):
    """Which GPUs, how many, and how much of their memory vLLM/TGI may use."""

    type: str = Field(
        default="auto",
        description=(
            "auto (the cheapest fitting GPU the cluster has), a GPU Feature Discovery product "
            "label (nvidia.com/gpu.product, e.g. NVIDIA-L4, NVIDIA-H100-80GB-HBM3) or an alias "
            "(l4, h100, a100-80gb, ...)."
        ),
        min_length=1,
    )
    count: int | Literal["auto"] = Field(
        default="auto",
        description="GPUs per replica: auto (the smallest valid count) or 1, 2, 4, 8, 16, ...",
    )
    memory_utilization: float = Field(
        default=0.9,
        gt=0.1,
        le=0.99,
        description=(
            "Fraction of each GPU's memory the runtime may use (vLLM --gpu-memory-utilization)."
        ),
    )

    @field_validator("count")
    @classmethod
    def _count(cls, value: int | str) -> int | str:
        if isinstance(value, int) and not 1 <= value <= 1024:
            raise ValueError("gpu.count must be an integer of at least 1, or auto")
        return value


class CacheSpec(_Model):
    """The shared model cache: one PVC per (repo, revision, files), shared by deployments."""

    enabled: bool = Field(
        default=True,
        description="Download the model once into a shared PVC and serve it offline from there.",
    )
    storage_class_name: str | None = Field(
        default=None, description="StorageClass of the cache PVC (default: the cluster default)."
    )
    size: str = Field(
        default="auto",
        description="PVC size: auto (weight bytes plus margin) or a quantity such as 200Gi.",
        pattern=r"^(auto|[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?)$",
    )
    access_mode: Literal["ReadWriteOnce", "ReadWriteMany", "ReadOnlyMany"] = Field(
        default="ReadWriteOnce",
        description="Access mode of the cache PVC (ReadWriteMany to share across nodes).",
    )


MAX_ARGS = 128  # bounds the CRD's CEL cost; no runtime needs more extra arguments


def refused_arg_forms() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(exact args, arg prefixes) no runtime lets a namespace user pass: the owned and refused
    flags of ``data/overrides.yaml`` (every runtime), with ``_`` for ``-`` (vLLM reads both), as
    ``--flag``, ``--flag=...`` and ``--flag.key`` (vLLM's dotted JSON keys). The CRD's CEL rule
    and the validator below refuse these at admission; ``kubellm.runtimes.guard`` checks the
    rest (abbreviations, unknown flags, stray values) in the planner."""
    from kubellm.datafiles import load_mapping

    names: set[str] = set()
    for entry in load_mapping("overrides.yaml")["runtimes"].values():
        for flag in (*entry.get("owned", {}), *entry.get("refused", {})):
            names |= {flag, "--" + flag[2:].replace("-", "_")}
    exact = tuple(sorted(names))
    prefixes = tuple(sorted({f"{n}{sep}" for n in names for sep in ("=", ".")}))
    return exact, prefixes


def _refused_arg(arg: str) -> bool:
    exact, prefixes = refused_arg_forms()
    return arg in exact or arg.startswith(prefixes)


class ConfigMapKeyRef(_Model):
    """A key of a ConfigMap in the LLMDeployment's namespace."""

    name: str = Field(description="Name of the ConfigMap.", min_length=1, max_length=253)
    key: str = Field(
        description="Key holding the checks: JSON Lines (.jsonl) or a YAML list (.yaml, .yml).",
        min_length=1,
        max_length=253,
        pattern=r"^[-._a-zA-Z0-9]+$",
    )


class ChecksFrom(_Model):
    """Where a larger set of checks lives."""

    config_map_ref: ConfigMapKeyRef = Field(description="A ConfigMap key with the checks.")


class ChatMessage(_Model):
    """One OpenAI chat message."""

    role: Literal["system", "user", "assistant"] = Field(description="system, user or assistant.")
    content: str = Field(description="The message text.", max_length=65536)


EXPECT_KINDS = ("contains", "regex", "exact", "jsonSchema", "numeric")


def _snake(name: str) -> str:
    return re.sub(r"([A-Z])", lambda m: "_" + m.group(1).lower(), name)


class NumericExpect(_Model):
    """The answer's first number equals ``value`` within ``tolerance``."""

    value: float = Field(description="The expected number.")
    tolerance: float = Field(default=0.0, ge=0, description="Absolute tolerance (default 0).")


class Expectation(_Model):
    """What the answer must satisfy: exactly one of the fields."""

    contains: str | None = Field(
        default=None, min_length=1, description="The answer contains this text (case-sensitive)."
    )
    regex: str | None = Field(
        default=None, min_length=1,
        description="A Python regular expression found somewhere in the answer (re.search).",
    )
    exact: str | None = Field(
        default=None, description="The answer, stripped of surrounding whitespace, equals this."
    )
    json_schema: dict[str, Any] | None = Field(
        default=None,
        description="The answer is JSON valid against this JSON Schema (draft 2020-12).",
    )
    numeric: NumericExpect | None = Field(
        default=None, description="The first number in the answer, within a tolerance."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Expectation:
        given = [k for k in EXPECT_KINDS if getattr(self, _snake(k)) is not None]
        if len(given) != 1:
            raise ValueError(f"expect: set exactly one of {', '.join(EXPECT_KINDS)} "
                             f"(found {', '.join(given) or 'none'})")
        return self

    @property
    def kind(self) -> str:
        """The one expectation set: contains, regex, exact, jsonSchema or numeric."""
        return next(k for k in EXPECT_KINDS if getattr(self, _snake(k)) is not None)


class EvaluationCheck(_Model):
    """One application check: a prompt or chat messages, and what the answer must satisfy."""

    name: str = Field(description="Unique name of the check.", min_length=1, max_length=63)
    prompt: str | None = Field(
        default=None, max_length=65536,
        description="A plain prompt (sent to /v1/completions).",
    )
    messages: list[ChatMessage] | None = Field(
        default=None, min_length=1, max_length=64,
        description="Chat messages (sent to /v1/chat/completions).",
    )
    expect: Expectation = Field(description="What the answer must satisfy.")
    weight: float = Field(default=1.0, gt=0, le=1000, description="Weight in the pass rate.")
    max_tokens: int = Field(
        default=64, ge=1, le=32768, description="max_tokens of the request (default 64)."
    )

    @model_validator(mode="after")
    def _prompt_or_messages(self) -> EvaluationCheck:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError(f"check {self.name!r}: set exactly one of prompt or messages")
        return self


class EvaluationSpec(_Model):
    """Evaluate what was deployed: application checks against the deployment's endpoint."""

    checks: list[EvaluationCheck] | None = Field(
        default=None, max_length=256,
        description="Inline checks (up to 256; use checksFrom for larger sets).",
    )
    checks_from: ChecksFrom | None = Field(
        default=None, description="Checks from a ConfigMap key (JSON Lines or YAML list)."
    )
    min_pass_rate: float = Field(
        default=1.0, ge=0, le=1,
        description="Weighted share of checks that must pass for Evaluated=True (0-1).",
    )
    gate: bool = Field(
        default=False,
        description="Make Ready require Evaluated=True (otherwise results never affect Ready).",
    )
    timeout_seconds: int = Field(
        default=600, ge=10, le=86400,
        description="Deadline of the whole evaluation (the Job's activeDeadlineSeconds).",
    )
    request_timeout_seconds: int = Field(
        default=60, ge=1, le=3600, description="Timeout of one request to the endpoint."
    )
    tasks: list[dict[str, Any]] | None = Field(
        default=None,
        description=(
            "Reserved: standard tasks through lm-evaluation-harness. Not implemented yet; "
            "setting it is refused."
        ),
    )
    load: dict[str, Any] | None = Field(
        default=None,
        description="Reserved: a short load probe. Not implemented yet; setting it is refused.",
    )

    @model_validator(mode="after")
    def _one_source(self) -> EvaluationSpec:
        if (self.checks is None) == (self.checks_from is None):
            raise ValueError("evaluation: set exactly one of checks or checksFrom")
        for name in ("tasks", "load"):
            if getattr(self, name) is not None:
                raise ValueError(f"evaluation.{name} is not implemented yet; remove it")
        return self


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


class CacheStatus(_Model):
    """The shared model cache this deployment uses."""

    key: str | None = Field(default=None, description="Content address of the cache.")
    pvc_name: str | None = Field(default=None, description="The shared cache PVC.")
    job_name: str | None = Field(default=None, description="The download Job.")
    size: str | None = Field(default=None, description="PVC size.")


class EvaluationCheckStatus(_Model):
    """The result of one check."""

    name: str = Field(description="The check's name.")
    passed: bool = Field(description="Whether the answer met the expectation.")
    score: float = Field(description="1 when passed, else 0.")
    weight: float = Field(default=1.0, description="The check's weight.")
    duration_seconds: float | None = Field(default=None, description="Time of the request.")
    failure: str | None = Field(default=None, description="Why it failed (truncated).")


class EvaluationStatus(_Model):
    """The last evaluation of the served model (spec.evaluation)."""

    revision: str | None = Field(default=None, description="The model revision evaluated.")
    generation: int | None = Field(default=None, description="The generation evaluated.")
    spec_hash: str | None = Field(default=None, description="Hash of spec.evaluation evaluated.")
    job_name: str | None = Field(default=None, description="The evaluation Job.")
    pass_rate: float | None = Field(default=None, description="Weighted share of checks passed.")
    min_pass_rate: float | None = Field(default=None, description="The threshold.")
    passed: bool | None = Field(default=None, description="passRate >= minPassRate.")
    total: int | None = Field(default=None, description="Checks run.")
    failed: int | None = Field(default=None, description="Checks failed.")
    duration_seconds: float | None = Field(default=None, description="Time of the whole run.")
    error: str | None = Field(default=None, description="Why the evaluation could not run.")
    checks: list[EvaluationCheckStatus] = Field(
        default_factory=list,
        description="Per check (failed first; bounded: omitted counts the rest).",
    )
    omitted: int | None = Field(default=None, description="Checks left out of checks.")


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


class ObjectMeta(_Model):
    model_config = ConfigDict(extra="allow", populate_by_name=True)
    name: str | None = None
    namespace: str | None = None
    generation: int | None = None
    uid: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class LLMDeployment(_Model):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, alias_generator=to_camel)
    api_version: Literal["kubellm.io/v1alpha1"] = "kubellm.io/v1alpha1"
    kind: Literal["LLMDeployment"] = "LLMDeployment"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: LLMDeploymentSpec
    status: LLMDeploymentStatus | None = None


def _default_classes() -> list[LicenseClass]:
    return ["permissive", "restrictive-community"]


_LicenseId = Annotated[str, Field(min_length=1, max_length=100)]
_NamespaceGlob = Annotated[str, Field(min_length=1, max_length=253)]


class LicenseException(_Model):
    """A model the policy allows despite its rules (e.g. after a legal sign-off)."""

    model: str = Field(
        description="Repo id, or a glob such as meta-llama/* (fnmatch).",
        min_length=1,
        max_length=200,
    )
    reason: str = Field(description="Why (who signed off, ticket).", min_length=1, max_length=1000)
    expires: str | None = Field(
        default=None,
        description=(
            "Optional expiry date (YYYY-MM-DD); the exception applies up to and including that "
            "day, then no more."
        ),
        pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
    )

    @field_validator("expires", mode="before")
    @classmethod
    def _expires_from_date(cls, value: object) -> object:
        # YAML 1.1 loaders turn an unquoted 2027-01-31 into a date; accept it as written.
        return value.isoformat() if isinstance(value, datetime.date) else value

    @field_validator("expires")
    @classmethod
    def _expires(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                datetime.date.fromisoformat(value)
            except ValueError:
                raise ValueError(
                    f"expires {value!r} is not a calendar date; write it as YYYY-MM-DD"
                ) from None
        return value


_ImagePrefix = Annotated[str, Field(min_length=1, max_length=512, pattern=r"^[a-z0-9][^\s]*$")]


class LicensePolicySpec(_Model):
    """What this organisation may run. Several policies may exist; each covers some namespaces.

    A namespace is governed by the policy whose ``namespaces`` match it most specifically (an exact
    name beats a glob, a longer glob beats a shorter one, a listed namespace beats an empty list);
    ties go to the policy whose name sorts first.
    """

    mode: Literal["Enforce", "Warn"] = Field(
        default="Enforce", description="Enforce: denied models get no pods. Warn: deploy, warn."
    )
    namespaces: list[_NamespaceGlob] = Field(
        default_factory=list,
        max_length=256,
        description="Namespaces covered (globs allowed); empty covers every namespace.",
    )
    allowed_classes: list[LicenseClass] = Field(
        default_factory=_default_classes,
        max_length=4,
        json_schema_extra={"default": ["permissive", "restrictive-community"]},
        description=(
            "Licence classes allowed: permissive, restrictive-community, research-only. Unknown "
            "licences are governed by unknownLicense instead."
        ),
    )
    allowed_licenses: list[_LicenseId] = Field(
        default_factory=list,
        max_length=256,
        description=(
            "Licence ids always allowed whatever their class (Hub ids such as gemma, or "
            "license_name values such as qwen); commercialUse, user thresholds and "
            "jurisdiction still apply."
        ),
    )
    denied_licenses: list[_LicenseId] = Field(
        default_factory=list,
        max_length=256,
        description=(
            "Licence ids always denied, anywhere in the base_model chain (Hub ids or "
            "license_name values)."
        ),
    )
    commercial_use: bool = Field(
        default=True, description="The deployment is for commercial use (denies non-commercial)."
    )
    jurisdiction: str | None = Field(
        default=None,
        description=(
            "Licensee domicile: ISO 3166-1 alpha-2 code (DE, FR, US, KR; GB or UK) or EU. "
            "EU member states count as EU for licences that exclude the EU."
        ),
        pattern=r"^[A-Za-z]{2}$",
    )
    monthly_active_users: int | None = Field(
        default=None, ge=0, description="Declared scale, compared with licence user thresholds."
    )
    require_open_source: bool = Field(
        default=False, description="Only models with open weights, data and code."
    )
    allow_gated: bool = Field(default=True, description="Allow gated repos.")
    unknown_license: Literal["Deny", "Warn"] = Field(
        default="Deny", description="What to do when the licence cannot be determined."
    )
    exceptions: list[LicenseException] = Field(
        default_factory=list, max_length=256, description="Models allowed despite the rules."
    )
    allowed_images: list[_ImagePrefix] = Field(
        default_factory=list,
        max_length=64,
        description=(
            "Image prefixes an LLMDeployment's spec.image may start with, besides its runtime's "
            "catalogue image (any tag or digest of that repository, after the operator's "
            "--runtime-image overrides), e.g. registry.corp/ml/vllm-openai: . End a prefix with "
            "/ or : so that it cannot match a longer repository name. Empty: only the "
            "catalogue's images."
        ),
    )

    @model_validator(mode="after")
    def _disjoint(self) -> LicensePolicySpec:
        both = sorted(set(self.allowed_licenses) & set(self.denied_licenses))
        if both:
            raise ValueError(
                f"licences {both} are both allowed and denied; list each in one of "
                "allowedLicenses / deniedLicenses"
            )
        return self


class LicensePolicy(_Model):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, alias_generator=to_camel)
    api_version: Literal["kubellm.io/v1alpha1"] = "kubellm.io/v1alpha1"
    kind: Literal["LicensePolicy"] = "LicensePolicy"
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)
    spec: LicensePolicySpec = Field(default_factory=LicensePolicySpec)


def _cel_list(items: tuple[str, ...]) -> str:
    return "[" + ", ".join(f"'{i}'" for i in items) + "]"


def _cel_args_rule() -> str:
    """CEL twin of ``LLMDeploymentSpec._args``: exact names and ``=``/``.`` prefixes only
    (``startsWith`` over a constant list keeps the estimated cost far below the budget)."""
    exact, prefixes = refused_arg_forms()
    return (f"self.all(a, !(a in {_cel_list(exact)}) && "
            f"!{_cel_list(prefixes)}.exists(p, a.startsWith(p)))")


# CEL rules mirrored into the CRD, keyed "<Kind>.<wire path>" (the path of the schema node the rules
# sit on; "LLMDeployment.spec.context.maxModelLen" is spec.context.maxModelLen). Keep them in step
# with the pydantic validators above: tests/unit/test_api.py checks both refuse the same objects.
CEL_RULES: dict[str, list[dict[str, str]]] = {
    "LLMDeployment.spec.args": [
        {
            "rule": _cel_args_rule(),
            "message": (
                "args: a flag that is set by kubellm or not permitted (it selects the model, "
                "revision, source, code or listening address); remove it or set the matching "
                "spec field"
            ),
            "reason": "FieldValueForbidden",
        },
    ],
    "LLMDeployment.spec": [
        {
            "rule": "!(self.quantization == 'gguf' && self.runtime == 'tgi')",
            "message": "runtime tgi cannot serve quantization gguf (use runtime vllm or auto)",
            "fieldPath": ".runtime",
            "reason": "FieldValueInvalid",
        },
        {
            "rule": "!has(self.model.file) || self.quantization in ['auto', 'gguf']",
            "message": "model.file selects a GGUF file: set quantization to gguf or auto",
            "fieldPath": ".quantization",
            "reason": "FieldValueInvalid",
        },
    ],
    "LLMDeployment.spec.evaluation": [
        {
            "rule": "has(self.checks) != has(self.checksFrom)",
            "message": "evaluation: set exactly one of checks or checksFrom",
            "reason": "FieldValueInvalid",
        },
        {
            "rule": "!has(self.tasks) && !has(self.load)",
            "message": "evaluation.tasks and evaluation.load are not implemented yet; remove them",
            "reason": "FieldValueForbidden",
        },
    ],
    "LLMDeployment.spec.evaluation.checks[*]": [
        {
            "rule": "has(self.prompt) != has(self.messages)",
            "message": "a check sets exactly one of prompt or messages",
            "reason": "FieldValueInvalid",
        },
    ],
    "LLMDeployment.spec.evaluation.checks[*].expect": [
        {
            "rule": ("[has(self.contains), has(self.regex), has(self.exact), "
                     "has(self.jsonSchema), has(self.numeric)].filter(x, x).size() == 1"),
            "message": "expect: set exactly one of contains, regex, exact, jsonSchema, numeric",
            "reason": "FieldValueInvalid",
        },
    ],
    "LLMDeployment.spec.model.parameters": [
        {
            "rule": (
                "type(self) == int ? self > 0 : "
                "self.matches('^ *[0-9][0-9_]*([.][0-9]+)?[KkMmBbTt]? *$')"
            ),
            "message": "parameters must be a positive integer or a count such as 8B, 70.6B, 560M",
        },
    ],
    "LLMDeployment.spec.context.maxModelLen": [
        {
            "rule": "type(self) == string ? self == 'auto' : (self >= 16 && self <= 10485760)",
            "message": "maxModelLen must be an integer between 16 and 10485760, or auto",
        },
    ],
    "LLMDeployment.spec.gpu.count": [
        {
            "rule": "type(self) == string ? self == 'auto' : (self >= 1 && self <= 1024)",
            "message": "gpu.count must be an integer of at least 1, or auto",
        },
    ],
    "LicensePolicy.spec": [
        {
            "rule": (
                "!has(self.allowedLicenses) || !has(self.deniedLicenses) || "
                "!self.allowedLicenses.exists(l, l in self.deniedLicenses)"
            ),
            "message": "a licence cannot be both in allowedLicenses and in deniedLicenses",
            "fieldPath": ".allowedLicenses",
            "reason": "FieldValueInvalid",
        },
    ],
}
