"""The cache loader the download Job runs: ``snapshot_download`` into an HF cache, bounded.

``download`` picks the request's source adapter (``modelinfo.registry``); this module is also the
Hugging Face one (``hf_download``) and holds the completion marker every source writes.

- Layout: the standard HF cache under ``cache_dir`` (``HF_HUB_CACHE``), so vLLM/TGI pods read it
  with ``HF_HUB_OFFLINE=1`` and the operator's offline resolver sees the same files. A finished
  cache gets ``refs/<branch>`` when a branch was asked for and loses huggingface_hub's whole-repo
  tree listing, so offline readers accept the subset we chose (``finish_layout``).
- Timeouts: huggingface_hub 2.4 reads ``HF_HUB_ETAG_TIMEOUT``/``HF_HUB_DOWNLOAD_TIMEOUT`` at import,
  so they are set before its first import (when still possible); some of its calls (repo tree
  listing) pass ``timeout=None``, so a request hook on its shared session gives every request
  without a timeout ours. A hung Hub therefore fails after ``timeout`` seconds, never hangs.
- Retries: huggingface_hub retries little and not uniformly; we make at most ``retries`` extra
  attempts with exponential backoff, and only for "Hub unavailable" (connect errors, timeouts,
  429/5xx). Not found and gated fail at once with one clear line.
- Resumable: huggingface_hub keeps ``.incomplete`` blobs and skips complete files; re-running the
  Job continues. A finished download is recorded in ``<cache_dir>/.kubellm/<key>.complete`` (JSON:
  repo, revision, sha, files with sizes), written atomically and only after success; with the
  marker present and the files in place, a re-run makes no request at all.
"""

from __future__ import annotations

import errno
import json
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from kubellm.errors import CacheStorageError, HubUnavailableError, KubellmError, SpecError
from kubellm.modelinfo import _hub
from kubellm.modelsource import layout

MARKER_DIR = ".kubellm"
T = TypeVar("T")


@dataclass(frozen=True)
class DownloadRequest:
    repo: str
    revision: str = "main"
    source: str = "huggingface"  # spec.model.source (kubellm.modelsource)
    include: tuple[str, ...] = ()  # fnmatch allow patterns; empty = every file
    cache_dir: Path | None = None  # default HF_HUB_CACHE
    token: str | None = None  # default HF_TOKEN
    timeout: float = 30.0  # seconds per request (connect/read)
    retries: int = 5  # extra attempts when the Hub is unavailable
    backoff: float = 2.0  # first wait in seconds, doubled each attempt, capped at 60
    marker: str | None = None  # marker file name (default derived from repo and sha)
    progress_interval: float = 15.0  # seconds between progress lines while downloading


@dataclass(frozen=True)
class DownloadResult:
    repo: str
    sha: str
    snapshot: Path
    files: tuple[tuple[str, int], ...]
    marker: Path
    skipped: bool  # True when the marker showed a complete download (no network)


def marker_name(repo: str, sha: str) -> str:
    return f"models--{repo.replace('/', '--')}--{sha}"


