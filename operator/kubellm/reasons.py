"""The catalogue of condition reasons kubellm writes into LLMDeployment status (pure).

Every CamelCase reason the operator can put on a condition, an event or a ``kubellm plan``
refusal is a member of ``Reason``; emission sites use ``Reason.X``, never a string literal
(tests/unit/test_docs.py fails on a literal). ``Reason`` is a ``StrEnum``: a member *is* its
string, so status, events and JSON stay byte-identical. The objects that carry a reason out of
kubellm (``KubellmError``, ``Plan``) store it as a plain ``str`` because PyYAML's safe dumper
does not represent ``str`` subclasses.

Each member has a ``category`` and a one-line ``description``. The categories are what the code
did before this catalogue existed, and what its consumers read:

- ``OK``: a stage (or ``Ready``) is ``True``;
- ``WAITING``: ``False``/``Unknown`` on the way to ``True``; nothing needs a human
  (``conditions.PROGRESSING_REASONS``: a Normal event; Argo CD: Progressing);
- ``IDLE``: ``False`` because the spec asks for it (``spec.replicas: 0``): a Normal event, and
  Argo CD says Healthy;
- ``REFUSED``: retrying cannot help until the spec, the policy or the cluster changes
  (``PermanentError`` and the planner's refusals: a Warning event; Argo CD: Degraded);
- ``TEMPORARY``: a retry with backoff is already scheduled (``TemporaryError``: ``Ready=Unknown``;
  Argo CD: Progressing).

``PASSED_THROUGH`` are not ours: a failed download Job's own condition reason, which
``reconcile.status.job_state`` copies onto ``CacheReady`` (``conditions.camel_reason``); they
count as ``REFUSED``. Source: Kubernetes ``batch/v1`` ``JobConditionReason`` constants
(k8s.io/api/batch/v1/types.go: JobReasonBackoffLimitExceeded, JobReasonDeadlineExceeded,
JobReasonPodFailurePolicy).
"""

from __future__ import annotations

from enum import StrEnum


class Category(StrEnum):
    """What a reason means for whoever reads status: see the module docstring."""

    OK = "OK"
    WAITING = "Waiting"
    IDLE = "Idle"
    REFUSED = "Refused"
    TEMPORARY = "Temporary"


