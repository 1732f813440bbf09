"""Benchmark: wall time of `kubellm plan` on each example (target: under 1.5 s).

Seeds the offline HF cache the demo uses once (the example models' real metadata,
examples/hub-metadata), then runs the real command in a fresh process per run with
HF_HUB_OFFLINE=1 against the demo cluster's inventory, as a user on an air-gapped machine would.
Prints min / median / max and the exit code (0 allowed and fits, 1 refused) per example.
Usage: python benchmarks/bench_plan.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    from hubfixtures.cache import build_cache_from_metadata

    examples = sorted(
        p for p in (ROOT / "examples").glob("*.yaml") if p.name != "licensepolicy.yaml"
    )
    with tempfile.TemporaryDirectory() as tmp:
        hub_cache = build_cache_from_metadata(Path(tmp), ROOT / "examples" / "hub-metadata")
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "HF_HUB_CACHE": str(hub_cache),
            "HF_HOME": str(Path(tmp) / "home"),
        }
        kubellm = [sys.executable, "-m", "kubellm"]
        policy = ["--policy", str(ROOT / "examples" / "licensepolicy.yaml"),
                  "--inventory", str(ROOT / "examples" / "cluster" / "inventory.yaml")]
        print(f"{'example':40} {'min s':>7} {'median s':>9} {'max s':>7}  exit")
        worst = 0.0
        for example in examples:
            times = []
            code = None
            for _ in range(args.runs):
                start = time.perf_counter()
                proc = subprocess.run(
                    [*kubellm, "plan", "-f", str(example), *policy, "-o", "json"],
                    env=env,
                    capture_output=True,
                    text=True,
                )
                times.append(time.perf_counter() - start)
                code = proc.returncode
                if code == 2:
                    print(proc.stderr, file=sys.stderr)
            worst = max(worst, statistics.median(times))
            print(
                f"{example.name:40} {min(times):7.3f} {statistics.median(times):9.3f} "
                f"{max(times):7.3f}  {code}"
            )
        print(f"worst median: {worst:.3f} s (target < 1.5 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