def marker_path(cache_dir: Path, name: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    return cache_dir / MARKER_DIR / f"{safe}.complete"


def prepare_environment(timeout: float) -> None:
    """Set huggingface_hub's timeout variables if it is not imported yet (see module doc)."""
    if "huggingface_hub.constants" in sys.modules:
        return
    seconds = str(max(1, round(timeout)))
    os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", seconds)
    os.environ.setdefault("HF_HUB_DOWNLOAD_TIMEOUT", seconds)


def install_default_timeout(timeout: float) -> None:
    """Give every huggingface_hub request that has no timeout ``timeout`` seconds."""
    import httpx2
    from huggingface_hub import get_session

    limits = httpx2.Timeout(timeout).as_dict()

    def hook(request: httpx2.Request) -> None:
        current = request.extensions.get("timeout") or {}
        if all(v is None for v in current.values()):
            request.extensions["timeout"] = dict(limits)

    client = get_session()
    hooks = client.event_hooks
    if not any(getattr(h, "__name__", "") == "hook" and getattr(h, "__module__", "") == __name__
               for h in hooks.get("request", [])):
        hooks["request"] = [*hooks.get("request", []), hook]
        client.event_hooks = hooks


class _Progress:
    """Prints "progress: x/y GiB" every ``interval`` s from the bytes in ``blobs/`` (including
    ``.incomplete`` parts): line-oriented for Job logs, independent of huggingface_hub's bars."""

    def __init__(self, blobs: Path, total: int, interval: float,
                 log: Callable[[str], None]) -> None:
        self.blobs, self.total, self.interval, self.log = blobs, total, interval, log
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _bytes(self) -> int:
        try:
            return sum(e.stat().st_size for e in os.scandir(self.blobs) if e.is_file())
        except OSError:
            return 0

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            done = self._bytes()
            pct = 100.0 * done / self.total if self.total else 100.0
            self.log(f"progress: {done / 2**30:.2f}/{self.total / 2**30:.2f} GiB ({pct:.0f}%)")

    def __enter__(self) -> _Progress:
        if self.interval > 0:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


def read_marker(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def complete_snapshot(cache_dir: Path, data: dict[str, Any]) -> Path | None:
    """The snapshot dir when every file listed in a marker is present with its size (in the
    layout of the marker's ``source``, Hugging Face when it names none)."""
    repo, sha = str(data["repo"]), str(data["sha"])
    snap = Path(layout(data.get("source")).snapshot_path(str(cache_dir), repo, sha))
    for f in data.get("files", []):
        p = snap / f["path"]
        if not p.is_file() or p.stat().st_size != f["size"]:
            return None
    return snap


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def finish_layout(storage: Path, revision: str, sha: str) -> None:
    """Make the finished cache read like a complete one to offline readers (vLLM, TGI, plan).

    - ``refs/<revision>`` = ``sha`` when a branch or tag was asked for: huggingface_hub writes
      refs only when it resolves a name itself, and we pass it the sha, so without this an
      offline reader asking for ``main`` finds no snapshot.
    - ``trees/<sha>.json`` is removed: huggingface_hub (>= 1.x) caches the repo's *whole* file
      listing there, and an offline ``snapshot_download`` then raises IncompleteSnapshotError
      for every listed file its patterns match that we deliberately left out (vLLM asks for
      ``*.safetensors``, so Mistral's ``consolidated.safetensors`` or ``*.bin`` duplicates).
      Without the listing it returns the snapshot as it is; our marker records what is complete.
      An online re-run lists the repo again (one request).
    """
    if re.fullmatch(r"[0-9a-f]{40}", revision) is None and revision != sha:
        refs = storage / "refs" / revision
        refs.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(refs, sha)  # no trailing newline, as huggingface_hub writes it
    (storage / "trees" / f"{sha}.json").unlink(missing_ok=True)


def _snapshot_files(snap: Path) -> tuple[tuple[str, int], ...]:
    return tuple((p.relative_to(snap).as_posix(), p.stat().st_size)
                 for p in sorted(snap.rglob("*")) if p.is_file())


#: errno values that mean the cache itself cannot be written: not the Hub's fault, not temporary.
STORAGE_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT,
                            errno.ENOTDIR})


def storage_error(exc: BaseException, where: Path | str | None = None) -> CacheStorageError | None:
    """``exc`` (or what it wraps) as a CacheStorageError when it says the cache cannot be written
    (``STORAGE_ERRNOS``); None otherwise."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in STORAGE_ERRNOS:
            path = seen.filename or where or "the cache directory"
            name = errno.errorcode.get(seen.errno or 0, str(seen.errno))
            if seen.errno in (errno.ENOSPC, errno.EDQUOT):
                fix = ("the cache volume is full: give it room (a larger spec.cache.size, or "
                       "a volume no other workload fills)")
            else:
                fix = ("the download pod must be able to write the cache volume: check the "
                       "PVC is not mounted read-only and that its owner or fsGroup lets the "
                       f"pod's user (uid {os.getuid()}) write it")
            return CacheStorageError(
                f"cannot write the model cache at {path}: {seen.strerror or name} ({name}); "
                f"not retried, since the same volume fails the same way. Fix: {fix}")
        seen = seen.__cause__ or seen.__context__
    return None


def check_writable(cache_dir: Path) -> None:
    """Fail at once, permanently, when ``cache_dir`` cannot be written, before any Hub request
    (otherwise huggingface_hub's OSError would look like a misbehaving endpoint and be retried)."""
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        probe = cache_dir / f".kubellm-write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise storage_error(exc, cache_dir) or CacheStorageError(
            f"cannot write the model cache at {cache_dir}: {exc}") from exc


def download(req: DownloadRequest, *, log: Callable[[str], None] = print,
             sleep: Callable[[float], None] = time.sleep) -> DownloadResult:
    """Download ``req.repo@req.revision`` from ``req.source`` into the cache (the source's
    adapter, ``modelinfo.registry``); raise a KubellmError on failure."""
    from kubellm.modelinfo.registry import model_source

    if req.cache_dir:
        check_writable(Path(req.cache_dir))
    result: DownloadResult = model_source(req.source).download(req, log=log, sleep=sleep)
    return result


def write_marker(mpath: Path, body: dict[str, Any]) -> None:
    """The completion marker, written atomically (the last step of a finished download)."""
    mpath.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(mpath, json.dumps(body, indent=2, sort_keys=True) + "\n")


