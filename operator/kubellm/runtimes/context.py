"""What a runtime renders from (pure): ``RenderContext`` (one LLMDeployment's spec, model facts,
sizing, cache and GPU, with the derived quantities every runtime reads: tensor/pipeline degrees,
nodes and GPUs per pod, revision, weight bytes) and the endpoint URL it serves."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kubellm.naming import serving_name

if TYPE_CHECKING:
    from kubellm.api.v1alpha1 import LLMDeploymentSpec
    from kubellm.cache import CacheRef
    from kubellm.facts import ModelFacts
    from kubellm.sizing.types import GpuType, Quant, SizingResult


@dataclass(frozen=True)
class RenderContext:
    """Everything a runtime needs to render one LLMDeployment.

    ``replicas`` None means ``spec.replicas``; the operator passes 0 to scale a denied model
    down. ``gpu`` is the catalogue entry of ``sizing.gpu_type`` (for compute-capability checks
    and alternative product labels); ``image`` overrides ``spec.image`` and the catalogue.
    """

    name: str
    namespace: str
    spec: LLMDeploymentSpec
    facts: ModelFacts
    sizing: SizingResult
    cache: CacheRef | None
    image: str | None = None
    replicas: int | None = None
    gpu: GpuType | None = None

    @property
    def quant(self) -> Quant:
        return self.sizing.quant

    @property
    def tp(self) -> int:
        return self.sizing.tensor_parallel_size or 1

    @property
    def pp(self) -> int:
        return self.sizing.pipeline_parallel_size or 1

    @property
    def gpus(self) -> int:
        """GPUs of one replica (all its pods together)."""
        return self.sizing.gpus_per_replica or self.tp * self.pp

    @property
    def nodes(self) -> int:
        """Nodes (pods) one replica spans: > 1 means multi-node serving (a LeaderWorkerSet)."""
        return self.sizing.nodes_per_replica or 1

    @property
    def gpus_per_pod(self) -> int:
        """GPUs each serving pod requests: one replica's GPUs spread evenly over its nodes."""
        return self.gpus // self.nodes if self.nodes > 1 else self.gpus

    @property
    def revision(self) -> str:
        return self.facts.sha or self.facts.revision

    @property
    def served_model_name(self) -> str:
        return self.spec.served_model_name or self.facts.repo

    @property
    def weight_bytes(self) -> int:
        if self.cache is not None and self.cache.weight_bytes:
            return self.cache.weight_bytes
        return self.sizing.total_weight_bytes or self.facts.weight_bytes or 0


def endpoint_url(llmd_name: str, namespace: str) -> str:
    """The in-cluster OpenAI-compatible base URL of a deployment."""
    return f"http://{serving_name(llmd_name)}.{namespace}.svc/v1"
