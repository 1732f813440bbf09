"""The one exception hierarchy of kubellm.

Every error a user can cause or meet says what is wrong, where (the field or the object), and how
to fix it. The operator maps the two branches onto kopf in the handlers layer only::

    KubellmError
    ├── PermanentError            retrying will not help until the user changes something
    │   ├── SpecError             a field of an LLMDeployment, LicensePolicy or input is invalid
    │   ├── ModelNotFoundError    the Hub (or the offline cache) has no such repo / revision
    │   ├── ModelMetadataError    the repo's config.json, safetensors index or header is unreadable
    │   ├── GatedModelError       the repo is gated and no usable token was given
    │   ├── LicenseDeniedError    the licence policy forbids the model
    │   ├── DoesNotFitError       no GPU configuration in the inventory can hold the model
    │   └── UnsupportedError      runtime x quantization x GPU combination that cannot be served
    └── TemporaryError            retry later (with backoff)
        ├── HubUnavailableError   the Hub / mirror cannot be reached (never a denial)
        └── ClusterError          the API server refused or failed transiently (conflicts, 5xx)
"""

from __future__ import annotations

from kubellm.reasons import Reason


class KubellmError(Exception):
    """Base of every kubellm error. ``reason`` is its condition reason (``kubellm.reasons``).

    Each subclass names its reason; an instance holds it as a plain ``str`` (it leaves kubellm
    as data: status, events, ``kubellm plan -o yaml``). The base class itself is never raised:
    an error nobody classified would be an internal one.
    """

    reason: str = Reason.INTERNAL_ERROR

    def __init__(self, message: str, *, reason: Reason | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = str(reason if reason is not None else self.reason)

    def __str__(self) -> str:
        return self.message


class PermanentError(KubellmError):
    """The input must change before a retry can succeed."""

    reason = Reason.INVALID_SPEC


class SpecError(PermanentError):
    """An invalid field. ``field`` is its dotted path, e.g. ``spec.gpu.count``."""

    reason = Reason.INVALID_SPEC

    def __init__(self, field: str, problem: str, fix: str | None = None) -> None:
        self.field = field
        self.problem = problem
        self.fix = fix
        text = f"{field}: {problem}"
        if fix:
            text += f" ({fix})"
        super().__init__(text)


class ModelNotFoundError(PermanentError):
    reason = Reason.MODEL_NOT_FOUND


class ModelMetadataError(PermanentError):
    """A metadata file of the repo at this revision cannot be read (not JSON, not an object, a
    truncated safetensors header): no runtime could load the model from it."""

    reason = Reason.INVALID_MODEL_METADATA


class GatedModelError(PermanentError):
    reason = Reason.GATED_MODEL


class LicenseDeniedError(PermanentError):
    reason = Reason.LICENSE_DENIED


class DoesNotFitError(PermanentError):
    reason = Reason.DOES_NOT_FIT


class UnsupportedError(PermanentError):
    reason = Reason.UNSUPPORTED


class CacheStorageError(PermanentError):
    """The model cache cannot be written (read-only or foreign-owned volume, no space left): a
    retry of the same Job on the same volume fails the same way."""

    reason = Reason.DOWNLOAD_FAILED


class TemporaryError(KubellmError):
    """Retry later. ``delay`` is a hint in seconds."""

    reason = Reason.RETRYING

    def __init__(self, message: str, *, delay: float = 30.0,
                 reason: Reason | None = None) -> None:
        super().__init__(message, reason=reason)
        self.delay = delay


class HubUnavailableError(TemporaryError):
    reason = Reason.HUB_UNAVAILABLE


class ClusterError(TemporaryError):
    reason = Reason.CLUSTER_ERROR
