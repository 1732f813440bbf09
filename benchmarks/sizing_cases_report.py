"""Print the published reference deployments next to kubellm's plan for the same model,
quantization, GPU and context (the table for the sizing issue's closing note).

The case -> facts/spec mapping is the one the unit test uses (tests/unit/test_sizing_cases.py),
imported rather than repeated. Usage: python benchmarks/sizing_cases_report.py
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "operator"), str(ROOT / "tests"), str(ROOT / "tests" / "unit")]

from test_sizing_cases import CASES, facts_of, runtime_of, spec_of  # noqa: E402

from kubellm.sizing import default_inventory, size  # noqa: E402


def main() -> int:
    header = (
        f"{'model':46} {'quant':10} {'published':22} {'ctx':>6} | "
        f"{'kubellm':26} {'tp':>2} {'pp':>2} {'maxLen':>7} {'GiB/GPU':>8}"
    )
    print(header)
    print("-" * len(header))
    for case in CASES:
        result = size(facts_of(case), spec_of(case), default_inventory(), runtime=runtime_of(case))
        published = f"{case['gpu_count']} x {case['gpu'].split(' (')[0]}"[:22]
        ours = f"{result.gpus_per_replica} x {result.gpu_type}" if result.fits else "does not fit"
        print(
            f"{case['model'][:46]:46} {(case['quantization'] or 'bf16')[:10]:10} {published:22} "
            f"{case['max_model_len'] or 'auto':>6} | {ours[:26]:26} "
            f"{result.tensor_parallel_size or '-':>2} {result.pipeline_parallel_size or '-':>2} "
            f"{result.max_model_len or '-':>7} {result.per_gpu_gib or 0:8.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
