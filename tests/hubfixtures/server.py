"""A local HTTP server speaking the Hub API subset huggingface_hub 2.4 uses (hub-api.md).

Serves the ``hubfixtures.models`` catalogue::

    GET  /api/models/{repo}[/revision/{rev}][?blobs=true][&expand=...]   model_info / repo_info
    GET  /api/models/{repo}/tree/{rev}[/{path}]?recursive=...             list_repo_tree
    HEAD|GET /{repo}/resolve/{rev}/{path}                                 hf_hub_download, Range
    GET  /api/agent-harnesses                                             404 (telemetry)

Errors carry ``X-Error-Code`` (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo), as the
client maps only those. Gated repos (``gated`` set) answer file requests with 401 GatedRepo unless
``Authorization: Bearer <token>`` names a token in ``tokens``; model_info stays public, as on the
real Hub. Failures on demand: ``server.fail = "500" | "hang" | "reset"`` (optionally only for
``fail_remaining`` requests), to test HubUnavailableError, retries and timeouts. ``push(repo)``
makes ``repo`` the new head of ``main`` (a new commit); earlier commits stay reachable by sha.

Use ``with serve_hub() as hub: env HF_ENDPOINT=hub.endpoint`` or run standalone:
``python -m hubfixtures.server --port 8999`` (from ``tests/`` on PYTHONPATH).
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit

from hubfixtures.models import CATALOGUE, FakeFile, FakeRepo

LAST_MODIFIED = "2024-09-25T14:34:58.000Z"


class FixtureServer(ThreadingHTTPServer):
    """A threaded local server with ``endpoint``, ``start()`` (a daemon thread) and ``stop()``:
    the base of the fixture hubs."""

    daemon_threads = True
    allow_reuse_address = True
    _thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        return f"http://{self.server_address[0]}:{self.server_address[1]}"

    def start(self) -> Self:
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class HubServer(FixtureServer):
    """The server object: ``endpoint``, ``requests`` (a log), ``fail`` and ``tokens`` are public."""

    def __init__(self, models: dict[str, FakeRepo], tokens: Iterable[str], port: int = 0,
                 host: str = "127.0.0.1") -> None:
        super().__init__((host, port), _Handler)
        self.models = models
        self.tokens = set(tokens)
        self.requests: list[tuple[str, str, str | None]] = []  # method, path, token
        self.fail: str | None = None  # "500" | "hang" | "reset"
        self.fail_remaining: int | None = None  # None: fail forever (while fail is set)
        self.hang_seconds = 5.0
        self.delay = 0.0  # seconds to wait before answering each request (slow Hub)
        self.drop_info_fields: set[str] = set()  # e.g. {"safetensors"}: model_info omits them
        self.history: dict[str, dict[str, FakeRepo]] = {}  # repo id -> sha -> earlier commit
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def push(self, repo: FakeRepo) -> None:
        """A new commit on ``main``: ``repo`` (same id, another ``commit``) replaces the head."""
        with self._lock:
            old = self.models.get(repo.repo_id)
            if old is not None:
                if old.sha == repo.sha:
                    raise ValueError(f"{repo.repo_id}: push needs another commit than {old.sha}")
                self.history.setdefault(repo.repo_id, {})[old.sha] = old
            self.models = {**self.models, repo.repo_id: repo}

    def should_fail(self) -> str | None:
        with self._lock:
            if self.fail is None:
                return None
            if self.fail_remaining is not None:
                if self.fail_remaining <= 0:
                    return None
                self.fail_remaining -= 1
            return self.fail



@contextmanager
def serve_hub(models: Iterable[str] | dict[str, FakeRepo] | None = None, *,
              tokens: Iterable[str] = ("hf_good",),
              host: str = "127.0.0.1") -> Iterator[HubServer]:
    """Run a fake Hub for the block; ``models`` are catalogue ids or repos (default: all).
    ``host``: the address to listen on (the real node's pods reach the bridge address)."""
    if models is None:
        chosen = dict(CATALOGUE)
    elif isinstance(models, dict):
        chosen = dict(models)
    else:
        chosen = {m: CATALOGUE[m] for m in models}
    server = HubServer(chosen, tokens, host=host).start()
    try:
        yield server
    finally:
        server.stop()


def _info(repo: FakeRepo, blobs: bool) -> dict[str, Any]:
    siblings: list[dict[str, Any]] = []
    for f in repo.all_files():
        entry: dict[str, Any] = {"rfilename": f.path}
        if blobs:
            entry.update(blobId=f.git_oid, size=f.size)
            if f.is_lfs:
                entry["lfs"] = {"sha256": f.sha256, "size": f.size, "pointerSize": 134}
        siblings.append(entry)
    data: dict[str, Any] = {
        "_id": repo.sha[:24], "id": repo.repo_id, "modelId": repo.repo_id, "author": repo.author,
        "sha": repo.sha, "lastModified": LAST_MODIFIED, "createdAt": LAST_MODIFIED,
        "private": False, "gated": repo.gated, "disabled": False, "downloads": 1000, "likes": 10,
        "library_name": repo.library_name, "pipeline_tag": repo.pipeline_tag, "tags": repo.tags,
        "cardData": repo.card, "siblings": siblings, "spaces": [],
        "usedStorage": sum(f.size for f in repo.all_files()),
    }
    if repo.config is not None:
        data["config"] = {k: repo.config[k] for k in ("architectures", "model_type")
                          if k in repo.config}
    params = repo.safetensors_parameters()
    if params:
        data["safetensors"] = {"parameters": params, "total": sum(params.values())}
    return {k: v for k, v in data.items() if v is not None}


class _Handler(BaseHTTPRequestHandler):
    server: HubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    # -- helpers
    def _token(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        return auth[7:] if auth.startswith("Bearer ") else None

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              *, head: bool = False, length: int | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        self.end_headers()
        if not head and body:
            self.wfile.write(body)

    def _json(self, obj: Any, headers: dict[str, str] | None = None) -> None:
        self._send(200, json.dumps(obj).encode(),
                   {"Content-Type": "application/json", **(headers or {})})

    def _error(self, status: int, code: str | None, message: str, *, head: bool = False,
               extra: dict[str, str] | None = None) -> None:
        headers = {"Content-Type": "application/json", "X-Error-Message": message, **(extra or {})}
        if code:
            headers["X-Error-Code"] = code
        self._send(status, json.dumps({"error": message}).encode(), headers, head=head)

    def _repo_rev(self, org: str, name: str, rev: str | None,
                  head: bool = False) -> tuple[FakeRepo, str] | None:
        repo = self.server.models.get(f"{org}/{name}")
        if repo is None:
            self._error(404, "RepoNotFound", "Repository not found", head=head)
            return None
        rev = unquote(rev) if rev is not None else "main"
        if rev in ("main", repo.sha):
            return repo, repo.sha
        earlier = self.server.history.get(repo.repo_id, {}).get(rev)
        if earlier is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {rev}", head=head)
            return None
        return earlier, earlier.sha

    # -- verbs
    def do_HEAD(self) -> None:
        self._dispatch(head=True)

    def do_GET(self) -> None:
        self._dispatch(head=False)

    def _dispatch(self, head: bool) -> None:
        url = urlsplit(self.path)
        self.server.requests.append((self.command, self.path, self._token()))
        if self.server.delay:
            time.sleep(self.server.delay)
        failing = self.server.should_fail()
        if failing == "hang":
            time.sleep(self.server.hang_seconds)
            self.close_connection = True
            return
        if failing == "reset":
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        if failing == "500":
            self._error(500, None, "Internal Error (fake hub)", head=head)
            return
        parts = [p for p in url.path.split("/") if p != ""]
        query = parse_qs(url.query)
        if len(parts) >= 4 and parts[:2] == ["api", "models"]:
            org, name, rest = parts[2], parts[3], parts[4:]
            if not rest:
                self._model_info(org, name, None, query)
            elif rest[0] == "revision" and len(rest) == 2:
                self._model_info(org, name, rest[1], query)
            elif rest[0] == "tree" and len(rest) >= 2:
                self._tree(org, name, rest[1], "/".join(rest[2:]), query)
            else:
                self._error(404, None, "Not found")
            return
        if len(parts) >= 5 and parts[2] == "resolve":
            self._resolve(parts[0], parts[1], parts[3], "/".join(parts[4:]), head)
            return
        self._error(404, None, "Not found", head=head)

    def _model_info(self, org: str, name: str, rev: str | None,
                    query: dict[str, list[str]]) -> None:
        found = self._repo_rev(org, name, rev)
        if found is None:
            return
        info = _info(found[0], blobs=query.get("blobs", ["false"])[0] == "true")
        for key in self.server.drop_info_fields:
            info.pop(key, None)
        expand = query.get("expand")
        if expand:
            wire = {"cardData": "cardData", "safetensors": "safetensors"}
            info = {k: v for k, v in info.items() if k == "id" or wire.get(k, k) in expand}
        self._json(info)

    def _tree(self, org: str, name: str, rev: str, under: str,
              query: dict[str, list[str]]) -> None:
        found = self._repo_rev(org, name, rev)
        if found is None:
            return
        repo, _ = found
        recursive = query.get("recursive", ["false"])[0] in ("true", "True", "1")
        prefix = under.rstrip("/") + "/" if under else ""
        entries: list[dict[str, Any]] = []
        dirs: set[str] = set()
        for f in repo.all_files():
            if not f.path.startswith(prefix):
                continue
            rel = f.path[len(prefix):]
            if "/" in rel:
                for i in range(rel.count("/")):
                    d = prefix + "/".join(rel.split("/")[: i + 1])
                    if d not in dirs and (recursive or i == 0):
                        dirs.add(d)
                        entries.append({"type": "directory", "oid": "0" * 40, "size": 0,
                                        "path": d})
                if not recursive:
                    continue
            entry: dict[str, Any] = {"type": "file", "oid": f.git_oid, "size": f.size,
                                     "path": f.path}
            if f.is_lfs:
                entry["lfs"] = {"oid": f.sha256, "size": f.size, "pointerSize": 134}
            entries.append(entry)
        self._json(entries)

    def _resolve(self, org: str, name: str, rev: str, path: str, head: bool) -> None:
        found = self._repo_rev(org, name, rev, head=head)
        if found is None:
            return
        repo, sha = found
        if repo.gated and self._token() not in self.server.tokens:
            self._error(401, "GatedRepo",
                        f"Access to model {repo.repo_id} is restricted. You must have access to "
                        "it and be authenticated to access it. Please log in.", head=head)
            return
        f: FakeFile | None = next((x for x in repo.all_files() if x.path == unquote(path)), None)
        if f is None:
            self._error(404, "EntryNotFound", "Entry not found", head=head,
                        extra={"X-Repo-Commit": sha})
            return
        headers = {"X-Repo-Commit": sha, "ETag": f'"{f.sha256}"', "Accept-Ranges": "bytes",
                   "Content-Type": "application/octet-stream"}
        if f.is_lfs:
            headers["X-Linked-Size"] = str(f.size)
        write_file(self, f, headers, head=head)


def write_file(handler: BaseHTTPRequestHandler, f: FakeFile, headers: dict[str, str], *,
               head: bool) -> None:
    """Answer with ``f``'s bytes (a ``Range: bytes=a-b`` request gets 206 and that part), in
    1 MiB chunks; a client that hangs up mid-way is not an error. Shared by the fixture hubs."""
    start, end, status = 0, f.size, 200
    rng = handler.headers.get("Range")
    if rng and rng.startswith("bytes=") and not head:
        a, _, b = rng[6:].partition("-")
        start = int(a or 0)
        end = min(int(b) + 1, f.size) if b else f.size
        status = 206
        headers = {**headers, "Content-Range": f"bytes {start}-{max(end - 1, start)}/{f.size}"}
    handler.send_response(200 if head else status)
    for k, v in headers.items():
        handler.send_header(k, v)
    handler.send_header("Content-Length", str(f.size if head else end - start))
    handler.end_headers()
    if head:
        return
    chunk = 1 << 20
    pos = start
    try:
        while pos < end:
            nxt = min(pos + chunk, end)
            handler.wfile.write(f.read(pos, nxt))
            pos = nxt
    except (BrokenPipeError, ConnectionResetError):
        handler.close_connection = True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run the fake Hugging Face Hub.")
    parser.add_argument("--port", type=int, default=8999)
    parser.add_argument("--token", action="append", default=None,
                        help="accepted token for gated repos (repeatable; default hf_good)")
    args = parser.parse_args(argv)
    server = HubServer(dict(CATALOGUE), args.token or ["hf_good"], port=args.port)
    print(f"fake hub on {server.endpoint} serving {len(CATALOGUE)} repos", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
