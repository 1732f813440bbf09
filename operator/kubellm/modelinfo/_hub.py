"""The one place kubellm imports huggingface_hub: lazy import, settings and error translation.

huggingface_hub reads ``HF_ENDPOINT``, ``HF_HUB_OFFLINE``, ``HF_HOME``/``HF_HUB_CACHE``,
``HF_HUB_ETAG_TIMEOUT``/``HF_HUB_DOWNLOAD_TIMEOUT`` and ``HF_HUB_DISABLE_XET`` **once, when
``huggingface_hub.constants`` is first imported** (hub-api.md §0). kubellm therefore imports it
lazily (first call here), so a process that sets these variables before its first resolve or
download is honoured; changing them afterwards has no effect in that process. Tests that need
several modes run one subprocess per mode.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kubellm.errors import (
    GatedModelError,
    HubUnavailableError,
    KubellmError,
    ModelNotFoundError,
)

GATED_FIX = (
    "gated model: set spec.hubTokenSecretRef to a Secret holding a token of an account that "
    "accepted the terms"
)


def constants() -> Any:
    """huggingface_hub.constants (imported on first use: see the module docstring)."""
    from huggingface_hub import constants as c

    return c


def is_offline() -> bool:
    return bool(constants().HF_HUB_OFFLINE)


def endpoint() -> str:
    return str(constants().ENDPOINT)


def cache_dir() -> Path:
    return Path(constants().HF_HUB_CACHE)


def default_token() -> str | None:
    """HF_TOKEN from the environment (huggingface_hub also reads it; named here for messages)."""
    return os.environ.get("HF_TOKEN") or None


def is_unavailable(exc: BaseException) -> bool:
    """Connection errors, timeouts, 429 and 5xx: the Hub (or mirror) cannot answer now."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    if isinstance(exc, httpx2.TransportError | TimeoutError | ConnectionError):
        return True
    if isinstance(exc, HfHubHTTPError):
        status = exc.response.status_code if exc.response is not None else 0
        return status == 429 or status >= 500
    # hf_hub_download: HEAD failed for a network reason and nothing was cached.
    return isinstance(exc, LocalEntryNotFoundError)


def translate(exc: BaseException, repo: str, revision: str) -> KubellmError | None:
    """A huggingface_hub / transport exception as a kubellm error (None: not ours to map)."""
    import httpx2
    from huggingface_hub.errors import (
        DisabledRepoError,
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    where = endpoint()
    if isinstance(exc, GatedRepoError):
        return GatedModelError(f"{repo}: {GATED_FIX}")
    if isinstance(exc, DisabledRepoError):
        return ModelNotFoundError(f"model {repo} is disabled on {where} (choose another repo)")
    if isinstance(exc, RepositoryNotFoundError):
        return ModelNotFoundError(
            f"model {repo} not found on {where} (check spec.model.repo; a private repo also "
            "needs spec.hubTokenSecretRef)"
        )
    if isinstance(exc, RevisionNotFoundError):
        return ModelNotFoundError(
            f"revision {revision!r} of model {repo} not found on {where} "
            "(check spec.model.revision: a branch, tag or 40-hex commit sha)"
        )
    cause = exc.__cause__ or exc.__context__
    wrapper = not isinstance(exc, HfHubHTTPError | httpx2.TransportError)
    if wrapper and cause is not None and cause is not exc:  # DryRunError, LocalEntryNotFound
        mapped = translate(cause, repo, revision)
        if mapped is not None:
            return mapped
    if is_unavailable(exc):
        return HubUnavailableError(
            f"Hugging Face Hub at {where} unavailable while reading {repo}@{revision}: "
            f"{type(exc).__name__}: {_short(exc)} (temporary; for air-gapped clusters set "
            "HF_HUB_OFFLINE=1 and fill the cache, or set HF_ENDPOINT to a mirror)"
        )
    status = exc.response.status_code if isinstance(exc, HfHubHTTPError) and exc.response else 0
    if status in (401, 403):
        return GatedModelError(
            f"{repo}: access denied (HTTP {status}); the token is missing or invalid. {GATED_FIX}"
        )
    if isinstance(exc, HfHubHTTPError) or _raised_by_the_client(exc):
        # Any other status (400, 404 without the Hub's error code, 405, 410, ...), a body that
        # is not what the Hub API sends (HTML, truncated, other JSON), a dropped size check:
        # the endpoint misbehaves. Temporary (retried with backoff), never a denial.
        what = f"HTTP {status}" if status else f"{type(exc).__name__}: {_short(exc)}"
        return HubUnavailableError(
            f"Hugging Face Hub at {where} gave an answer kubellm cannot use while reading "
            f"{repo}@{revision} ({what}); temporary, retried with backoff (if HF_ENDPOINT points "
            "to a mirror or a proxy is in between, check it)"
        )
    return None


_CLIENT_PACKAGES = ("huggingface_hub", "httpx", "httpx2", "httpcore", "h11", "requests",
                    "urllib3")


def _raised_by_the_client(exc: BaseException) -> bool:
    """Whether ``exc`` was raised inside the HTTP client stack (parsing the Hub's answer), not
    in kubellm: then a ValueError/KeyError/TypeError/OSError is the answer's fault."""
    if not isinstance(exc, ValueError | KeyError | TypeError | AttributeError | IndexError
                      | OSError):
        return False
    tb = exc.__traceback__
    client = False  # the innermost non-standard-library code the exception came through
    while tb is not None:
        parts = set(Path(tb.tb_frame.f_code.co_filename).parts)
        if "kubellm" in parts:
            client = False
        elif parts & set(_CLIENT_PACKAGES):
            client = True
        tb = tb.tb_next
    return client


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else ""
