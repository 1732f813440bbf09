"""The kubellm API (kubellm.io/v1alpha1) as pydantic v2 models: the single source of truth.

The CRDs in ``crds/`` are generated from these models (``kubellm crds``); a test fails when they
are stale.
"""

from kubellm.api.v1alpha1 import (
    CacheSpec,
    Condition,
    ContextSpec,
    GpuSpec,
    LicenseDecisionStatus,
    LicenseException,
    LicensePolicy,
    LicensePolicySpec,
    LicenseReason,
    LLMDeployment,
    LLMDeploymentSpec,
    LLMDeploymentStatus,
    ModelSpec,
    SecretKeyRef,
    SizingStatus,
)

__all__ = [
    "CacheSpec",
    "Condition",
    "ContextSpec",
    "GpuSpec",
    "LLMDeployment",
    "LLMDeploymentSpec",
    "LLMDeploymentStatus",
    "LicenseDecisionStatus",
    "LicenseException",
    "LicensePolicy",
    "LicensePolicySpec",
    "LicenseReason",
    "ModelSpec",
    "SecretKeyRef",
    "SizingStatus",
]
