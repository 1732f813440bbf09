"""The planner: facts + policy + inventory -> Plan (pure).

The same function serves ``kubellm plan`` and the operator, so what plan prints is what the
operator does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kubellm.facts import ModelFacts
from kubellm.sizing.types import SizingResult


@dataclass(frozen=True)
class Plan:
    """What to do for one LLMDeployment.

    ``deployable`` is False when the licence denies (Enforce) or nothing fits or the spec is
    unsupported; then ``objects`` holds no serving objects and ``refusal`` says why.
    ``objects`` are complete manifests (dicts) in apply order: PVC, download Job, Deployment,
    Service. Owner references are left to the caller (the operator knows the owner's uid).
    """

    name: str
    namespace: str
    facts: ModelFacts
    license: Any  # kubellm.license.LicenseDecision
    sizing: SizingResult | None
    runtime: str | None
    objects: tuple[dict[str, Any], ...] = ()
    cache_key: str | None = None
    refusal_reason: str | None = None  # CamelCase condition reason
    refusal: str | None = None  # human sentence with numbers
    warnings: tuple[str, ...] = field(default=())

    @property
    def deployable(self) -> bool:
        return self.refusal is None
