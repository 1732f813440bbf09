"""The ModelScope source (``spec.model.source: modelscope``) through the real modelscope client.

modelscope 1.40.2 delegates its Hub API to modelscope-hub 0.5.1 (``modelscope.hub.api.HubApi`` is
``modelscope_hub.compat.LegacyHubApi``); requests seen from that client:

    GET /openapi/v1/models/{owner}/{name}          get_model (then /api/v1/models/{id} if 404)
    GET /api/v1/models/{id}/repo/files?Revision=R&Recursive=True    get_model_files
    GET /api/v1/models/{id}/repo?Revision=R&FilePath=P              model_file_download, files
    GET /api/v1/repos/internalAccelerationInfo                       region probe (404 is fine)

Facts: ``get_model`` gives License (a display name such as "Apache License 2.0", normalised to
the licence catalogue's id through ``data/licenses.yaml`` aliases), Tags and gated; no commit sha
and no card data, so README.md (front matter: base_model, license when the API has none),
config.json and the safetensors index are fetched with ``model_file_download`` into a temporary
directory, and the file sizes come from ``get_model_files``. Parameters: estimated from
config.json (the API reports no safetensors counts). Gated without a usable token: the public
facts with ``access_error`` (as for the Hub).

Download: ``snapshot_download(model_id, revision=R, cache_dir=D, allow_patterns=...)`` writes
``D/models/{owner}--{name}/snapshots/{R}/`` (modelscope-hub ``DownloadManager.download_repo``;
checked against ``SourceLayout.snapshot_path``), verifies each file's Sha256 from the listing and
resumes partial files. Endpoint ``MODELSCOPE_ENDPOINT``, token ``MODELSCOPE_API_TOKEN``; both read
by the client itself. Its timeouts and retries are read at import (``prepare_environment``).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubellm.errors import (
    GatedModelError,
    HubUnavailableError,
    KubellmError,
    ModelNotFoundError,
)
from kubellm.facts import ModelFacts
from kubellm.modelinfo import parse, sources
from kubellm.modelinfo.download import (
    DownloadRequest,
    DownloadResult,
    complete_snapshot,
    marker_path,
    read_marker,
    with_retries,
    write_marker,
)
from kubellm.modelsource import SourceLayout, layout

GATED_FIX = (
    "gated model: set spec.hubTokenSecretRef to a Secret holding a ModelScope access token "
    "(MODELSCOPE_API_TOKEN) of an account that was granted access"
)
_CARD_FILES = ("README.md",)


def prepare_environment(timeout: float, retries: int = 0) -> None:
    """modelscope-hub reads its timeouts and retry counts once, at import: set them first (the
    operator's backoff and the download loop do the retrying, as for the Hub)."""
    if "modelscope_hub.constants" in sys.modules:
        return
    seconds = str(max(1, round(timeout)))
    os.environ.setdefault("MODELSCOPE_API_TIMEOUT", seconds)
    os.environ.setdefault("MODELSCOPE_DOWNLOAD_TIMEOUT", seconds)
    os.environ.setdefault("MODELSCOPE_API_MAX_RETRIES", str(max(1, retries)))
    # the file listing has its own retry loop (4 attempts, up to 8 s apart): kubellm retries
    os.environ.setdefault("MODELSCOPE_REPO_TREE_PAGE_MAX_ATTEMPTS", str(max(1, retries)))
    os.environ.setdefault("MODELSCOPE_REPO_TREE_PAGE_TIMEOUT_SECONDS", seconds)


def endpoint() -> str:
    return _configured() or "https://modelscope.cn"


def _configured() -> str | None:
    """MODELSCOPE_ENDPOINT when set (the client reads it once per process, as kubellm does)."""
    return os.environ.get(layout("modelscope").endpoint_env) or None


def normalise_licence(text: str | None) -> str | None:
    """A ModelScope licence string as the catalogue's id ("Apache License 2.0" -> apache-2.0);
    an unknown one as its normalised spelling (the policy's unknownLicense then decides)."""
    if not text or not text.strip():
        return None
    from kubellm.license.catalog import load_catalog, normalise_id

    entry = load_catalog().lookup(text)
    return entry.key if entry is not None else normalise_id(text)


class ModelScopeSource:
    """``spec.model.source: modelscope``."""

    @property
    def layout(self) -> SourceLayout:
        return layout("modelscope")

    # ---------------------------------------------------------------- facts

    def resolve(self, repo: str, revision: str, *, token: str | None, gguf_file: str | None,
                timeout: float) -> ModelFacts:
        prepare_environment(timeout)
        from modelscope.hub.api import HubApi
        from modelscope_hub.errors import NotExistError

        api = HubApi(token=token)
        info = api.get_model(repo, revision=revision)
        try:
            listing = api.get_model_files(repo, revision=revision, recursive=True)
        except NotExistError:
            raise ModelNotFoundError(
                f"revision {revision!r} of model {repo} not found on ModelScope at {endpoint()} "
                "(check spec.model.revision: a branch, tag or commit; ModelScope's default "
                "branch is master)"
            ) from None
        files = _sizes(repo, listing)
        tags = [t for t in (info.get("Tags") or []) if isinstance(t, str)]
        gated = "manual" if info.get("gated") is True else None
        card: dict[str, Any] = {}
        card_error: str | None = None
        with tempfile.TemporaryDirectory(prefix="kubellm-ms-") as tmp:
            fetch = _Fetcher(repo, revision, token, Path(tmp))
            try:
                card, card_error = fetch.card(files)
                config = fetch.json("config.json") if "config.json" in files else None
            except Exception as exc:
                if not (gated and isinstance(self.translate(exc, repo, revision),
                                             GatedModelError)):
                    raise
                # the licence and tags are public: decide the licence, say why the files are not
                public = sources.facts_from(
                    repo, revision, None, _with_licence(card, info.get("License")), tags,
                    gated=gated, config=None, files=files, counts=None, data_bytes=None,
                    total_size=None, gguf_file=gguf_file, library=None, pipeline=_pipeline(info),
                    source="hub", card_error=card_error)
                return dataclasses.replace(public, access_error=f"{repo}: {GATED_FIX}",
                                           endpoint=_configured())
            card = _with_licence(card, info.get("License"))
            total_size = None
            if sources.INDEX in files and not (gguf_file or not parse.weight_paths(files)):
                index = fetch.json(sources.INDEX)
                meta = index.get("metadata") if isinstance(index.get("metadata"), dict) else {}
                total_size = parse._size((meta or {}).get("total_size"))
        facts = sources.facts_from(
            repo, revision, None, card, tags, gated=gated, config=config, files=files,
            counts=None, data_bytes=None, total_size=total_size, gguf_file=gguf_file,
            library=None, pipeline=_pipeline(info), source="hub", card_error=card_error)
        return dataclasses.replace(facts, endpoint=_configured())

    def card(self, repo: str, token: str | None,
             timeout: float) -> tuple[dict[str, Any], list[str]]:
        prepare_environment(timeout)
        from modelscope.hub.api import HubApi

        revision = self.layout.default_revision
        info = HubApi(token=token).get_model(repo, revision=revision)
        with tempfile.TemporaryDirectory(prefix="kubellm-ms-") as tmp:
            card, _ = _Fetcher(repo, revision, token, Path(tmp)).card({"README.md": None})
        tags = [t for t in (info.get("Tags") or []) if isinstance(t, str)]
        return _with_licence(card, info.get("License")), tags

    # ---------------------------------------------------------------- errors

    def translate(self, exc: BaseException, repo: str, revision: str) -> KubellmError | None:
        import requests
        from modelscope_hub import errors as ms

        where = endpoint()
        found = _client_error(exc)
        if isinstance(found, ms.NotExistError):
            return ModelNotFoundError(
                f"model {repo} (revision {revision!r}) not found on ModelScope at {where} (check "
                "spec.model.repo and spec.model.revision; a private repo also needs "
                "spec.hubTokenSecretRef)"
            )
        if isinstance(found, ms.AuthenticationError | ms.PermissionDeniedError):
            return GatedModelError(
                f"{repo}: access denied by ModelScope ({_short(found)}). {GATED_FIX}")
        unavailable = (ms.NetworkError, ms.ServerError, ms.RateLimitError, ms.FileIntegrityError,
                       ms.StorageError, requests.ConnectionError, requests.Timeout,
                       ConnectionError, TimeoutError)
        if isinstance(found, unavailable):
            return HubUnavailableError(
                f"ModelScope at {where} unavailable while reading {repo}@{revision}: "
                f"{type(found).__name__}: {_short(found)} (temporary; set MODELSCOPE_ENDPOINT "
                "for a mirror)"
            )
        if isinstance(found, ms.HubError | requests.RequestException | ValueError | KeyError
                      | TypeError):
            return HubUnavailableError(
                f"ModelScope at {where} gave an answer kubellm cannot use while reading "
                f"{repo}@{revision} ({type(found).__name__}: {_short(found)}); temporary, "
                "retried with backoff (check MODELSCOPE_ENDPOINT if a mirror or proxy is between)"
            )
        return None

    # ---------------------------------------------------------------- download

    def download(self, req: Any, *, log: Callable[[str], None],
                 sleep: Callable[[float], None]) -> Any:
        return _download(self, req, log=log, sleep=sleep)

    def offline_cache(self) -> Path | None:
        return None  # facts are read online only (no offline mode for this source)


class _Fetcher:
    """Small metadata files of one revision, through ``model_file_download`` into ``tmp``."""

    def __init__(self, repo: str, revision: str, token: str | None, tmp: Path) -> None:
        self.repo, self.revision, self.token, self.tmp = repo, revision, token, tmp

    def path(self, name: str) -> Path:
        from modelscope.hub.file_download import model_file_download

        return Path(model_file_download(self.repo, name, revision=self.revision,
                                        cache_dir=str(self.tmp), token=self.token))

    def json(self, name: str) -> dict[str, Any]:
        return sources.json_document(self.path(name).read_bytes(), name, self.repo,
                                     self.revision)

    def card(self, files: dict[str, int | None]) -> tuple[dict[str, Any], str | None]:
        if "README.md" not in files:
            return {}, None
        return sources.read_card(self.path("README.md"))


def _with_licence(card: dict[str, Any], api_licence: Any) -> dict[str, Any]:
    """The card with ``license`` set from the API's licence (else the card's own), normalised."""
    raw = api_licence if isinstance(api_licence, str) and api_licence.strip() \
        else card.get("license") if isinstance(card.get("license"), str) else None
    lic = normalise_licence(raw)
    return {**card, "license": lic} if lic else card


def _pipeline(info: dict[str, Any]) -> str | None:
    tasks = info.get("tasks")
    return tasks[0] if isinstance(tasks, list) and tasks and isinstance(tasks[0], str) else None


def _sizes(repo: str, listing: Any) -> dict[str, int | None]:
    if not isinstance(listing, list):
        raise HubUnavailableError(
            f"ModelScope at {endpoint()} answered the file list of {repo} with "
            f"{type(listing).__name__}, not a list (check MODELSCOPE_ENDPOINT)")
    files: dict[str, int | None] = {}
    for entry in listing:
        path = entry.get("Path") if isinstance(entry, dict) else None
        if not isinstance(path, str) or not path:
            raise HubUnavailableError(
                f"ModelScope at {endpoint()} listed a file of {repo} without a path ({entry!r})")
        size = entry.get("Size")
        files[path] = size if isinstance(size, int) and not isinstance(size, bool) \
            and size >= 0 else None
    return files


def _client_error(exc: BaseException) -> BaseException:
    """The innermost modelscope-hub error behind ``exc`` (the compat layer re-raises some as
    requests.HTTPError), else ``exc`` itself."""
    from modelscope_hub.errors import HubError

    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, HubError):
            return cur
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return exc


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else ""


