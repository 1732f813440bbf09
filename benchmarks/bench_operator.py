"""Benchmark: the operator converging N LLMDeployments applied at once (default 200).

Starts a private sandbox with enough simulated L4 nodes for every deployment (``--nodes-per-pool``
x 8 GPUs; or USE_EXISTING_CLUSTER=true), the fake Hub (tests/hubfixtures) and ``kubellm run`` as
a subprocess, then creates N LLMDeployments of Qwen/Qwen2.5-7B-Instruct on L4 from a thread
pool, as fast as the apiserver takes them, and watches (kubernetes watch streams) until every one
is Ready. Prints:

- apply -> first status written (the operator's first reconcile: licence, sizing, cache objects)
- apply -> serving Deployment created (after the shared download Job completed), p50/p95/max
- Deployment ready (readyReplicas >= 1) -> LLMDeployment Ready, p50/p95/max
- time from the first apply to all N Ready
- API writes per deployment during convergence, and during idle resyncs (target 0)
- the operator's peak RSS (VmHWM)

Numbers, not assertions. Usage: python benchmarks/bench_operator.py [-n 200] [--resync 10]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

NODES = """pools:
  - name: l4
    count: {count}
    gpu: {{product: NVIDIA-L4, count: 8, memoryMiB: 23034, family: ada-lovelace}}
    cpu: "192"
    memory: 768Gi
  - name: cpu
    count: 1
