"""A fixture Hub that misbehaves on demand, per repo, and a driver that survives anything.

For fuzzing ``kubellm.modelinfo`` (tests/unit/test_fuzz_hub.py):

- ``RawRepo``: a ``FakeRepo`` whose files may be raw bytes (a README.md with broken front matter,
  a config.json that is not JSON, a truncated safetensors header) and whose ``cardData`` may be
  anything; its tags are derived from the well-formed parts only.
- ``FaultyHub``: ``HubServer`` whose ``faults`` (repo id -> ``Fault``) answer some requests of
  that repo with a status code (with or without ``X-Error-Code``, JSON, HTML or empty body), a
  truncated body (``Content-Length`` larger than what is sent), another body or content type, a
  replaced model_info document, or a reset connection.
- ``run_fuzz(calls, env)``: ``python -m hubfixtures.faults`` in a fresh process (huggingface_hub
  reads ``HF_ENDPOINT`` once): each call is resolved by ``FactsResolver`` and, when it gives
  facts, planned by ``kubellm.planner.plan_deployment``; the result says ``facts`` (with the
  plan's refusal reason), ``error`` (a ``KubellmError``: class and reason), or ``crash`` (any
  other exception, with its traceback) - the driver itself never dies of one case.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from hubfixtures.models import FakeFile, FakeRepo
from hubfixtures.server import HubServer, _Handler

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass(frozen=True, repr=False)
class RawRepo(FakeRepo):
    """A repo whose ``raw`` files (path -> bytes) replace the generated ones."""

    raw: tuple[tuple[str, bytes], ...] = ()

    def __repr__(self) -> str:  # what a failing fuzz case shows (not the shard headers)
        raw = {p: d[:300] for p, d in self.raw}
        return f"RawRepo({self.repo_id!r}, card={self.card!r}, config={self.config!r}, raw={raw})"

    @property
    def tags(self) -> list[str]:
        tags = ["transformers", "safetensors", "region:us"]
        lic = self.card.get("license") if isinstance(self.card, dict) else None
        if isinstance(lic, str):
            tags.append(f"license:{lic}")
        return tags

    @property
    def readme(self) -> bytes:
        raw = dict(self.raw).get("README.md")
        return raw if raw is not None else super().readme

    def all_files(self) -> tuple[FakeFile, ...]:
        out = {f.path: f for f in self.files}
        out["README.md"] = FakeFile.small("README.md", self.readme)
        if self.config is not None:
            out["config.json"] = FakeFile.small("config.json",
                                                json.dumps(self.config, default=str))
        for path, data in self.raw:
            out[path] = FakeFile.small(path, data)
        return tuple(out[k] for k in sorted(out))


@dataclass(frozen=True)
class Fault:
    """How to answer the requests of one repo that ``where`` selects.

    ``where``: ``info`` (model_info), ``file:<path>`` (HEAD/GET of that file), ``files`` (every
    file) or ``any``. ``kind``: ``status`` (``status``, ``error_code``, ``body``: json | html |
    empty), ``truncate`` (half the body, then close), ``body`` (``data`` with ``content_type``),
    ``info`` (``document`` as the model_info JSON) or ``reset``.
    """

    kind: str
    where: str = "info"
    status: int = 500
    error_code: str | None = None
    body: str = "json"
    data: bytes = b""
    content_type: str = "application/json"
    document: Any = None
    head_too: bool = False  # also HEAD requests (hf_hub_download's metadata probe)


class FaultyHub(HubServer):
    def __init__(self, models: dict[str, FakeRepo], tokens: Any = ("hf_good",)) -> None:
        super().__init__(models, tokens)
        self.RequestHandlerClass = _FaultyHandler
        self.faults: dict[str, Fault] = {}


def _target(path: str) -> tuple[str | None, str | None]:
    """(repo id, file path or None for the API) of a request path."""
    parts = [unquote(p) for p in urlsplit(path).path.split("/") if p]
    if len(parts) >= 4 and parts[:2] == ["api", "models"]:
        return f"{parts[2]}/{parts[3]}", None
    if len(parts) >= 5 and parts[2] == "resolve":
        return f"{parts[0]}/{parts[1]}", "/".join(parts[4:])
    return None, None


class _FaultyHandler(_Handler):
    server: FaultyHub

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm
        # and the client's delayed ACK stall every response by tens of milliseconds.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _dispatch(self, head: bool) -> None:
        repo, path = _target(self.path)
        fault = self.server.faults.get(repo or "")
        if fault is None or not self._selects(fault, path, head):
            super()._dispatch(head)
            return
        self.server.requests.append((self.command, self.path, self._token()))
        self._apply(fault, head)

    @staticmethod
    def _selects(fault: Fault, path: str | None, head: bool) -> bool:
        if head and not fault.head_too and fault.where != "info":
            return False
        if fault.where == "any":
            return True
        if fault.where == "info":
            return path is None
        if fault.where == "files":
            return path is not None
        return path == fault.where.removeprefix("file:")

    def _apply(self, fault: Fault, head: bool) -> None:
        if fault.kind == "reset":
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        if fault.kind == "status":
            headers = {"Content-Type": "application/json"}
            if fault.error_code:
                headers["X-Error-Code"] = fault.error_code
            body = {"json": json.dumps({"error": "fuzzed"}).encode(),
                    "html": b"<html><body>502 Bad Gateway</body></html>", "empty": b""}[fault.body]
            if fault.body == "html":
                headers["Content-Type"] = "text/html"
            self._send(fault.status, body, headers, head=head)
            return
        repo = self.server.models.get(_target(self.path)[0] or "")
        hub_headers = {"X-Repo-Commit": repo.sha} if repo is not None else {}
        if fault.kind == "info":
            self._send(200, json.dumps(fault.document).encode(),
                       {"Content-Type": "application/json"}, head=head)
            return
        data = fault.data
        hub_headers["ETag"] = f'"{hashlib.sha256(data).hexdigest()}"'
        if fault.kind == "truncate":
            self.send_response(200)
            for key, value in hub_headers.items():
                self.send_header(key, value)
            self.send_header("Content-Type", fault.content_type)
            self.send_header("Content-Length", str(len(data) * 2 + 10))
            self.end_headers()
            if not head:
                self.wfile.write(data[: len(data) // 2])
            self.close_connection = True
            return
        self._send(200, data, {"Content-Type": fault.content_type, **hub_headers}, head=head)


@contextmanager
def serve_faulty_hub(models: dict[str, FakeRepo],
                     faults: dict[str, Fault] | None = None) -> Iterator[FaultyHub]:
    server = FaultyHub(models)
    server.faults = dict(faults or {})
    server.start()
    try:
        yield server
    finally:
        server.stop()


# ---------------------------------------------------------------- the driver


@dataclass
class Outcome:
    repo: str
    facts: dict[str, Any] | None = None
    plan: str | None = None  # the plan's refusal reason, or "deployable"
    error: str | None = None  # KubellmError subclass name
    reason: str | None = None
    message: str | None = None
    crash: str | None = None  # traceback of anything else
    extra: dict[str, Any] = field(default_factory=dict)


def run_fuzz(calls: list[dict[str, Any]], env: dict[str, str],
             timeout: float = 300) -> list[dict[str, Any]]:
    full = {k: v for k, v in os.environ.items()
            if not k.startswith(("HF_", "HUGGINGFACE_", "TRANSFORMERS_"))}
    full.update({"HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1",
                 "PYTHONPATH": os.pathsep.join([os.path.join(ROOT, "operator"),
                                                os.path.join(ROOT, "tests")])})
    full.update(env)
    proc = subprocess.run([sys.executable, "-m", "hubfixtures.faults"], input=json.dumps(calls),
                          capture_output=True, text=True, env=full, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"fuzz driver died ({proc.returncode}):\n{proc.stderr}")
    return list(json.loads(proc.stdout))


def fuzz_one(resolver: Any, call: dict[str, Any]) -> Outcome:
    """Resolve and plan one call; never raises."""
    out = Outcome(repo=call["repo"])
    started = time.monotonic()
    try:
        return _fuzz_one(resolver, call, out)
    finally:
        out.extra["seconds"] = round(time.monotonic() - started, 3)


def _fuzz_one(resolver: Any, call: dict[str, Any], out: Outcome) -> Outcome:
    from kubellm.api.v1alpha1 import LLMDeployment
    from kubellm.errors import KubellmError
    from kubellm.planner import plan_deployment
    from kubellm.sizing import default_inventory

    try:
        facts = resolver.resolve(call["repo"], call.get("revision", "main"),
                                 token=call.get("token"), gguf_file=call.get("gguf_file"))
    except KubellmError as exc:
        out.error, out.reason, out.message = type(exc).__name__, exc.reason, str(exc)
        return out
    except BaseException:
        out.crash = traceback.format_exc()
        return out
    try:
        out.facts = json.loads(json.dumps(dataclasses.asdict(facts), default=str))
        llmd = LLMDeployment.model_validate({
            "metadata": {"name": "fuzz", "namespace": "default"},
            "spec": {"model": {"repo": call["repo"]}, **call.get("spec", {})}})
        plan = plan_deployment(llmd, facts, [], default_inventory())
        out.plan = plan.refusal_reason or "deployable"
    except BaseException:
        out.crash = traceback.format_exc()
    return out


class _NoSleep:
    """``time`` for huggingface_hub's retry loops without their waits (1+2+4+8+8 s per 5xx file,
    1 s per resumed download):
    the retries still happen, the fuzz run stays bounded."""

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)

    @staticmethod
    def sleep(seconds: float) -> None:
        return None


def main() -> int:
    from huggingface_hub import file_download
    from huggingface_hub.utils import _http

    from kubellm.modelinfo import FactsResolver

    if os.environ.get("KUBELLM_FUZZ_NO_BACKOFF") == "1":  # http_backoff and the resume loop
        _http.time = _NoSleep()  # type: ignore[assignment]
        file_download.time = _NoSleep()  # type: ignore[assignment]

    resolver = FactsResolver(timeout=float(os.environ.get("KUBELLM_TEST_TIMEOUT", "5")))
    results = [dataclasses.asdict(fuzz_one(resolver, call)) for call in json.load(sys.stdin)]
    json.dump(results, sys.stdout)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
