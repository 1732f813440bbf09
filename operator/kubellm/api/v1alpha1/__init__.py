"""kubellm.io/v1alpha1: ``LLMDeployment`` (namespaced, shortName llmd) and ``LicensePolicy``
(cluster-scoped), as pydantic models.

Field docstrings (``description=``) become the CRD's descriptions, so ``kubectl explain`` shows
them. Python names are snake_case; the wire names are camelCase (``by_alias=True``).
Cross-field rules are expressed twice on purpose: as CEL ``x-kubernetes-validations`` in the CRD
(the apiserver refuses bad objects at ``kubectl apply``) and as pydantic validators (``kubellm
plan`` refuses the same files offline). ``CEL_RULES`` (``cel``) holds the CEL side.

One module per concern, all re-exported here (``from kubellm.api.v1alpha1 import X``):
``common`` (group/version, value types, the base model, ObjectMeta), ``model`` (spec.model),
``corev1`` (checks of the pass-through core/v1 objects), ``serving`` (runtimes, context, GPUs,
refused arguments), ``cache``, ``evaluation``, ``status``, ``deployment`` (the LLMDeployment
kind), ``policy`` (the LicensePolicy kind) and ``cel``.
"""

from kubellm.api.v1alpha1.cache import (
    CacheSpec,
    CacheStatus,
)
from kubellm.api.v1alpha1.cel import (
    CEL_RULES,
)
from kubellm.api.v1alpha1.common import (
    API_VERSION,
    GROUP,
    VERSION,
    Decision,
    KvCacheDtype,
    LicenseClass,
    ObjectMeta,
    Openness,
    Quantization,
    SecretKeyRef,
)
from kubellm.api.v1alpha1.corev1 import (
    check_env_var,
    check_resources,
    check_toleration,
)
from kubellm.api.v1alpha1.deployment import (
    LLMDeployment,
    LLMDeploymentSpec,
)
from kubellm.api.v1alpha1.evaluation import (
    EXPECT_KINDS,
    ChatMessage,
    ChecksFrom,
    ConfigMapKeyRef,
    EvaluationCheck,
    EvaluationCheckStatus,
    EvaluationSpec,
    EvaluationStatus,
    Expectation,
    NumericExpect,
)
from kubellm.api.v1alpha1.model import (
    MAX_PARAMETERS,
    ModelSpec,
    model_source_defaults,
    model_source_names,
    parse_parameters,
)
from kubellm.api.v1alpha1.policy import (
    LicenseException,
    LicensePolicy,
    LicensePolicySpec,
)
from kubellm.api.v1alpha1.serving import (
    MAX_ARGS,
    ContextSpec,
    GpuSpec,
    refused_arg_forms,
    runtime_names,
)
from kubellm.api.v1alpha1.status import (
    CardClaim,
    Condition,
    LicenseDecisionStatus,
    LicenseReason,
    LLMDeploymentStatus,
    SizingStatus,
)

__all__ = [
    "API_VERSION",
    "CEL_RULES",
    "EXPECT_KINDS",
    "GROUP",
    "MAX_ARGS",
    "MAX_PARAMETERS",
    "VERSION",
    "CacheSpec",
    "CacheStatus",
    "CardClaim",
    "ChatMessage",
    "ChecksFrom",
    "Condition",
    "ConfigMapKeyRef",
    "ContextSpec",
    "Decision",
    "EvaluationCheck",
    "EvaluationCheckStatus",
    "EvaluationSpec",
    "EvaluationStatus",
    "Expectation",
    "GpuSpec",
    "KvCacheDtype",
    "LLMDeployment",
    "LLMDeploymentSpec",
    "LLMDeploymentStatus",
    "LicenseClass",
    "LicenseDecisionStatus",
    "LicenseException",
    "LicensePolicy",
    "LicensePolicySpec",
    "LicenseReason",
    "ModelSpec",
    "NumericExpect",
    "ObjectMeta",
    "Openness",
    "Quantization",
    "SecretKeyRef",
    "SizingStatus",
    "check_env_var",
    "check_resources",
    "check_toleration",
    "model_source_defaults",
    "model_source_names",
    "parse_parameters",
    "refused_arg_forms",
    "runtime_names",
]