"""


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[index]


def line(label: str, values: list[float]) -> str:
    if not values:
        return f"{label:<44} (none)"
    return (f"{label:<44} p50 {pct(values, 50):6.2f} s   p95 {pct(values, 95):6.2f} s   "
            f"max {max(values):6.2f} s   (n={len(values)})")


class Watcher:
    """Records the local time of the first event matching a predicate, per object name."""

    def __init__(self, api_client: Any, namespace: str) -> None:
        from kubernetes import client

        self.custom = client.CustomObjectsApi(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.namespace = namespace
        self.first_status: dict[str, float] = {}
        self.ready: dict[str, float] = {}
        self.deployment_created: dict[str, float] = {}
        self.deployment_ready: dict[str, float] = {}
        self.stop = threading.Event()

    def _llmds(self) -> None:
        try:
            self._watch_llmds()
        except Exception:
            if not self.stop.is_set():
                raise

    def _deployments(self) -> None:
        try:
            self._watch_deployments()
        except Exception:
            if not self.stop.is_set():
                raise

    def _watch_llmds(self) -> None:
        from kubernetes import watch

        while not self.stop.is_set():
            w = watch.Watch()
            for event in w.stream(self.custom.list_namespaced_custom_object, "kubellm.io",
                                  "v1alpha1", self.namespace, "llmdeployments",
                                  timeout_seconds=30):
                now = time.monotonic()
                obj = event["object"]
                name = obj["metadata"]["name"]
                status = obj.get("status") or {}
                if status.get("conditions"):
                    self.first_status.setdefault(name, now)
                if status.get("ready") == "True":
                    self.ready.setdefault(name, now)
                if self.stop.is_set():
                    w.stop()

    def _watch_deployments(self) -> None:
        from kubernetes import watch

        while not self.stop.is_set():
            w = watch.Watch()
            for event in w.stream(self.apps.list_namespaced_deployment, self.namespace,
                                  timeout_seconds=30):
                now = time.monotonic()
                dep = event["object"]
                name = dep.metadata.name
                self.deployment_created.setdefault(name, now)
                if (dep.status.ready_replicas or 0) >= 1:
                    self.deployment_ready.setdefault(name, now)
                if self.stop.is_set():
                    w.stop()

    def start(self) -> None:
        for target in (self._llmds, self._deployments):
            threading.Thread(target=target, daemon=True).start()


def rss_peak_mib(pid: int) -> float:
    for row in Path(f"/proc/{pid}/status").read_text().splitlines():
        if row.startswith("VmHWM:"):
            return int(row.split()[1]) / 1024
    return float("nan")


def kopf_patches(cluster: Any) -> float:
    """PATCHes of the llmdeployments main resource seen by the apiserver: kopf's own annotation
    writes (the operator's status writes go to the status subresource and are counted by it)."""
    text = cluster.kubectl("get", "--raw", "/metrics").stdout
    total = 0.0
    for row in text.splitlines():
        if (row.startswith("apiserver_request_total{") and 'resource="llmdeployments"' in row
                and 'subresource=""' in row and 'verb="PATCH"' in row):
            total += float(row.rsplit(" ", 1)[1])
    return total


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=200, help="LLMDeployments (default 200)")
    parser.add_argument("--resync", type=float, default=10.0, help="operator resync seconds")
    parser.add_argument("--idle", type=float, default=25.0, help="idle window to count writes")
    parser.add_argument("--workers", type=int, default=8, help="operator workers")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()

    from kubernetes import client
    from test_operator_helpers import OperatorProcess, apply_manifest, policy, wait_until

    from hubfixtures.server import serve_hub
    from kubellm.sandbox.harness import sandbox_cluster

    tmp = Path(tempfile.mkdtemp(prefix="bench-operator-"))
    nodes_file = tmp / "nodes.yaml"
    nodes_file.write_text(NODES.format(count=max(1, -(-args.n // 8))))
    with sandbox_cluster(nodes_file=nodes_file, progress=lambda m: print(f"[sandbox] {m}"),
                         reuse=False) as cluster, serve_hub() as hub:
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
        for crd in ("llmdeployments.kubellm.io", "licensepolicies.kubellm.io"):
            cluster.kubectl("wait", "--for", "condition=Established", f"crd/{crd}")
        ns = "bench"
        cluster.kubectl("create", "namespace", ns)
        wait_until(lambda: cluster.kubectl("get", "sa/default", "-n", ns,
                                           check=False).returncode == 0, 60)
        apply_manifest(cluster, policy("bench", [ns]))
        operator = OperatorProcess(Path(cluster.kubeconfig), hub.endpoint, tmp / "operator.log",
                                   "-A", "--resync-seconds", str(args.resync),
                                   "--workers", str(args.workers),
                                   "--image", "ghcr.io/kubellm/kubellm:bench").start()
        try:
            assert operator.proc is not None
            print(f"operator pid {operator.proc.pid}, log {tmp / 'operator.log'}, "
                  f"RSS at start {rss_peak_mib(operator.proc.pid):.0f} MiB")
            watcher = Watcher(cluster.api_client, ns)
            watcher.start()
            time.sleep(1.0)
            writes_before = operator.writes()
            kopf_before = kopf_patches(cluster)
            cpu_before = cpu_seconds(operator.proc.pid)
            custom = client.CustomObjectsApi(cluster.api_client)
            created: dict[str, float] = {}

            def create(i: int) -> None:
                name = f"llm-{i:03d}"
                body = {"apiVersion": "kubellm.io/v1alpha1", "kind": "LLMDeployment",
                        "metadata": {"name": name, "namespace": ns},
                        "spec": {"model": {"repo": "Qwen/Qwen2.5-7B-Instruct"},
                                 "runtime": "vllm", "gpu": {"type": "NVIDIA-L4"},
                                 "context": {"maxModelLen": 4096}}}
                custom.create_namespaced_custom_object("kubellm.io", "v1alpha1", ns,
                                                       "llmdeployments", body)
                created[name] = time.monotonic()

            t0 = time.monotonic()
            with concurrent.futures.ThreadPoolExecutor(16) as pool:
                list(pool.map(create, range(args.n)))
            t_applied = time.monotonic()
            print(f"applied {args.n} LLMDeployments in {t_applied - t0:.2f} s")
            try:
                wait_until(lambda: len(watcher.ready) >= args.n, args.timeout, interval=0.5,
                           what="all Ready")
            except AssertionError as exc:
                print(f"NOT ALL READY: {len(watcher.ready)}/{args.n}: {exc}")
            t_all = max(watcher.ready.values(), default=float("nan"))
            conv_writes = operator.writes() - writes_before
            conv_kopf = kopf_patches(cluster) - kopf_before
            conv_cpu = cpu_seconds(operator.proc.pid) - cpu_before
            durations = operator.samples("kubellm_reconcile_duration_seconds")
            phases = operator.samples("kubellm_reconcile_phase_seconds")

            # idle: wait for the tail of status writes, then count writes over idle resyncs
            time.sleep(3)
            idle_start_w, idle_start_r = operator.writes(), operator.reconciles()
            idle_kopf = kopf_patches(cluster)
            time.sleep(args.idle)
            idle_writes = operator.writes() - idle_start_w
            idle_kopf = kopf_patches(cluster) - idle_kopf
            idle_reconciles = operator.reconciles() - idle_start_r
            peak = rss_peak_mib(operator.proc.pid)
            watcher.stop.set()

            first = [watcher.first_status[n] - created[n] for n in created
                     if n in watcher.first_status]
            deploy = [watcher.deployment_created[n] - created[n] for n in created
                      if n in watcher.deployment_created]
            lag = [watcher.ready[n] - watcher.deployment_ready[n] for n in created
                   if n in watcher.ready and n in watcher.deployment_ready]
            print()
            print(f"=== bench_operator: {args.n} LLMDeployments, operator workers "
                  f"{args.workers}, resync {args.resync:.0f} s, {os.cpu_count()} CPUs ===")
            print(line("apply -> first status (cache objects)", first))
            print(line("apply -> serving Deployment created", deploy))
            print(line("Deployment ready -> LLMDeployment Ready", lag))
            print(f"{'first apply -> all Ready':<44} {t_all - t0:6.2f} s "
                  f"({len(watcher.ready)}/{args.n} Ready)")
            print(f"{'API writes during convergence':<44} {conv_writes:.0f} total, "
                  f"{conv_writes / args.n:.1f} per deployment")
            print(f"{'  + kopf annotation patches (apiserver count)':<44} {conv_kopf:.0f}, "
                  f"{conv_kopf / args.n:.1f} per deployment")
            print(f"{'API writes during idle resyncs':<44} {idle_writes:.0f} kubellm + "
                  f"{idle_kopf:.0f} kopf ({idle_reconciles:.0f} reconciles in {args.idle:.0f} s)")
            for key, value in sorted(operator.samples("kubellm_api_writes_total").items()):
                print(f"    {key} {value:.0f}")
            print(f"{'operator CPU during convergence':<44} {conv_cpu:.1f} s")
            count = durations.get("kubellm_reconcile_duration_seconds_count", 0)
            total = durations.get("kubellm_reconcile_duration_seconds_sum", 0)
            print(f"{'reconciles until all Ready, mean duration':<44} {count:.0f}, "
                  f"{total / max(count, 1) * 1000:.0f} ms")
            for phase in ("facts", "observe", "plan", "cache", "serving", "status"):
                n = phases.get(f'kubellm_reconcile_phase_seconds_count{{phase="{phase}"}}', 0)
                t = phases.get(f'kubellm_reconcile_phase_seconds_sum{{phase="{phase}"}}', 0)
                print(f"    phase {phase:<8} mean {t / max(n, 1) * 1000:6.1f} ms (n={n:.0f})")
            print(f"{'operator peak RSS (VmHWM)':<44} {peak:.0f} MiB")
        finally:
            operator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