def _download(src: ModelScopeSource, req: DownloadRequest, *, log: Callable[[str], None],
              sleep: Callable[[float], None]) -> DownloadResult:
    if req.cache_dir is None:
        from kubellm.errors import SpecError

        raise SpecError("--cache-dir", "is required for a ModelScope download",
                        "pass the cache directory (the download Job mounts it at /models)")
    cache_dir = Path(req.cache_dir)
    token = req.token or os.environ.get(src.layout.token_env) or None
    snap = Path(src.layout.snapshot_path(str(cache_dir), req.repo, req.revision))
    mpath = marker_path(cache_dir, req.marker or f"modelscope--{req.repo.replace('/', '--')}"
                        f"--{req.revision}")
    data = read_marker(mpath)
    if data and (data.get("repo"), data.get("revision"), data.get("include")) == \
            (req.repo, req.revision, list(req.include)):
        done = complete_snapshot(cache_dir, data)
        if done is not None:
            log(f"{req.repo}@{req.revision}: already complete ({mpath}), nothing to do")
            listed = tuple((f["path"], f["size"]) for f in data["files"])
            return DownloadResult(req.repo, req.revision, done, listed, mpath, skipped=True)

    prepare_environment(req.timeout, retries=1)
    from modelscope.hub.api import HubApi
    from modelscope.hub.snapshot_download import snapshot_download

    def attempt(n: int, attempts: int) -> tuple[dict[str, int | None], Path]:
        listing = HubApi(token=token).get_model_files(req.repo, revision=req.revision)
        wanted = {p: s for p, s in _sizes(req.repo, listing).items()
                  if not req.include or any(fnmatch.fnmatch(p, pat) for pat in req.include)}
        total = sum(s or 0 for s in wanted.values())
        log(f"{req.repo}@{req.revision} (ModelScope): {len(wanted)} files, "
            f"{total / 2**30:.2f} GiB, attempt {n}/{attempts}")
        got = Path(snapshot_download(req.repo, revision=req.revision, cache_dir=str(cache_dir),
                                     token=token, allow_patterns=list(req.include) or None,
                                     max_workers=4))
        return wanted, got

    wanted, got = with_retries(attempt, req,
                               lambda exc: src.translate(exc, req.repo, req.revision),
                               cache_dir=cache_dir, log=log, sleep=sleep)
    if got.resolve() != snap.resolve():
        raise HubUnavailableError(
            f"modelscope's snapshot_download wrote {req.repo} to {got}, not to {snap} (the "
            "layout of data/sources.yaml): a client version kubellm does not know; pin "
            "modelscope 1.40.2")
    missing = [p for p in wanted if not (snap / p).is_file()]
    if missing:
        raise HubUnavailableError(f"{req.repo}@{req.revision}: files missing after download: "
                                  f"{missing[:5]}")
    files = tuple((p, (snap / p).stat().st_size) for p in sorted(wanted))
    write_marker(mpath, {"repo": req.repo, "revision": req.revision, "sha": req.revision,
                         "source": src.layout.name, "include": list(req.include),
                         "files": [{"path": p, "size": s} for p, s in files]})
    log(f"{req.repo}@{req.revision}: complete, {len(files)} files, "
        f"{sum(s for _, s in files) / 2**30:.2f} GiB in {snap}; marker {mpath}")
    return DownloadResult(req.repo, req.revision, snap, files, mpath, skipped=False)
