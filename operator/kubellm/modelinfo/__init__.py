"""Model facts from the Hugging Face Hub, a mirror or an offline HF cache; and the cache loader.

The only kubellm package that imports huggingface_hub (lazily: it reads HF_ENDPOINT,
HF_HUB_OFFLINE, HF_HOME/HF_HUB_CACHE and timeouts once at its first import; see ``_hub``).

Public API::

    resolve(repo, revision="main", *, declared=None, token=None, gguf_file=None,
            follow_base=True) -> ModelFacts
    FactsResolver(ttl=300, timeout=10, max_depth=4).resolve(...)   # same signature, memoised
    download(DownloadRequest(...)) -> DownloadResult                 # kubellm download
"""

from kubellm.modelinfo.resolver import FactsResolver, apply_declared, resolve

__all__ = ["FactsResolver", "apply_declared", "resolve"]
