"""Tiny real models for the real-pod e2e tests: built offline once, served by the fixture Hub.

:func:`build` runs ``tinymodel_build.py`` with the vLLM engine venv's Python (torch, safetensors,
tokenizers) into ``${XDG_CACHE_HOME:-~/.cache}/kubellm/models/tiny-<hash of the script>/``,
once per script content. :func:`repos` wraps both layouts as :class:`FakeRepo` entries with
their real bytes, so :func:`hubfixtures.server.serve_hub` serves them like any catalogue repo:

- ``kubellm-test/tiny-llama-real``: ``model.safetensors`` (plain HF layout);
- ``kubellm-test/tiny-mistral-real``: ``model-0000N-of-00002.safetensors`` + index next to
  ``consolidated.safetensors`` and ``params.json`` (Mistral's layout).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from pathlib import Path

from hubfixtures.models import FakeFile, FakeRepo

SCRIPT = Path(__file__).with_name("tinymodel_build.py")
LLAMA = "kubellm-test/tiny-llama-real"
MISTRAL = "kubellm-test/tiny-mistral-real"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    key = hashlib.sha256(SCRIPT.read_bytes()).hexdigest()[:12]
    return Path(base) / "kubellm" / "models" / f"tiny-{key}"


def build(python: Path) -> Path:
    """The built model directory (``hf/``, ``mistral/``), building it with ``python`` once."""
    out = cache_dir()
    done = out / "DONE"
    if done.exists():
        return out
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    proc = subprocess.run([str(python), str(SCRIPT), str(partial)], capture_output=True,
                          text=True, timeout=600, check=False)
    if proc.returncode:
        raise RuntimeError(f"building the tiny model failed:\n{proc.stderr[-3000:]}")
    (partial / "DONE").write_text("ok\n")
    shutil.rmtree(out, ignore_errors=True)
    os.replace(partial, out)
    return out


def _repo(repo_id: str, folder: Path, revision_salt: str = "", **extra: object) -> FakeRepo:
    files = tuple(FakeFile.small(p.name, p.read_bytes()) for p in sorted(folder.iterdir())
                  if p.name != "config.json")
    config = json.loads((folder / "config.json").read_text())
    card = {"license": "apache-2.0", "language": ["en"], "pipeline_tag": "text-generation"}
    if revision_salt:
        files = (*files, FakeFile.small("REVISION.txt", revision_salt + "\n"))
    return FakeRepo(repo_id, card, files, config,
                    note="tiny random-weight model built offline (real-pod e2e)",
                    commit=revision_salt, **extra)  # type: ignore[arg-type]


def next_commit(model_dir: Path, repo_id: str = LLAMA, salt: str = "2") -> FakeRepo:
    """A later commit of the plain-layout repo (same weights, one more file, another sha), for
    :meth:`hubfixtures.server.HubServer.push`."""
    return _repo(repo_id, model_dir / "hf", revision_salt=salt)


def repos(model_dir: Path) -> dict[str, FakeRepo]:
    """Both layouts as fixture Hub repos."""
    return {
        LLAMA: _repo(LLAMA, model_dir / "hf"),
        MISTRAL: _repo(MISTRAL, model_dir / "mistral", extra_tags=("mistral-common",)),
    }
