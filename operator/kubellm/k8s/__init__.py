"""The kubernetes-client adapter (the only package besides ``sandbox`` importing ``kubernetes``).

``KubeCluster`` (reads, server-side apply with field manager ``kubellm`` and a zero-write no-op
check, status patches, events, write counts) and ``load_api_client``. ``kubellm.k8s.diff`` holds
the pure apply decision and imports no client, so importing it stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from kubellm.k8s.cluster import KubeCluster, load_api_client

__all__ = ["KubeCluster", "load_api_client"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from kubellm.k8s import cluster

        return getattr(cluster, name)
    raise AttributeError(name)
