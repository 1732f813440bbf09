"""The shared model cache: spec.cache (one PVC per repo, revision and files) and status.cache."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from kubellm.api.v1alpha1.common import _Model


class CacheSpec(_Model):
    """The shared model cache: one PVC per (repo, revision, files), shared by deployments."""

    enabled: bool = Field(
        default=True,
        description="Download the model once into a shared PVC and serve it offline from there.",
    )
    storage_class_name: str | None = Field(
        default=None, description="StorageClass of the cache PVC (default: the cluster default)."
    )
    size: str = Field(
        default="auto",
        description="PVC size: auto (weight bytes plus margin) or a quantity such as 200Gi.",
        pattern=r"^(auto|[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?)$",
    )
    access_mode: Literal["ReadWriteOnce", "ReadWriteMany", "ReadOnlyMany"] = Field(
        default="ReadWriteOnce",
        description="Access mode of the cache PVC (ReadWriteMany to share across nodes).",
    )


class CacheStatus(_Model):
    """The shared model cache this deployment uses."""

    key: str | None = Field(default=None, description="Content address of the cache.")
    pvc_name: str | None = Field(default=None, description="The shared cache PVC.")
    job_name: str | None = Field(default=None, description="The download Job.")
    size: str | None = Field(default=None, description="PVC size.")
