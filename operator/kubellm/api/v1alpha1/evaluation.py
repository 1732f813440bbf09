"""spec.evaluation (application checks run against the endpoint after each rollout: prompts or
chat messages and what the answer must satisfy) and status.evaluation (their results)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, model_validator

from kubellm.api.v1alpha1.common import _Model


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
