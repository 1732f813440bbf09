"""Write a standard Hugging Face cache for catalogue repos (what an air-gapped cluster holds).

Layout (as huggingface_hub writes it, hub-api.md §2/§6)::

    <root>/hub/models--org--name/refs/main                  # the sha, NO trailing newline
    <root>/hub/models--org--name/snapshots/<sha>/<files>    # regular files (no blobs/ needed)

Weight files are **sparse files**: the real leading bytes (safetensors header / GGUF magic) are
written and the file is then extended with ``truncate`` to its real size, so ``stat`` reports
e.g. 5 GB per shard while the disk holds a few kilobytes (on tmpfs, ext4, xfs, btrfs).
With ``sparse=False`` the shards are header-only (wrong on-disk size, the index still says the
real ``total_size``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

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
    (base / "refs").mkdir(parents=True, exist_ok=True)
    (base / "refs" / ref).write_text(repo.sha)  # no trailing newline (hub-api.md §6)
    return snap


def build_offline_cache(root: Path, repos: Iterable[str] | None = None, *,
                        sparse: bool = True) -> Path:
    """Write ``root/hub`` with the chosen catalogue repos (default all); returns HF_HUB_CACHE."""
    hub = Path(root) / "hub"
    hub.mkdir(parents=True, exist_ok=True)
    (hub / "CACHEDIR.TAG").write_text("Signature: 8a477f597d28d172789f06886806bc55\n")
    for repo_id in (repos if repos is not None else CATALOGUE):
        write_repo(hub, CATALOGUE[repo_id], sparse=sparse)
    return hub
