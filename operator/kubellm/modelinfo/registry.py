"""``spec.model.source`` name -> its ``ModelSource`` adapter (``kubellm.modelsource``).

The one table of adapters; each is imported on first use, so a process that never reads
ModelScope never imports its client.
"""

from __future__ import annotations

from functools import cache

from kubellm.modelsource import DEFAULT_SOURCE, ModelSource, layout


@cache
def model_source(name: str | None = None) -> ModelSource:
    """The adapter of source ``name`` (None: Hugging Face); ValueError for an unknown name."""
    key = layout(name).name  # validates against data/sources.yaml
    if key == "modelscope":
        from kubellm.modelinfo.modelscope import ModelScopeSource

        return ModelScopeSource()
    if key == DEFAULT_SOURCE:
        from kubellm.modelinfo.huggingface import HuggingFaceSource

        return HuggingFaceSource()
    raise ValueError(f"model source {key!r} is in data/sources.yaml but has no adapter in "
                     "kubellm.modelinfo.registry")