class Reason(StrEnum):
    """A condition reason kubellm emits, with its ``category`` and ``description``."""

    category: Category
    description: str

    def __new__(cls, value: str, category: Category, description: str) -> Reason:
        member = str.__new__(cls, value)
        member._value_ = value
        member.category = category
        member.description = description
        return member

    # ---- OK: the condition is True
    ALLOWED = ("Allowed", Category.OK,
               "LicenseApproved=True: the governing LicensePolicy allows the model")
    ALLOWED_WITH_WARNINGS = ("AllowedWithWarnings", Category.OK,
                             "LicenseApproved=True, but a rule warned (a Warning event)")
    FITS = ("Fits", Category.OK,
            "Sized=True: a GPU configuration of the live inventory holds the model")
    DOWNLOADED = ("Downloaded", Category.OK,
                  "CacheReady=True: the download Job completed")
    CACHE_DISABLED = ("CacheDisabled", Category.OK,
                      "CacheReady=True: spec.cache.enabled is false, nothing to download")
    MINIMUM_REPLICAS_AVAILABLE = ("MinimumReplicasAvailable", Category.OK,
                                  "Available=True: at least one serving replica is Ready")
    READY = ("Ready", Category.OK, "Ready=True: all four stages are True")
    PASSED = ("Passed", Category.OK,
              "Evaluated=True: the weighted pass rate reached spec.evaluation.minPassRate")

    # ---- WAITING: on the way, nothing needs a human
    NOT_EVALUATED = ("NotEvaluated", Category.WAITING,
                     "Unknown: the stage was not evaluated yet")
    NOT_PLANNED = ("NotPlanned", Category.WAITING,
                   "CacheReady=Unknown: the plan was refused, nothing to download")
    DOWNLOADING = ("Downloading", Category.WAITING,
                   "CacheReady=False: the download Job is not created yet or still running")
    NO_DEPLOYMENT = ("NoDeployment", Category.WAITING,
                     "Available=False: no serving workload yet (an earlier stage is not True)")
    NO_REPLICAS_READY = ("NoReplicasReady", Category.WAITING,
                         "Available=False: the serving pods are not Ready yet")
    EVALUATING = ("Evaluating", Category.WAITING,
                  "Evaluated=Unknown: the evaluation Job has not finished")

    # ---- IDLE: False because the spec asks for it
    SCALED_TO_ZERO = ("ScaledToZero", Category.IDLE,
                      "Available=False: the serving workload has 0 replicas")

    # ---- REFUSED: retrying cannot help until something changes
    INVALID_SPEC = ("InvalidSpec", Category.REFUSED,
                    "a field is invalid in a way the CRD schema cannot check")
    MODEL_NOT_FOUND = ("ModelNotFound", Category.REFUSED,
                       "the Hub, mirror or offline cache has no such repo or revision")
    INVALID_MODEL_METADATA = ("InvalidModelMetadata", Category.REFUSED,
                              "the repo's config.json, safetensors index or header cannot be "
                              "read at this revision (no runtime could load it)")
    GATED_MODEL = ("GatedModel", Category.REFUSED,
                   "the repo is gated and no usable token was given")
    LICENSE_DENIED = ("LicenseDenied", Category.REFUSED,
                      "the licence policy forbids the model")
    DOES_NOT_FIT = ("DoesNotFit", Category.REFUSED,
                    "no GPU configuration of the inventory holds the model")
    GPUS_BUSY = ("GpusBusy", Category.REFUSED,
                 "the model fits the cluster's GPUs but not the ones free now")
    UNSUPPORTED = ("Unsupported", Category.REFUSED,
                   "the runtime x quantization x GPU combination cannot be served")
    NOT_PERMITTED = ("NotPermitted", Category.REFUSED,
                     "spec.args, spec.env or spec.image asks for what kubellm owns or the "
                     "licence decision does not cover (another model, source, code, image)")
    KIND_NOT_SERVED = ("KindNotServed", Category.REFUSED,
                       "the plan needs a kind the cluster does not serve (LeaderWorkerSet)")
    INVALID_OBJECT = ("InvalidObject", Category.REFUSED,
                      "the API server refused a rendered object (HTTP 400/422)")
    DOWNLOAD_FAILED = ("DownloadFailed", Category.REFUSED,
                       "the download Job failed without a reason of its own")
    BELOW_THRESHOLD = ("BelowThreshold", Category.REFUSED,
                       "Evaluated=False: the weighted pass rate is below "
                       "spec.evaluation.minPassRate")
    EVALUATION_FAILED = ("EvaluationFailed", Category.REFUSED,
                         "Evaluated=False: the evaluation could not run (invalid checks, a "
                         "missing ConfigMap, the endpoint unreachable)")

    # ---- TEMPORARY: a retry with backoff is scheduled
    RETRYING = ("Retrying", Category.TEMPORARY,
                "a temporary error without a more specific reason")
    HUB_UNAVAILABLE = ("HubUnavailable", Category.TEMPORARY,
                       "the Hub or mirror did not answer (never a denial)")
    CLUSTER_ERROR = ("ClusterError", Category.TEMPORARY,
                     "the API server failed transiently (5xx, timeouts)")
    FORBIDDEN = ("Forbidden", Category.TEMPORARY,
                 "HTTP 403: the operator's RBAC does not allow a request")
    CONFLICT = ("Conflict", Category.TEMPORARY,
                "HTTP 409: someone else wrote the object in between")
    INTERNAL_ERROR = ("InternalError", Category.TEMPORARY,
                      "an unexpected exception in the operator (a bug)")


# A failed download Job's own reasons, copied onto CacheReady=False: not ours, not in ``Reason``.
# kubellm's Job sets no podFailurePolicy; PodFailurePolicy is listed because Kubernetes defines
# it for every Job and deploy/argocd/health.lua names it.
PASSED_THROUGH: frozenset[str] = frozenset(
    {"BackoffLimitExceeded", "DeadlineExceeded", "PodFailurePolicy"}
)


def of(*categories: Category) -> frozenset[Reason]:
    """The reasons of the given categories."""
    return frozenset(r for r in Reason if r.category in categories)
