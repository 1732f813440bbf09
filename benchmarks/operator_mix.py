"""The benchmark's workload: a realistic mix of LLMDeployments, the fake Hub repos they use, the
LicensePolicy over them and the simulated node pools sized for them (pure: no cluster, no I/O).

``models`` distinct models (default ``min(50, max(10, n // 20))``, so ``-n 1000`` is 50 models x
20 deployments) are clones of fixture Hub repos (``tests/hubfixtures/models.py``) under their own
ids (``bench-<k>/<name>``: another sha, so another cache key each). Model slot ``k`` takes the
template ``TEMPLATES[k % len(TEMPLATES)]``; the templates interleave the categories so any 10
consecutive slots hold them all:

- deployable: Qwen2.5-7B, its GPTQ int4, OLMo-2-7B, Llama-3.1-70B AWQ / FP8, Qwen2.5-72B, on
  L4, L40S, A100 and H100 pools;
- flipped: Phi-3-mini (MIT) on L4, deployable until the churn phase's LicensePolicy change
  denies ``mit`` (``FLIP_LICENSE``): 10 % of the deployments;
- denied: Mistral-Large (research licence) under a commercial-use policy: 10 %;
- does not fit: Qwen2.5-72B bf16 asked for on one L4: 10 %.

Deployment ``i`` uses slot ``i % models`` in namespace ``bench-<(i // models) % namespaces>``,
so each model is shared by deployments in several namespaces (one cache per namespace and key).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from hubfixtures.models import CATALOGUE, FakeRepo

POLICY_NAME = "bench"
NAMESPACE_PREFIX = "bench-"
FLIP_LICENSE = "mit"
HEADROOM = 1.25  # GPUs in the node pools per GPU the deployable plans need (first-come packing)


@dataclass(frozen=True)
class Template:
    """One kind of deployment: which fixture repo, which GPU, and what kubellm should decide."""

    repo: str
    gpu: str
    expect: str  # deployable | flipped | denied | unfit
    count: int | None = None  # spec.gpu.count (None: auto)
    quantization: str | None = None
    max_model_len: int = 4096


TEMPLATES: tuple[Template, ...] = (
    Template("Qwen/Qwen2.5-7B-Instruct", "NVIDIA-L4", "deployable"),
    Template("Qwen/Qwen2.5-7B-Instruct-GPTQ-Int4", "NVIDIA-L4", "deployable"),
    Template("allenai/OLMo-2-1124-7B", "NVIDIA-L40S", "deployable"),
    Template("hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4", "NVIDIA-L40S", "deployable"),
    Template("Qwen/Qwen2.5-7B-Instruct", "NVIDIA-A100-SXM4-80GB", "deployable"),
    Template("neuralmagic/Meta-Llama-3.1-70B-Instruct-FP8", "NVIDIA-H100-80GB-HBM3",
             "deployable"),
    Template("Qwen/Qwen2.5-72B-Instruct", "NVIDIA-H100-80GB-HBM3", "deployable"),
    Template("microsoft/Phi-3-mini-4k-instruct", "NVIDIA-L4", "flipped"),
    Template("mistralai/Mistral-Large-Instruct-2407", "NVIDIA-H100-80GB-HBM3", "denied"),
    Template("Qwen/Qwen2.5-72B-Instruct", "NVIDIA-L4", "unfit", count=1),
)

# GPU pools of the sandbox: product -> (GPUs per node, memory MiB as GFD reports it, family)
POOLS: dict[str, tuple[str, int, int, str]] = {
    "NVIDIA-L4": ("l4", 8, 23034, "ada-lovelace"),
    "NVIDIA-L40S": ("l40s", 8, 46068, "ada-lovelace"),
    "NVIDIA-A100-SXM4-80GB": ("a100", 8, 81920, "ampere"),
    "NVIDIA-H100-80GB-HBM3": ("h100", 8, 81559, "hopper"),
}


@dataclass(frozen=True)
class Mix:
    """The deployments of one benchmark run and what they need."""

    n: int
    models: int
    namespaces: int

    def template(self, slot: int) -> Template:
        return TEMPLATES[slot % len(TEMPLATES)]

    def repo_id(self, slot: int) -> str:
        return f"bench-{slot:02d}/{self.template(slot).repo.split('/', 1)[1]}"

    def namespace_names(self) -> list[str]:
        return [f"{NAMESPACE_PREFIX}{j}" for j in range(self.namespaces)]

    def slot(self, i: int) -> int:
        return i % self.models

    def name(self, i: int) -> str:
        return f"llm-{i:04d}"

    def namespace(self, i: int) -> str:
        return f"{NAMESPACE_PREFIX}{(i // self.models) % self.namespaces}"

    def expect(self, i: int) -> str:
        return self.template(self.slot(i)).expect

    def manifest(self, i: int, *, context: int | None = None) -> dict[str, Any]:
        """LLMDeployment ``i`` (``context`` overrides spec.context.maxModelLen: a spec edit)."""
        t = self.template(self.slot(i))
        gpu: dict[str, Any] = {"type": t.gpu}
        if t.count is not None:
            gpu["count"] = t.count
        spec: dict[str, Any] = {"model": {"repo": self.repo_id(self.slot(i))}, "gpu": gpu,
                                "context": {"maxModelLen": context or t.max_model_len}}
        if t.quantization:
            spec["quantization"] = t.quantization
        return {"apiVersion": "kubellm.io/v1alpha1", "kind": "LLMDeployment",
                "metadata": {"name": self.name(i), "namespace": self.namespace(i)},
                "spec": spec}

    def manifests(self) -> list[dict[str, Any]]:
        return [self.manifest(i) for i in range(self.n)]

    def hub_repos(self) -> dict[str, FakeRepo]:
        """The fixture catalogue (base models the clones' cards name) plus one clone per slot."""
        repos = dict(CATALOGUE)
        for slot in range(self.models):
            base = CATALOGUE[self.template(slot).repo]
            clone = dataclasses.replace(base, repo_id=self.repo_id(slot))
            repos[clone.repo_id] = clone
        return repos

    def policy(self, *, flipped: bool = False) -> dict[str, Any]:
        """The LicensePolicy over every bench namespace; ``flipped`` denies ``FLIP_LICENSE``."""
        spec: dict[str, Any] = {"mode": "Enforce", "namespaces": [f"{NAMESPACE_PREFIX}*"],
                                "commercialUse": True,
                                "allowedClasses": ["permissive", "restrictive-community"]}
        if flipped:
            spec["deniedLicenses"] = [FLIP_LICENSE]
        return {"apiVersion": "kubellm.io/v1alpha1", "kind": "LicensePolicy",
                "metadata": {"name": POLICY_NAME}, "spec": spec}


def default_models(n: int) -> int:
    return min(50, max(10, n // 20))


def nodes_yaml(gpus_needed: dict[str, int]) -> str:
    """A sandbox node-pool file with ``HEADROOM`` x the GPUs per product the plans need (at
    least one node per pool, so a pool's GPU type is always in the inventory) and a CPU node."""
    rows = ["pools:"]
    for product, (pool, per_node, memory, family) in POOLS.items():
        need = gpus_needed.get(product, 0) * HEADROOM
        count = max(1, -(-int(need) // per_node))
        rows += [f"  - name: {pool}", f"    count: {count}",
                 f"    gpu: {{product: {product}, count: {per_node}, memoryMiB: {memory}, "
                 f"family: {family}}}",
                 '    cpu: "192"', "    memory: 2000Gi"]
    rows += ["  - name: cpu", "    count: 1"]
    return "\n".join(rows) + "\n"


def inventory_doc(nodes: str) -> dict[str, Any]:
    """The ``kubellm plan --inventory`` document of a node-pool file (same GPUs, no pods)."""
    import yaml

    pools = []
    for pool in yaml.safe_load(nodes)["pools"]:
        gpu = pool.get("gpu")
        if gpu:
            pools.append({"gpuProduct": gpu["product"], "gpusPerNode": gpu["count"],
                          "nodes": pool["count"]})
    return {"pools": pools}
