"""The sandbox's own error: a component or tool failed; the message says the fix or a log tail."""

from __future__ import annotations

from kubellm.errors import KubellmError


class SandboxError(KubellmError):
    """Installing, starting or talking to the local sandbox failed."""

    reason = "SandboxError"
