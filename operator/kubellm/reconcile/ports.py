"""What the reconciler needs from the outside world, as Protocols (no kubernetes import).

``kubellm.k8s.KubeCluster`` implements ``ClusterPort`` against a real apiserver; the unit tests
implement it in memory. ``FactsPort`` is ``kubellm.modelinfo.FactsResolver().resolve``.
"""

from __future__ import annotations

from typing import Any, Protocol

from kubellm.api.v1alpha1 import ModelSpec
from kubellm.facts import ModelFacts


class ClusterPort(Protocol):
    def get(self, api_version: str, kind: str, name: str, namespace: str | None) -> (
        dict[str, Any] | None
    ): ...

    def list(self, api_version: str, kind: str, namespace: str | None = None,
             label_selector: str | None = None) -> list[dict[str, Any]]: ...

    def secret_value(self, namespace: str, name: str, key: str) -> str | None: ...

    def apply(self, manifest: dict[str, Any], live: dict[str, Any] | bool | None = False) -> (
        tuple[str | None, dict[str, Any] | None]
    ): ...

    def merge_patch(self, api_version: str, kind: str, name: str, namespace: str | None,
                    patch: dict[str, Any], subresource: str | None = None) -> dict[str, Any]: ...

    def delete(self, api_version: str, kind: str, name: str, namespace: str | None) -> bool: ...

    def event(self, involved: dict[str, Any], type_: str, reason: str, message: str) -> None: ...


class FactsPort(Protocol):
    def __call__(self, repo: str, revision: str = "main", *, declared: ModelSpec | None = None,
                 token: str | None = None, gguf_file: str | None = None) -> ModelFacts: ...
