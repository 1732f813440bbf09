"""The model-source seam: where a model comes from, how it is stored and how pods find it.

``spec.model.source`` names one entry of ``data/sources.yaml`` (``huggingface``, the default, or
``modelscope``). Two halves, split by layer:

- ``SourceLayout`` (pure, this module): the facts of a source that rendering needs - the default
  revision, the snapshot directory inside the cache (``snapshot_path``), the cache content
  address (``cache_key``), the download Job's arguments and environment (``download_args``,
  ``download_env``), the serving pods' environment (``pod_env``) and the model reference a
  runtime serves (``served_model``). ``cache.py``
  and the runtimes read only this.
- ``ModelSource`` (a Protocol; implemented in ``kubellm.modelinfo``, the only layer that imports
  hub clients): ``layout`` plus ``resolve`` (facts), ``download`` (the cache loader) and
  ``translate`` (a client exception as kubellm's error: not found, gated, hub unavailable).
  ``kubellm.modelinfo.registry.model_source(name)`` returns one.

A new source is one ``sources.yaml`` entry, one adapter module in ``kubellm.modelinfo`` and its
line in the registry (and the API's ``ModelSourceName``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from kubellm.datafiles import load_mapping
from kubellm.naming import cache_key

if TYPE_CHECKING:
    from kubellm.api.v1alpha1 import SecretKeyRef
    from kubellm.errors import KubellmError
    from kubellm.facts import ModelFacts

DEFAULT_SOURCE = "huggingface"


@dataclass(frozen=True)
class SourceLayout:
    """One entry of ``data/sources.yaml`` (see the file for each field's meaning)."""

    name: str
    default_revision: str
    layout: str
    key_prefix: str
    endpoint_env: str
    token_env: str
    fixed_env: dict[str, str] = field(default_factory=dict)  # sources.yaml download_env
    serve_by_path: bool = False
    cache_env: str = "HF_HUB_CACHE"
    offline_env: str = "HF_HUB_OFFLINE"
    pod_token_env: str | None = None

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT_SOURCE

    def snapshot_path(self, cache_dir: str, repo: str, revision: str) -> str:
        """The directory holding ``repo`` at ``revision`` inside ``cache_dir``."""
        slug = repo.replace("/", "--")
        return f"{cache_dir}/" + self.layout.format(slug=slug, revision=revision)

    def cache_key(self, repo: str, revision: str, files: Sequence[str]) -> str:
        """The cache's content address (``naming.cache_key`` of the source-qualified repo)."""
        return cache_key(self.key_prefix + repo, revision, files)

    def download_args(self) -> list[str]:
        """Arguments ``kubellm download`` needs to pick this source (none for the default)."""
        return [] if self.is_default else ["--source", self.name]

    def download_env(self, endpoint: str | None,
                     token_ref: SecretKeyRef | None) -> list[dict[str, Any]]:
        """The download Job's environment, sorted by name: the fixed part, the operator's
        endpoint (a mirror) and the token from ``spec.hubTokenSecretRef``."""
        env: list[dict[str, Any]] = [{"name": k, "value": v}
                                     for k, v in self.fixed_env.items()]
        if endpoint:
            env.append({"name": self.endpoint_env, "value": endpoint})
        if token_ref is not None:
            env.append({"name": self.token_env, "valueFrom": {
                "secretKeyRef": {"name": token_ref.name, "key": token_ref.key}}})
        return sorted(env, key=lambda e: str(e["name"]))

    def pod_env(self, mount: str, *, cached: bool,
                token_ref: SecretKeyRef | None) -> dict[str, Any]:
        """A serving pod's environment for this source (name -> value or EnvVar): the cache
        directory the engine reads, offline when the shared cache holds the model, else the
        token the engine downloads with (``pod_token_env``)."""
        env: dict[str, Any] = {self.cache_env: mount}
        if cached:
            env[self.offline_env] = "1"  # everything is in the read-only cache mount
        elif token_ref is not None and self.pod_token_env:
            env[self.pod_token_env] = {"name": self.pod_token_env, "valueFrom": {
                "secretKeyRef": {"name": token_ref.name, "key": token_ref.key}}}
        return env

    def served_model(self, repo: str, snapshot: str | None) -> str:
        """What a runtime gets as the model: the snapshot directory when this source's layout is
        not one the engines read (``serve_by_path``) and the cache holds it, else the repo id."""
        return snapshot if self.serve_by_path and snapshot else repo


@cache
def _layouts() -> dict[str, SourceLayout]:
    raw = load_mapping("sources.yaml")["sources"]
    out: dict[str, SourceLayout] = {}
    for name, entry in raw.items():
        out[str(name)] = SourceLayout(
            name=str(name),
            default_revision=str(entry["default_revision"]),
            layout=str(entry["layout"]),
            key_prefix=str(entry.get("key_prefix") or ""),
            endpoint_env=str(entry["endpoint_env"]),
            token_env=str(entry["token_env"]),
            fixed_env={str(k): str(v) for k, v in (entry.get("download_env") or {}).items()},
            serve_by_path=bool(entry.get("serve_by_path", False)),
            cache_env=str(entry["pod_env"]["cache"]),
            offline_env=str(entry["pod_env"]["offline"]),
            pod_token_env=str(entry["pod_env"]["token"]) if entry["pod_env"].get("token")
            else None,
        )
    return out


def source_names() -> tuple[str, ...]:
    """Every source of ``data/sources.yaml``, the default first."""
    names = sorted(_layouts())
    return (DEFAULT_SOURCE, *(n for n in names if n != DEFAULT_SOURCE))


def layout(name: str | None) -> SourceLayout:
    """The layout of source ``name`` (None: the default); ValueError naming the choices."""
    table = _layouts()
    key = name or DEFAULT_SOURCE
    if key not in table:
        raise ValueError(f"unknown model source {key!r}: choose one of {', '.join(source_names())}")
    return table[key]


class ModelSource(Protocol):
    """A hub kubellm can read facts from and download into the shared cache."""

    @property
    def layout(self) -> SourceLayout: ...

    def resolve(self, repo: str, revision: str, *, token: str | None, gguf_file: str | None,
                timeout: float) -> ModelFacts:
        """The model's facts from the hub (errors raised as the client raises them)."""

    def card(self, repo: str, token: str | None,
             timeout: float) -> tuple[dict[str, Any], list[str]]:
        """(card metadata, tags) of a base model at its default revision (licence inheritance)."""

    def translate(self, exc: BaseException, repo: str, revision: str) -> KubellmError | None:
        """A client exception as kubellm's error (None: not the client's, re-raise it)."""

    def download(self, req: Any, *, log: Callable[[str], None],
                 sleep: Callable[[float], None]) -> Any:
        """Fill ``req.cache_dir`` (a ``modelinfo.download.DownloadRequest``)."""

    def offline_cache(self) -> Path | None:
        """The local cache to read facts from without network, when the source is offline."""
