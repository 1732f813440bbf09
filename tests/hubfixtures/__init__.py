"""Fake Hugging Face Hub fixtures shared by every test suite.

- ``hubfixtures.models``: ``CATALOGUE`` of realistic fake repos (real config.json shapes, card
  front matter, safetensors headers declaring the real tensors, GGUF files) without gigabytes.
- ``hubfixtures.cache``: ``build_offline_cache(root, repos)`` writes a standard HF cache.
- ``hubfixtures.server``: ``serve_hub(...)`` runs a local Hub API server (``HF_ENDPOINT``);
  standalone: ``PYTHONPATH=tests python -m hubfixtures.server --port 8999``.
- ``hubfixtures.driver``: ``run_resolve(calls, env)`` runs ``kubellm.modelinfo`` in a fresh
  process (huggingface_hub reads HF_ENDPOINT/HF_HUB_OFFLINE/HF_HUB_CACHE once at import).

Typical uses::

    with serve_hub() as hub:                       # all repos; gated ones need token hf_good
        env = {"HF_ENDPOINT": hub.endpoint}        # for a subprocess / the operator under test
    cache = build_offline_cache(tmp_path, ["Qwen/Qwen2.5-7B-Instruct"])
    env = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache)}
    hub.fail = "500"  # or "hang" (hub.hang_seconds) or "reset"; hub.fail_remaining = 2

The server is imported lazily so ``python -m hubfixtures.server`` runs without a warning.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hubfixtures.cache import build_offline_cache
from hubfixtures.models import CATALOGUE, FakeFile, FakeRepo, get_repo

if TYPE_CHECKING:
    from hubfixtures.server import HubServer, serve_hub

__all__ = [
    "CATALOGUE",
    "FakeFile",
    "FakeRepo",
    "HubServer",
    "build_offline_cache",
    "get_repo",
    "serve_hub",
]


def __getattr__(name: str) -> Any:
    if name in ("HubServer", "serve_hub"):
        from hubfixtures import server

        return getattr(server, name)
    raise AttributeError(name)
