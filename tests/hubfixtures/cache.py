"""Write a standard Hugging Face cache for catalogue repos (what an air-gapped cluster holds).

Layout (as huggingface_hub writes it, hub-api.md §2/§6)::

    <root>/hub/models--org--name/refs/main                  # the sha, NO trailing newline
    <root>/hub/models--org--name/snapshots/<sha>/<files>    # regular files (no blobs/ needed)

Weight files are **sparse files**: the real leading bytes (safetensors header / GGUF magic) are
written and the file is then extended with ``truncate`` to its real size, so ``stat`` reports
e.g. 5 GB per shard while the disk holds a few kilobytes (on tmpfs, ext4, xfs, btrfs).
With ``sparse=False`` the shards are header-only (wrong on-disk size, the index still says the
real ``total_size``).

``build_cache_from_metadata`` writes the same layout from a directory of real metadata files
(``examples/hub-metadata/<org>/<repo>/``: README.md, config.json, the safetensors index; no
weights), one snapshot per repo at the sha ``SOURCES.yaml`` records (``metadata_sha``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from hubfixtures.models import CATALOGUE, FakeRepo


def repo_folder(repo_id: str) -> str:
    return "models--" + repo_id.replace("/", "--")


def write_repo(hub_cache: Path, repo: FakeRepo, *, sparse: bool = True,
               files: Iterable[str] | None = None, ref: str = "main") -> Path:
    """Write one repo's snapshot (all files, or only ``files``); returns the snapshot dir."""
    base = hub_cache / repo_folder(repo.repo_id)
    snap = base / "snapshots" / repo.sha
    wanted = set(files) if files is not None else None
    for f in repo.all_files():
        if wanted is not None and f.path not in wanted:
            continue
        path = snap / f.path
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as out:
            out.write(f.head if f.size > len(f.head) else f.read())
            if sparse and f.size > len(f.head):
                out.truncate(f.size)
    _write_ref(base, ref, repo.sha)
    return snap


def _write_ref(base: Path, ref: str, sha: str) -> None:
    (base / "refs").mkdir(parents=True, exist_ok=True)
    (base / "refs" / ref).write_text(sha)  # no trailing newline (hub-api.md §6)


def _hub_dir(root: Path) -> Path:
    hub = Path(root) / "hub"
    hub.mkdir(parents=True, exist_ok=True)
    (hub / "CACHEDIR.TAG").write_text("Signature: 8a477f597d28d172789f06886806bc55\n")
    return hub


def build_offline_cache(root: Path, repos: Iterable[str] | None = None, *,
                        sparse: bool = True) -> Path:
    """Write ``root/hub`` with the chosen catalogue repos (default all); returns HF_HUB_CACHE."""
    hub = _hub_dir(root)
    for repo_id in (repos if repos is not None else CATALOGUE):
        write_repo(hub, CATALOGUE[repo_id], sparse=sparse)
    return hub


# ---------------------------------------------------------------- from real metadata files


def metadata_sources(src: Path) -> dict[str, Any]:
    """``src/SOURCES.yaml``'s ``repos`` mapping: repo id -> {commit, files: {name: ...}}."""
    doc = yaml.safe_load((Path(src) / "SOURCES.yaml").read_text(encoding="utf-8"))
    return dict(doc["repos"])


def metadata_sha(src: Path, repo_id: str, entry: dict[str, Any]) -> str:
    """The snapshot sha of one repo: the upstream commit SOURCES.yaml records when it was
    verified, else a stand-in derived from the files (sha1 over "path sha256" lines, sorted),
    so the same files always give the same sha and any edit gives a new one."""
    commit = entry.get("commit")
    if commit:
        return str(commit)
    folder = Path(src) / repo_id
    lines = [f"{p.relative_to(folder).as_posix()} {hashlib.sha256(p.read_bytes()).hexdigest()}"
             for p in sorted(folder.rglob("*")) if p.is_file()]
    return hashlib.sha1("\n".join(lines).encode()).hexdigest()


def build_cache_from_metadata(root: Path, src: Path) -> Path:
    """Write ``root/hub`` with every repo of ``src`` (examples/hub-metadata): its files copied
    as regular files into ``snapshots/<sha>/`` and ``refs/main``; returns HF_HUB_CACHE."""
    hub = _hub_dir(root)
    for repo_id, entry in sorted(metadata_sources(src).items()):
        sha = metadata_sha(src, repo_id, entry)
        base = hub / repo_folder(repo_id)
        snap = base / "snapshots" / sha
        snap.mkdir(parents=True, exist_ok=True)
        for name in sorted(entry["files"]):
            (snap / name).write_bytes((Path(src) / repo_id / name).read_bytes())
        _write_ref(base, "main", sha)
    return hub
