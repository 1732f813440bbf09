"""The Hugging Face source behind the ``ModelSource`` protocol (``kubellm.modelsource``).

Thin: the facts come from ``sources.from_hub``/``hub_card``, errors from ``_hub.translate``, the
download from ``download.hf_download``; the offline HF cache (``HF_HUB_OFFLINE=1``) is this
source's own and stays in the resolver.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubellm.errors import KubellmError
from kubellm.facts import ModelFacts
from kubellm.modelinfo import _hub, sources
from kubellm.modelsource import SourceLayout, layout


class HuggingFaceSource:
    """``spec.model.source: huggingface`` (the default)."""

    @property
    def layout(self) -> SourceLayout:
        return layout("huggingface")

    def resolve(self, repo: str, revision: str, *, token: str | None, gguf_file: str | None,
                timeout: float) -> ModelFacts:
        return sources.from_hub(repo, revision, token=token, gguf_file=gguf_file,
                                timeout=timeout)

    def card(self, repo: str, token: str | None,
             timeout: float) -> tuple[dict[str, Any], list[str]]:
        found = sources.hub_card(repo, "main", token, timeout)
        return found[0], found[1]

    def translate(self, exc: BaseException, repo: str, revision: str) -> KubellmError | None:
        return _hub.translate(exc, repo, revision)

    def download(self, req: Any, *, log: Callable[[str], None],
                 sleep: Callable[[float], None]) -> Any:
        from kubellm.modelinfo.download import hf_download

        return hf_download(req, log=log, sleep=sleep)

    def offline_cache(self) -> Path | None:
        return _hub.cache_dir() if _hub.is_offline() else None
