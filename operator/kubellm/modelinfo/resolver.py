"""``resolve()`` and ``FactsResolver``: a model's facts from the Hub, the HF cache or the spec.

The source is ``spec.model.source`` (``declared.source``; Hugging Face without a spec): another
source is read online through its adapter (``modelinfo.registry``), with the same error kinds.
Hugging Face: offline mode (``HF_HUB_OFFLINE=1``) reads the cache only; otherwise the Hub,
falling back to the cache when the Hub is unavailable. Then the ``base_model`` chain is followed
(each base's licence; an unresolvable base stays ``resolved=False`` and never fails the
resolve), then declared ``spec.model`` facts fill the gaps and are listed in
``facts.declared``.

Errors: ModelNotFoundError (no repo/revision; or offline cache miss with nothing declared),
GatedModelError (gated, no usable token), HubUnavailableError (Hub unreachable, nothing cached).
A Hub that is unreachable while online is never replaced by declared facts: that is a temporary
condition; air-gapped clusters set HF_HUB_OFFLINE=1.
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kubellm.api.v1alpha1 import ModelSpec, parse_parameters
from kubellm.errors import HubUnavailableError, KubellmError, ModelNotFoundError
from kubellm.facts import BaseModelRef, ModelFacts
from kubellm.modelinfo import _hub, parse, sources
from kubellm.modelinfo.registry import model_source
from kubellm.modelsource import DEFAULT_SOURCE

DEFAULT_TIMEOUT = 10.0  # seconds per Hub request
DEFAULT_TTL = 300.0  # seconds a branch/tag resolution is reused
MAX_BASE_DEPTH = 4
MAX_BASES = 16

# source, repo, revision, file, follow, token
_Key = tuple[str, str, str, str | None, bool, str | None]


class FactsResolver:
    """Resolves facts with a per-(repo, revision, file, follow_base, token) in-memory cache.

    Results for a branch or tag live ``ttl`` seconds; results resolved from the Hub for a 40-hex
    sha live forever (a commit never changes). Errors are not cached. Thread-safe.
    ``cache_dir`` overrides HF_HUB_CACHE for the offline reader (tests); ``clock`` is injectable.
    """

    def __init__(self, *, ttl: float = DEFAULT_TTL, timeout: float = DEFAULT_TIMEOUT,
                 max_depth: int = MAX_BASE_DEPTH, cache_dir: Path | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.timeout = timeout
        self.max_depth = max_depth
        self.cache_dir = cache_dir
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[_Key, tuple[float | None, ModelFacts]] = {}
        self.hub_calls = 0  # resolutions that went past the memory cache (for tests/metrics)

    def resolve(self, repo: str, revision: str = "main", *, declared: ModelSpec | None = None,
                token: str | None = None, gguf_file: str | None = None,
                follow_base: bool = True) -> ModelFacts:
        if gguf_file is None and declared is not None and declared.file:
            gguf_file = declared.file
        # The token is part of the key: a gated repo resolved with one token must not answer
        # a caller without one (that caller must get facts with access_error).
        fingerprint = hashlib.sha256(token.encode()).hexdigest()[:16] if token else None
        key = (_source_of(declared), repo, revision, gguf_file, follow_base, fingerprint)
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and (entry[0] is None or entry[0] > now):
                return self._declared(entry[1], declared, token, follow_base)
        facts = self._resolve_uncached(repo, revision, token, gguf_file, follow_base, declared)
        if facts.source != "declared" and facts.access_error is None:  # access may be granted
            forever = facts.source == "hub" and sources.SHA_RE.match(revision) is not None
            with self._lock:
                self._entries[key] = (None if forever else now + self.ttl, facts)
        return self._declared(facts, declared, token, follow_base)

    def _declared(self, facts: ModelFacts, declared: ModelSpec | None, token: str | None,
                  follow_base: bool) -> ModelFacts:
        out = apply_declared(facts, declared)
        if follow_base and "base_models" in out.declared and not facts.base_models:
            out = dataclasses.replace(out, base_models=self._chain(out, token, declared))
        return out

    def invalidate(self, repo: str | None = None) -> None:
        with self._lock:
            for key in [k for k in self._entries if repo is None or k[1] == repo]:
                del self._entries[key]

    # -- internals
    def _resolve_uncached(self, repo: str, revision: str, token: str | None,
                          gguf_file: str | None, follow_base: bool,
                          declared: ModelSpec | None) -> ModelFacts:
        self.hub_calls += 1
        facts = self._one(repo, revision, token, gguf_file, declared)
        if follow_base and facts.base_models:
            facts = dataclasses.replace(facts, base_models=self._chain(facts, token, declared))
        return facts

    def _one(self, repo: str, revision: str, token: str | None, gguf_file: str | None,
             declared: ModelSpec | None) -> ModelFacts:
        name = _source_of(declared)
        hf = name == DEFAULT_SOURCE  # the only source with an offline cache to read
        if hf and _hub.is_offline():
            cached = sources.from_cache(repo, revision, gguf_file=gguf_file, cache=self.cache_dir)
            if cached is not None:
                return cached
            if declared is not None and _declares_something(declared):
                return ModelFacts(repo=repo, revision=revision, source="declared")
            raise ModelNotFoundError(
                f"model {repo}@{revision} is not in the offline Hugging Face cache "
                f"({self.cache_dir or _hub.cache_dir()}) and HF_HUB_OFFLINE=1: fill the cache "
                f"(e.g. `kubellm download --repo {repo} --revision <sha> --cache-dir <dir>` or "
                "`hf download` on a connected machine, then copy the hub/ folder), or declare "
                "spec.model.license and spec.model.parameters"
            )
        src = model_source(name)
        try:
            return src.resolve(repo, revision, token=token, gguf_file=gguf_file,
                               timeout=self.timeout)
        except KubellmError:
            raise
        except Exception as exc:
            mapped = src.translate(exc, repo, revision)
            if mapped is None:
                raise
            if hf and isinstance(mapped, HubUnavailableError):
                cached = sources.from_cache(repo, revision, gguf_file=gguf_file,
                                            cache=self.cache_dir)
                if cached is not None:
                    return cached
            raise mapped from exc

    def _chain(self, facts: ModelFacts, token: str | None,
               declared: ModelSpec | None) -> tuple[BaseModelRef, ...]:
        """Breadth-first walk of base_model links, each with its licence when resolvable."""
        out: list[BaseModelRef] = []
        seen = {facts.repo}
        frontier = [(ref, 1) for ref in facts.base_models]
        while frontier and len(out) < MAX_BASES:
            ref, depth = frontier.pop(0)
            if ref.repo in seen:
                continue
            seen.add(ref.repo)
            card = self._base_card(ref.repo, token, _source_of(declared))
            if card is None:
                out.append(dataclasses.replace(ref, resolved=False))
                continue
            lic, lic_name, _ = parse.licence_from(card[0], card[1])
            out.append(dataclasses.replace(ref, license=lic, license_name=lic_name,
                                           resolved=True))
            if depth < self.max_depth:
                pairs = sources.infer_relations(parse.base_models_from(card[0], card[1]), {},
                                                None)
                frontier += [(BaseModelRef(repo=r, relation=rel), depth + 1) for r, rel in pairs]
        return tuple(out)

    def _base_card(self, repo: str, token: str | None,
                   name: str) -> tuple[dict[str, Any], list[str]] | None:
        """(card, tags) of a base model from the model's source (a base named on ModelScope is
        read from ModelScope) or the HF cache; None when unresolvable."""
        src = model_source(name)
        if name != DEFAULT_SOURCE or not _hub.is_offline():
            try:
                return src.card(repo, token, self.timeout)
            except Exception as exc:
                if src.translate(exc, repo, src.layout.default_revision) is None:
                    raise
            if name != DEFAULT_SOURCE:
                return None
        found = sources.cached_snapshot(repo, "main", self.cache_dir or _hub.cache_dir())
        if found is None:
            return None
        read = sources.cache_card(found[1])
        if read is None or read[1] is not None:  # no card, or unreadable metadata: unresolved
            return None
        return read[0], parse.card_tags(read[0])


def _source_of(declared: ModelSpec | None) -> str:
    return declared.source if declared is not None else DEFAULT_SOURCE


def _declares_something(spec: ModelSpec) -> bool:
    return any(v is not None for v in (spec.license, spec.license_name, spec.parameters,
                                       spec.base_model))


def apply_declared(facts: ModelFacts, spec: ModelSpec | None) -> ModelFacts:
    """Fill facts the Hub/cache did not know from ``spec.model``; list them in ``declared``."""
    if spec is None:
        return facts
    changes: dict[str, object] = {}
    if facts.license is None and spec.license:
        changes["license"] = spec.license.lower()
        if facts.license_name is None and spec.license_name:
            changes["license_name"] = spec.license_name
    elif facts.license_name is None and spec.license_name and facts.license == "other":
        changes["license_name"] = spec.license_name
    if facts.parameters is None and spec.parameters is not None:
        changes["parameters"] = parse_parameters(spec.parameters)
    if not facts.base_models and spec.base_model:
        changes["base_models"] = (BaseModelRef(repo=spec.base_model, relation="unknown"),)
    if not changes:
        return facts
    declared = tuple(dict.fromkeys((*facts.declared, *changes)))
    return dataclasses.replace(facts, declared=declared, **changes)  # type: ignore[arg-type]


def resolve(repo: str, revision: str = "main", *, declared: ModelSpec | None = None,
            token: str | None = None, gguf_file: str | None = None,
            follow_base: bool = True) -> ModelFacts:
    """Resolve one model's facts without a memory cache (see ``FactsResolver``)."""
    return FactsResolver().resolve(repo, revision, declared=declared, token=token,
                                   gguf_file=gguf_file, follow_base=follow_base)
