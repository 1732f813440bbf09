"""A local HTTP server speaking the ModelScope Hub API subset modelscope 1.40.2 calls.

The requests were read from modelscope-hub 0.5.1 (the Hub client modelscope 1.40.2 delegates
to: ``_openapi.py`` get_model, ``_legacy_api.py`` list_repo_files, ``_download.py``) and seen on
the wire::

    GET /openapi/v1/models/{owner}/{name}                         get_model (OpenAPI envelope
                                                                  {"success", "data"})
    GET /api/v1/models/{owner}/{name}                             legacy fallback ({"Data"})
    GET /api/v1/models/{owner}/{name}/repo/files?Revision=R&Recursive=True   file list
    GET /api/v1/models/{owner}/{name}/repo?Revision=R&FilePath=P  one file (Range honoured)
    GET /api/v1/repos/internalAccelerationInfo                    404 (region probe)

It serves the same ``hubfixtures.models`` repos as the fake Hugging Face Hub (same files, sizes,
config, card), so a model reads the same from either source; ``License`` is ModelScope's display
name ("Apache License 2.0") for the card's licence id. Sha256 is listed for files with real
contents only (the client verifies it; virtual shards carry none). Revisions: ``master`` and the
names in ``revisions``. Gated repos answer file requests with 401 unless the token (``Authorization:
Bearer`` or the ``m_session_id`` cookie, as the client sends both) is in ``tokens``. Failures on
demand: ``server.fail = "500" | "hang"``.

Use ``with serve_modelscope() as ms: env MODELSCOPE_ENDPOINT=ms.endpoint``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from hubfixtures.models import CATALOGUE, FakeRepo
from hubfixtures.server import FixtureServer, write_file

# ModelScope shows licences by display name; these are the ones its model pages use.
DISPLAY_LICENCE = {"apache-2.0": "Apache License 2.0", "mit": "MIT License"}


class ModelScopeServer(FixtureServer):
    """``endpoint``, ``requests`` (method, path, token), ``fail``, ``tokens`` are public."""

    def __init__(self, models: dict[str, FakeRepo], tokens: Iterable[str],
                 revisions: Iterable[str] = (), host: str = "127.0.0.1") -> None:
        super().__init__((host, 0), _Handler)
        self.models = models
        self.tokens = set(tokens)
        self.revisions = {"master", *revisions}
        self.requests: list[tuple[str, str, str | None]] = []
        self.fail: str | None = None
        self.hang_seconds = 5.0

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client hanging up (the region probe's 0.2 s timeout, a cancelled download) is
        normal; anything else is printed as usual."""
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


@contextmanager
def serve_modelscope(models: Iterable[str] | None = None, *, tokens: Iterable[str] = ("ms_good",),
                     revisions: Iterable[str] = (),
                     host: str = "127.0.0.1") -> Iterator[ModelScopeServer]:
    """Run a fake ModelScope for the block; ``models``: catalogue ids (default: all)."""
    chosen = dict(CATALOGUE) if models is None else {m: CATALOGUE[m] for m in models}
    server = ModelScopeServer(chosen, tokens, revisions, host=host).start()
    try:
        yield server
    finally:
        server.stop()


def licence_of(repo: FakeRepo) -> str:
    lic = repo.card.get("license")
    if lic == "other" and repo.card.get("license_name"):
        return str(repo.card["license_name"])
    return DISPLAY_LICENCE.get(str(lic), str(lic or ""))


def _info(repo: FakeRepo) -> dict[str, Any]:
    tags = [t for t in repo.tags if not t.startswith(("license:", "region:", "base_model:"))]
    return {
        "id": repo.repo_id, "owner": repo.author, "name": repo.repo_id.split("/", 1)[1],
        "display_name": repo.repo_id.split("/", 1)[1], "license": licence_of(repo),
        "tags": tags, "tasks": [repo.pipeline_tag] if repo.pipeline_tag else [],
        "gated": bool(repo.gated), "private": False, "downloads": 1000, "likes": 10,
        "file_size": sum(f.size for f in repo.all_files()),
    }


class _Handler(BaseHTTPRequestHandler):
    server: ModelScopeServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _token(self) -> str | None:
        auth = self.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            return auth[7:]
        for part in self.headers.get("Cookie", "").split(";"):
            key, _, value = part.strip().partition("=")
            if key == "m_session_id" and value:
                return value
        return None

    def _json(self, status: int, obj: Any) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"Code": status, "Message": message, "Success": False,
                            "RequestId": "fixture"})

    def do_HEAD(self) -> None:
        self._error(405, "HEAD is not served")

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        self.server.requests.append((self.command, self.path, self._token()))
        if self.server.fail == "hang":
            time.sleep(self.server.hang_seconds)
            self.close_connection = True
            return
        if self.server.fail == "500":
            self._error(500, "Internal Error (fake modelscope)")
            return
        parts = [p for p in url.path.split("/") if p]
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        if len(parts) == 5 and parts[:3] == ["openapi", "v1", "models"]:
            repo = self._repo(parts[3], parts[4])
            if repo is not None:
                self._json(200, {"success": True, "request_id": "fixture", "data": _info(repo)})
            return
        if len(parts) >= 5 and parts[:3] == ["api", "v1", "models"]:
            repo = self._repo(parts[3], parts[4])
            if repo is None:
                return
            rest = parts[5:]
            if not rest:
                self._json(200, {"Code": 200, "Success": True, "Data": _info(repo)})
            elif rest == ["repo", "files"]:
                self._files(repo, query)
            elif rest == ["repo"]:
                self._file(repo, query)
            else:
                self._error(404, "not found")
            return
        self._error(404, "not found")

    def _repo(self, owner: str, name: str) -> FakeRepo | None:
        repo = self.server.models.get(f"{owner}/{name}")
        if repo is None:
            self._error(404, f"model {owner}/{name} does not exist")
        return repo

    def _revision_ok(self, query: dict[str, str]) -> bool:
        if query.get("Revision", "master") in self.server.revisions:
            return True
        self._error(404, f"revision {query.get('Revision')!r} does not exist")
        return False

    def _files(self, repo: FakeRepo, query: dict[str, str]) -> None:
        if not self._revision_ok(query):
            return
        entries = []
        for f in repo.all_files():
            entry: dict[str, Any] = {"Name": f.path.rsplit("/", 1)[-1], "Path": f.path,
                                     "Size": f.size, "Type": "blob", "IsLFS": f.is_lfs,
                                     "Revision": repo.sha}
            if f.size == len(f.head):  # real contents: the client checks this hash
                entry["Sha256"] = f.sha256
            entries.append(entry)
        self._json(200, {"Code": 200, "Success": True, "Data": {"Files": entries}})

    def _file(self, repo: FakeRepo, query: dict[str, str]) -> None:
        if not self._revision_ok(query):
            return
        if repo.gated and self._token() not in self.server.tokens:
            self._error(401, "login required: this model needs an access token")
            return
        f = repo.file(query.get("FilePath", "")) or next(
            (x for x in repo.all_files() if x.path == query.get("FilePath")), None)
        if f is None:
            self._error(404, f"file {query.get('FilePath')!r} does not exist")
            return
        write_file(self, f, {"Content-Type": "application/octet-stream",
                             "Accept-Ranges": "bytes", "ETag": f'"{f.sha256}"'}, head=False)