def with_retries(run: Callable[[int, int], T], req: DownloadRequest,
                 translate: Callable[[BaseException], KubellmError | None], *, cache_dir: Path,
                 log: Callable[[str], None], sleep: Callable[[float], None]) -> T:
    """``run(attempt, attempts)`` up to ``req.retries + 1`` times, for every source: a client
    exception becomes kubellm's error (an unwritable cache first, ``storage_error``, then the
    source's ``translate``); only "hub unavailable" is retried, after ``req.backoff`` seconds
    doubled each time (at most 60), the last one saying how many attempts were made."""
    attempts = req.retries + 1
    for attempt in range(1, attempts + 1):
        started = time.monotonic()
        try:
            return run(attempt, attempts)
        except KubellmError:
            raise
        except Exception as exc:
            mapped = storage_error(exc, cache_dir) or translate(exc)
            if mapped is None:
                raise
            if not isinstance(mapped, HubUnavailableError) or attempt == attempts:
                if isinstance(mapped, HubUnavailableError):
                    mapped = HubUnavailableError(
                        f"giving up after {attempts} attempts: {mapped.message}")
                raise mapped from exc
            wait = min(60.0, req.backoff * 2 ** (attempt - 1))
            log(f"attempt {attempt}/{attempts} failed after {time.monotonic() - started:.1f}s: "
                f"{mapped.message}; retrying in {wait:.1f}s")
            sleep(wait)
    raise AssertionError("unreachable: the last attempt returns or raises")


def hf_download(req: DownloadRequest, *, log: Callable[[str], None] = print,
                sleep: Callable[[float], None] = time.sleep) -> DownloadResult:
    """The Hugging Face download (``huggingface_hub.snapshot_download``, see the module doc)."""
    prepare_environment(req.timeout)
    cache_dir = Path(req.cache_dir) if req.cache_dir else _hub.cache_dir()
    token = req.token or _hub.default_token()
    sha_given = re.fullmatch(r"[0-9a-f]{40}", req.revision) is not None

    if sha_given:
        mpath = marker_path(cache_dir, req.marker or marker_name(req.repo, req.revision))
        data = read_marker(mpath)
        if data and data.get("sha") == req.revision and data.get("include") == list(req.include):
            done = complete_snapshot(cache_dir, data)
            if done is not None:
                # a cache finished by an older kubellm may still hold the whole tree listing
                finish_layout(done.parent.parent, req.revision, req.revision)
                log(f"{req.repo}@{req.revision}: already complete ({mpath}), nothing to do")
                listed = tuple((f["path"], f["size"]) for f in data["files"])
                return DownloadResult(req.repo, req.revision, done, listed, mpath, skipped=True)

    if _hub.is_offline():
        raise SpecError("HF_HUB_OFFLINE", "is set, but kubellm download needs the Hub or a mirror",
                        "unset it for the download (set HF_ENDPOINT for a mirror)")
    from huggingface_hub import HfApi, snapshot_download
    from huggingface_hub.utils import disable_progress_bars  # type: ignore[attr-defined]

    disable_progress_bars()  # one line per step in Job logs instead of tqdm bars
    install_default_timeout(req.timeout)
    api = HfApi(token=token)

    def attempt(n: int, attempts: int) -> tuple[str, list[Any], Path]:
        # model_info first, even for a sha: one request without huggingface_hub's own
        # backoff, so not-found and Hub-down are classified at once by our retry loop.
        info = api.model_info(req.repo, revision=req.revision, timeout=req.timeout)
        sha = info.sha or req.revision
        plan = snapshot_download(req.repo, revision=sha, cache_dir=cache_dir, token=token,
                                 allow_patterns=list(req.include) or None,
                                 etag_timeout=req.timeout, dry_run=True)
        todo = [f for f in plan if f.will_download]
        total = sum(int(f.file_size or 0) for f in plan)
        fetch = sum(int(f.file_size or 0) for f in todo)
        log(f"{req.repo}@{sha}: {len(plan)} files, {total / 2**30:.2f} GiB; "
            f"{len(todo)} to fetch ({fetch / 2**30:.2f} GiB), attempt {n}/{attempts}")
        storage = cache_dir / f"models--{req.repo.replace('/', '--')}"
        with _Progress(storage / "blobs", total, req.progress_interval, log):
            snap = Path(snapshot_download(
                req.repo, revision=sha, cache_dir=cache_dir, token=token,
                allow_patterns=list(req.include) or None, etag_timeout=req.timeout,
                max_workers=4))
        return sha, list(plan), snap

    sha, plan, snap = with_retries(
        attempt, req, lambda exc: _hub.translate(exc, req.repo, req.revision),
        cache_dir=cache_dir, log=log, sleep=sleep)
    files = _snapshot_files(snap)
    names = {p for p, _ in files}
    missing = [f.filename for f in plan if f.filename not in names]
    if missing:  # pragma: no cover - huggingface_hub raises before this
        raise HubUnavailableError(f"{req.repo}@{sha}: files missing after download: {missing}")
    wanted = {f.filename for f in plan}
    files = tuple(f for f in files if f[0] in wanted)
    mpath = marker_path(cache_dir, req.marker or marker_name(req.repo, sha))
    body = {"repo": req.repo, "revision": req.revision, "sha": sha, "include": list(req.include),
            "files": [{"path": p, "size": s} for p, s in files]}
    storage = cache_dir / f"models--{req.repo.replace('/', '--')}"
    finish_layout(storage, req.revision, sha)
    write_marker(mpath, body)
    log(f"{req.repo}@{sha}: complete, {len(files)} files, "
        f"{sum(s for _, s in files) / 2**30:.2f} GiB in {snap}; marker {mpath}")
    return DownloadResult(req.repo, sha, snap, files, mpath, skipped=False)
