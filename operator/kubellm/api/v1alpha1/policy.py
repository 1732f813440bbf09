"""The LicensePolicy kind (cluster-scoped): what an organisation may run, per namespace, and the
exceptions it signed off."""

from __future__ import annotations

import datetime
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from kubellm.api.v1alpha1.common import LicenseClass, ObjectMeta, _Model


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
