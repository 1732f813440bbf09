"""Adapter: an OpenAI-compatible HTTP endpoint, as ``kubellm eval`` talks to it (stdlib only).

Chat checks go to ``POST {base}/chat/completions``, plain prompts to ``POST {base}/completions``
(``base`` ends in ``/v1``; a bare ``http://host:port`` gets ``/v1`` added). Greedy decoding
(``temperature: 0``) so that a check is repeatable. Connection errors (refused, DNS, timeouts,
reset) are retried with exponential backoff and then raise ``EndpointUnreachable`` naming the
endpoint and the fix; HTTP 5xx and 429 are retried too, then fail the one check
(``RequestFailed``) like any other error answer.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from kubellm.evaluation.checks import Check
from kubellm.evaluation.runner import EndpointUnreachable, RequestFailed

RETRIES = 3
BACKOFF_SECONDS = 0.5
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


def base_url(endpoint: str) -> str:
    """``http://h:8000`` / ``http://h:8000/`` / ``http://h:8000/v1`` -> ``http://h:8000/v1``."""
    url = endpoint.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


def _answer_text(body: Any, chat: bool) -> str:
    """The first choice's text of a (chat) completions response."""
    try:
        choice = body["choices"][0]
        text = choice["message"]["content"] if chat else choice["text"]
    except (KeyError, IndexError, TypeError):
        raise RequestFailed("the answer is not an OpenAI completions response "
                            f"({json.dumps(body)[:200]})") from None
    return text if isinstance(text, str) else ""


class OpenAIClient:
    """Sends one check's request and returns the answer's text."""

    def __init__(self, endpoint: str, model: str, *, timeout: float = 60.0,
                 retries: int = RETRIES, backoff: float = BACKOFF_SECONDS,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.base = base_url(endpoint)
        self.model = model
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.sleep = sleep

    def request_body(self, check: Check) -> dict[str, Any]:
        """The JSON body for ``check`` (exposed for tests and ``--dry-run`` style inspection)."""
        body: dict[str, Any] = {"model": self.model, "max_tokens": check.spec.max_tokens,
                                "temperature": 0}
        if check.spec.messages is not None:
            body["messages"] = [m.dump() for m in check.spec.messages]
        else:
            body["prompt"] = check.spec.prompt
        return body

    def complete(self, check: Check) -> str:
        path = "/chat/completions" if check.chat else "/completions"
        body = self._post(path, self.request_body(check))
        return _answer_text(body, check.chat)

    def _post(self, path: str, payload: dict[str, Any]) -> Any:
        url = self.base + path
        data = json.dumps(payload).encode()
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self.sleep(self.backoff * 2 ** (attempt - 1))
            request = urllib.request.Request(
                url, data=data, method="POST",
                headers={"Content-Type": "application/json", "Accept": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    raw = response.read()
            except urllib.error.HTTPError as exc:
                text = exc.read()[:300].decode("utf-8", "replace")
                last = f"HTTP {exc.code} from {url}: {text}"
                if exc.code in _RETRY_STATUS:
                    continue
                raise RequestFailed(last) from None
            except (TimeoutError, urllib.error.URLError, ConnectionError, OSError) as exc:
                reason = getattr(exc, "reason", exc)
                last = f"{type(reason).__name__}: {reason}"
                if attempt == self.retries:
                    raise EndpointUnreachable(
                        f"endpoint {self.base} unreachable after {self.retries + 1} attempts "
                        f"({last}); check the URL and that the server is up (kubectl "
                        "port-forward svc/<deployment> 8000:<port> for a cluster Service)"
                    ) from None
                continue
            try:
                return json.loads(raw)
            except json.JSONDecodeError:
                raise RequestFailed(f"{url} answered with non-JSON: {raw[:200]!r}") from None
        raise RequestFailed(last)
