"""Benchmark: wall time of `kubellm plan` on each example (target: under 1.5 s), and with
``--mix N`` of N deployments in one file (target: 1,000 in 10 s or less).

Seeds the offline HF cache the demo uses once (the example models' real metadata,
examples/hub-metadata), then runs the real command in a fresh process per run with
HF_HUB_OFFLINE=1 against the demo cluster's inventory, as a user on an air-gapped machine would.
Prints min / median / max and the exit code (0 allowed and fits, 1 refused) per example.

``--mix N`` writes bench_operator.py's mix (``operator_mix``: N deployments of ~50 models in 5
namespaces, with its LicensePolicy) to one file and plans it against the fixture Hub serving the
mix's repos (HF_ENDPOINT, a fresh HF_HOME per run: every model's metadata is fetched) and an
inventory of the mix's four GPU pools. Usage: python benchmarks/bench_plan.py [--runs N] [--mix N]
"""

from __future__ import annotations

import argparse
import json
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
    parser.add_argument("--mix", type=int, help="plan N mixed deployments in one file instead")
    args = parser.parse_args()
    if args.mix:
        return plan_mix_file(args.mix, args.runs)

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


def plan_mix_file(n: int, runs: int) -> int:
    import yaml

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from operator_mix import POOLS, Mix, default_models, inventory_doc, nodes_yaml

    from hubfixtures.server import serve_hub

    mix = Mix(n, default_models(n), 5)
    with tempfile.TemporaryDirectory() as tmp, serve_hub(mix.hub_repos()) as hub:
        manifests = Path(tmp) / "mix.yaml"
        manifests.write_text(yaml.safe_dump_all(mix.manifests()))
        policy = Path(tmp) / "policy.yaml"
        policy.write_text(yaml.safe_dump(mix.policy()))
        inventory = Path(tmp) / "inventory.yaml"
        inventory.write_text(yaml.safe_dump(inventory_doc(nodes_yaml({p: 2 * n for p in POOLS}))))
        times = []
        for run in range(runs):
            env = {**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_HUB_DISABLE_TELEMETRY": "1",
                   "HF_HOME": str(Path(tmp) / f"home-{run}")}
            env.pop("HF_HUB_OFFLINE", None)
            start = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-m", "kubellm", "plan", "-f", str(manifests), "--policy",
                 str(policy), "--inventory", str(inventory), "-o", "json"],
                env=env, capture_output=True, text=True)
            times.append(time.perf_counter() - start)
            if proc.returncode == 2:
                print(proc.stderr, file=sys.stderr)
                return 2
            reports = json.loads(proc.stdout)
            deployable = sum(1 for r in reports if r["deployable"])
            objects = sum(len(r["objects"]) for r in reports)
        print(f"kubellm plan of {n} deployments ({mix.models} models) in one file: "
              f"min {min(times):.2f} s, median {statistics.median(times):.2f} s, "
              f"max {max(times):.2f} s over {runs} runs (target <= 10 s); exit "
              f"{proc.returncode}, {deployable} deployable, {objects} objects")
    return 0


if __name__ == "__main__":
    sys.exit(main())
