"""Real-shaped objects for the reconcile and shell tests: LLMDeployments, GPU nodes, licence
policies, and the model facts a resolver would return for a few repos (architectures and sizes
from the models' published config.json, ``tests/archs.py``), so the real planner sizes, decides
and renders them."""

from __future__ import annotations

from typing import Any

from archs import LLAMA_405B, QWEN2_5_7B
from kubellm.errors import ModelNotFoundError
from kubellm.facts import ModelFacts, WeightFile

QWEN = "Qwen/Qwen2.5-7B-Instruct"
RESEARCH = "mistralai/Mistral-Large-Instruct-2407"  # Mistral Research Licence: research-only
HUGE = "meta-llama/Llama-3.1-405B-Instruct"  # 810 GB of bf16 weights
L4 = "NVIDIA-L4"
H100 = "NVIDIA-H100-80GB-HBM3"


def llmd(name: str, repo: str = QWEN, generation: int = 1, namespace: str = "team",
         **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kubellm.io/v1alpha1",
        "kind": "LLMDeployment",
        "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}",
                     "generation": generation},
        "spec": {"model": {"repo": repo, **spec.pop("model", {})}, **spec},
    }


def node(name: str, product: str = L4, gpus: int = 8, **labels: str) -> dict[str, Any]:
    """A Ready GPU node as GPU Feature Discovery labels it."""
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"nvidia.com/gpu.product": product, **labels}},
            "status": {"allocatable": {"nvidia.com/gpu": str(gpus)},
                       "conditions": [{"type": "Ready", "status": "True"}]}}


def policy(name: str = "corp", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "kubellm.io/v1alpha1", "kind": "LicensePolicy",
            "metadata": {"name": name}, "spec": spec}


def _shards(total: int, n: int) -> tuple[WeightFile, ...]:
    return tuple(WeightFile(f"model-{i + 1:05d}-of-{n:05d}.safetensors", total // n)
                 for i in range(n))


def facts_for(repo: str, revision: str = "main", **_: Any) -> ModelFacts:
    """What ``FactsResolver.resolve`` returns for ``repo`` (``missing/...``: not on the Hub);
    the commit sha depends on the revision (``main`` -> a..., anything else -> b...)."""
    if repo.startswith("missing/"):
        raise ModelNotFoundError(f"{repo} does not exist on the Hub")
    sha = ("b" if revision != "main" else "a") * 40
    if repo == HUGE:
        return ModelFacts(repo=repo, revision=revision, sha=sha, license="llama3.1",
                          architecture=LLAMA_405B, weight_bytes=810_000_000_000,
                          parameters=405_000_000_000, weight_files=_shards(810_000_000_000, 191))
    license_, license_name = ("other", "mrl") if repo == RESEARCH else ("apache-2.0", None)
    return ModelFacts(repo=repo, revision=revision, sha=sha, license=license_,
                      license_name=license_name, architecture=QWEN2_5_7B,
                      weight_bytes=15_231_233_024, parameters=7_615_616_512,
                      weight_files=_shards(15_231_233_024, 2))
