"""Sizing calls per second on the built-in catalogue inventory (pure Python, no cluster).

Run: .venv/bin/python benchmarks/bench_sizing.py [seconds-per-case]
"""

from __future__ import annotations

import sys
import time

from kubellm.api.v1alpha1 import LLMDeploymentSpec
from kubellm.facts import Architecture, ModelFacts
from kubellm.sizing import default_inventory, size

GIB = 1024**3
LLAMA_70B = Architecture(
    num_hidden_layers=80,
    num_attention_heads=64,
    num_key_value_heads=8,
    head_dim=128,
    hidden_size=8192,
    vocab_size=128256,
    max_position_embeddings=131072,
    torch_dtype="bfloat16",
)
LLAMA_8B = Architecture(
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=8,
    head_dim=128,
    hidden_size=4096,
    vocab_size=128256,
    max_position_embeddings=131072,
    torch_dtype="bfloat16",
)

CASES = {
    "8B bf16, auto everything": (
        ModelFacts(repo="m/8b", architecture=LLAMA_8B, weight_bytes=int(14.96 * GIB)),
        {"model": {"repo": "m/8b"}},
    ),
    "70B bf16, a100-80gb, 16k": (
        ModelFacts(repo="m/70b", architecture=LLAMA_70B, weight_bytes=int(131.42 * GIB)),
        {
            "model": {"repo": "m/70b"},
            "gpu": {"type": "a100-80gb"},
            "context": {"maxModelLen": 16384},
        },
    ),
    "70B bf16, auto, 64 x 8k (many options)": (
        ModelFacts(repo="m/70b", architecture=LLAMA_70B, weight_bytes=int(131.42 * GIB)),
        {"model": {"repo": "m/70b"}, "context": {"maxModelLen": 8192, "concurrency": 64}},
    ),
}


def main() -> None:
    budget = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    inventory = default_inventory()
    for name, (facts, raw) in CASES.items():
        spec = LLMDeploymentSpec.model_validate(raw)
        size(facts, spec, inventory)  # warm caches (catalogue YAML)
        calls, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < budget:
            size(facts, spec, inventory)
            calls += 1
        result = size(facts, spec, inventory)
        print(
            f"{calls / elapsed:10.0f} calls/s  {name}: {result.gpus_per_replica} x "
            f"{result.gpu_type}, maxModelLen {result.max_model_len}"
        )


if __name__ == "__main__":
    main()
