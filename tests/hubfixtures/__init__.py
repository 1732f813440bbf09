"""Fake Hugging Face Hub fixtures shared by every test suite.

- ``hubfixtures.models``: a catalogue of realistic fake repos (real config.json shapes, card front
  matter, safetensors headers declaring the real tensors, GGUF files) without gigabytes of data.
- ``hubfixtures.cache``: ``build_offline_cache(root, repos)`` writes a standard HF cache.
- ``hubfixtures.server``: ``serve_hub(...)`` runs a local Hub API server (``HF_ENDPOINT``).
"""

from hubfixtures.cache import build_offline_cache
from hubfixtures.models import CATALOGUE, FakeFile, FakeRepo, get_repo
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
