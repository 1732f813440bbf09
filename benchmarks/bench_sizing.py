"""Sizing calls per second on the built-in catalogue inventory (pure Python, no cluster).

Run: .venv/bin/python benchmarks/bench_sizing.py [seconds-per-case]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from archs import LLAMA_8B, LLAMA_70B
from kubellm.api.v1alpha1 import LLMDeploymentSpec
from kubellm.facts import ModelFacts
from kubellm.sizing import default_inventory, size

GIB = 1024**3


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
