"""The one exception hierarchy of kubellm.

Every error a user can cause or meet says what is wrong, where (the field or the object), and how
to fix it. The operator maps the two branches onto kopf in the handlers layer only::

    KubellmError
    ├── PermanentError            retrying will not help until the user changes something
    │   ├── SpecError             a field of an LLMDeployment, LicensePolicy or input is invalid
    │   ├── ModelNotFoundError    the Hub (or the offline cache) has no such repo / revision
    │   ├── GatedModelError       the repo is gated and no usable token was given
    │   ├── LicenseDeniedError    the licence policy forbids the model
    │   ├── DoesNotFitError       no GPU configuration in the inventory can hold the model
    │   └── UnsupportedError      runtime x quantization x GPU combination that cannot be served
    └── TemporaryError            retry later (with backoff)
        ├── HubUnavailableError   the Hub / mirror cannot be reached (never a denial)
        └── ClusterError          the API server refused or failed transiently (conflicts, 5xx)
"""

from __future__ import annotations


class KubellmError(Exception):
    """Base of every kubellm error. ``reason`` is a CamelCase condition reason."""

    reason: str = "Error"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if reason is not None:
            self.reason = reason

    def __str__(self) -> str:
        return self.message


class PermanentError(KubellmError):
    """The input must change before a retry can succeed."""

    reason = "InvalidSpec"


class SpecError(PermanentError):
    """An invalid field. ``field`` is its dotted path, e.g. ``spec.gpu.count``."""

    reason = "InvalidSpec"

    def __init__(self, field: str, problem: str, fix: str | None = None) -> None:
        self.field = field
        self.problem = problem
        self.fix = fix
        text = f"{field}: {problem}"
        if fix:
            text += f" ({fix})"
        super().__init__(text)


class ModelNotFoundError(PermanentError):
    reason = "ModelNotFound"


class GatedModelError(PermanentError):
    reason = "GatedModel"


class LicenseDeniedError(PermanentError):
    reason = "LicenseDenied"


class DoesNotFitError(PermanentError):
    reason = "DoesNotFit"


class UnsupportedError(PermanentError):
    reason = "Unsupported"


class TemporaryError(KubellmError):
    """Retry later. ``delay`` is a hint in seconds."""

    reason = "Retrying"

    def __init__(self, message: str, *, delay: float = 30.0, reason: str | None = None) -> None:
        super().__init__(message, reason=reason)
        self.delay = delay


class HubUnavailableError(TemporaryError):
    reason = "HubUnavailable"


class ClusterError(TemporaryError):
    reason = "ClusterError"
