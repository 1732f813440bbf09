"""A test double of an OpenAI-compatible server: ``POST /v1/chat/completions`` and
``POST /v1/completions``, answering from a table, in a thread on 127.0.0.1.

Not a model: it answers what the test put in ``answers`` (keyed by the prompt, or by the last
chat message's content; ``default`` otherwise), records every request body, and can be told to
fail the next N requests with an HTTP status (``fail_next``) or to close connections. The real
e2e against vLLM runs on the real node (tests/e2e).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class FakeOpenAI:
    answers: dict[str, str] = field(default_factory=dict)
    default: str = ""
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    fail_next: list[int] = field(default_factory=list)  # HTTP statuses for the next requests
    url: str = ""

    def answer(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self.requests.append((path, body))
        if self.fail_next:
            status = self.fail_next.pop(0)
            return status, {"error": {"message": f"injected {status}", "code": status}}
        if path == "/v1/chat/completions":
            key = body["messages"][-1]["content"]
            text = self.answers.get(key, self.default)
            return 200, {"object": "chat.completion", "model": body.get("model"),
                         "choices": [{"index": 0, "finish_reason": "stop",
                                      "message": {"role": "assistant", "content": text}}]}
        if path == "/v1/completions":
            text = self.answers.get(body["prompt"], self.default)
            return 200, {"object": "text_completion", "model": body.get("model"),
                         "choices": [{"index": 0, "text": text, "finish_reason": "stop"}]}
        return 404, {"error": {"message": f"no route {path}"}}


@contextmanager
def serve(fake: FakeOpenAI) -> Iterator[FakeOpenAI]:
    """Run ``fake`` on a free loopback port; ``fake.url`` is its ``http://127.0.0.1:P/v1``."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            status, doc = fake.answer(self.path, body)
            data = json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    fake.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
