"""Benchmark: the operator converging a realistic mix of N LLMDeployments (default 1,000), against
a baseline measured on the same sandbox in the same run.

Starts a private kwok sandbox (or USE_EXISTING_CLUSTER=true) with node pools sized for the mix
(``operator_mix``: ~50 models x 20 deployments in 5 namespaces, L4/L40S/A100/H100 pools with 25 %
spare GPUs, 10 % denied by the LicensePolicy, 10 % that do not fit) and the fixture Hub serving
the mix's repos. Then, in this order:

1. **baseline** (``operator_baseline``): a plain client creates the LLMDeployments and
   server-side applies exactly the objects kubellm's own planner renders for them (PVC + Job per
   namespace and cache key, Deployment + Service per deployment, one status write each), as fast
   as the apiserver takes them, gated only on what gates the operator (a Job completing, a
   Deployment getting a ready replica). Everything is then deleted and the pods let go. It runs
   first so both phases start from the same empty namespaces and GPU pools; the operator, which
   runs second, is not yet running, so nothing else writes;
2. **operator**: ``kubellm run`` with its default settings (resync, workers: override with
   ``--resync``/``--workers``), the same LLMDeployments created the same way;
3. **churn**: 10 % spec edits (maxModelLen 4096 -> 8192), 10 % deletes and the LicensePolicy
   denying ``mit`` (10 % flip to LicenseDenied), timed until every affected deployment settled;
4. **idle**: writes and reconciles over ``--idle`` seconds (target 0 writes).

One observer (``operator_watch``) times both phases. Prints time to all children and to all
settled (Ready, or the refusal the plan predicts) as ratios operator / baseline, API writes per
deployment against the minimum, the operator's CPU and peak RSS per deployment, and checks the
operator created the very objects the baseline did (hash annotations). ``--py-spy FILE`` records
the operator during convergence and prints the profile summary. Numbers, not assertions.
Usage: python benchmarks/bench_operator.py [-n 1000] [--resync S] [--idle 60] [--py-spy FILE]
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "tests"), str(ROOT / "tests" / "e2e")]

from operator_baseline import Baseline, Planned, minimum_writes, plan_mix  # noqa: E402
from operator_mix import (  # noqa: E402
    NAMESPACE_PREFIX,
    Mix,
    default_models,
    inventory_doc,
    nodes_yaml,
)
from operator_watch import Expected, Observer, cpu_seconds, kopf_patches, rss_mib  # noqa: E402

W = 46  # label width


def row(label: str, text: str) -> None:
    print(f"{label:<{W}} {text}")


def wait(check: Any, timeout: float, what: str) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            print(f"TIMEOUT after {timeout:.0f} s waiting for {what}")
            return False
        time.sleep(0.25)
    return True


def children(planned: list[Planned]) -> list[tuple[str, str, str]]:
    keys = {(o["kind"], p.plan.namespace, o["metadata"]["name"])
            for p in planned if p.plan.deployable for o in p.plan.objects}
    return sorted(keys)


def create_all(custom: Any, manifests: list[dict[str, Any]], workers: int = 16) -> float:
    def create(body: dict[str, Any]) -> None:
        custom.create_namespaced_custom_object("kubellm.io", "v1alpha1",
                                               body["metadata"]["namespace"], "llmdeployments",
                                               body)

    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        list(pool.map(create, manifests))
    return t0


def gpus_needed(planned: list[Planned]) -> dict[str, int]:
    need: dict[str, int] = {}
    for p in planned:
        s = p.plan.sizing
        if p.plan.deployable and s is not None and s.fits and s.gpu_type:
            replicas = int(p.manifest["spec"].get("replicas", 1))
            need[s.gpu_type] = need.get(s.gpu_type, 0) + (s.gpus_per_replica or 0) * replicas
    return need


def delete_everything(cluster: Any, namespaces: list[str], timeout: float) -> None:
    """Delete what the baseline made and wait until no pod or PVC is left."""
    for ns in namespaces:
        cluster.kubectl("delete", "llmdeployments,deployments,services,jobs,pvc", "--all",
                        "-n", ns, "--wait=false")

    def empty() -> bool:
        out = cluster.kubectl("get", "pods,pvc,deployments,jobs,llmdeployments", "-A",
                              "--no-headers", "-o", "custom-columns=NS:.metadata.namespace",
                              check=False).stdout
        return not any(line.startswith(NAMESPACE_PREFIX) for line in out.splitlines())

    wait(empty, timeout, "the baseline's objects and pods to be gone")


def same_children(cluster: Any, planned: list[Planned]) -> tuple[int, int]:
    """(children whose live hash annotation equals the planned manifest's, expected)."""
    from kubernetes.dynamic import DynamicClient

    from kubellm import naming
    from kubellm.api.v1alpha1 import API_VERSION
    from kubellm.k8s.diff import HASH_ANNOTATION, desired_hash

    dynamic = DynamicClient(cluster.api_client)  # type: ignore[no-untyped-call]

    def live(api_version: str, kind: str) -> dict[tuple[str, str], dict[str, Any]]:
        items = dynamic.resources.get(api_version=api_version, kind=kind).get().to_dict()
        return {(o["metadata"]["namespace"], o["metadata"]["name"]): o
                for o in items["items"] if o["metadata"]["namespace"].startswith(NAMESPACE_PREFIX)}

    kinds = {"PersistentVolumeClaim": "v1", "Job": "batch/v1", "Deployment": "apps/v1",
             "Service": "v1"}
    lives = {kind: live(v, kind) for kind, v in kinds.items()}
    llmds = live(API_VERSION, "LLMDeployment")
    same = total = 0
    seen: set[tuple[str, str, str]] = set()
    for p in planned:
        if not p.plan.deployable:
            continue
        uid = (llmds.get(p.key) or {}).get("metadata", {}).get("uid", "")
        for obj in p.plan.objects:
            key = (obj["kind"], p.plan.namespace, obj["metadata"]["name"])
            if key in seen:
                continue
            seen.add(key)
            total += 1
            if obj in p.plan.serving_objects:
                owner = naming.owner_reference(API_VERSION, "LLMDeployment", p.plan.name, uid)
                obj = {**obj, "metadata": {**obj["metadata"], "ownerReferences": [owner]}}
            got = lives[obj["kind"]].get(key[1:]) or {}
            if (got.get("metadata", {}).get("annotations") or {}).get(HASH_ANNOTATION) == \
                    desired_hash(obj):
                same += 1
    return same, total


@dataclass(frozen=True)
class Converged:
    """Seconds from the first apply: all children seen, all download Jobs complete, all
    settled; and how many never settled."""

    children: float
    jobs: float
    settled: float
    unsettled: int


def converge(observer: Observer, planned: list[Planned], t0: float, timeout: float) -> Converged:
    wait(observer.all_settled, timeout, "every LLMDeployment to settle")
    done = max(observer.settled_at.values(), default=float("nan"))
    last, n_seen = observer.seen(children(planned))
    missing = len(children(planned)) - n_seen
    if missing:
        print(f"  {missing} expected children never seen")
    jobs = max(observer.job_complete.values(), default=float("nan"))
    left = len(observer.unsettled())  # then "all settled" is unknown (nan), not the last seen
    return Converged((last - t0) if last is not None else float("nan"), jobs - t0,
                     float("nan") if left else done - t0, left)


def by_trigger(operator: Any) -> dict[str, float]:
    """Reconciles so far by what started them (the work queue's first trigger of a run)."""
    out: dict[str, float] = {}
    for labels, value in operator.samples("kubellm_reconciles_total").items():
        trigger = labels.split('trigger="', 1)[1].split('"', 1)[0] if 'trigger="' in labels \
            else "?"
        out[trigger] = out.get(trigger, 0.0) + value
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=1000, help="LLMDeployments (default 1000)")
    parser.add_argument("--models", type=int, help="distinct models (default min(50, n/20))")
    parser.add_argument("--namespaces", type=int, default=5)
    parser.add_argument("--resync", type=float, help="operator --resync-seconds (default: its own)")
    parser.add_argument("--workers", type=int, help="operator --workers (default: its own)")
    parser.add_argument("--idle", type=float, default=60.0, help="idle window, seconds")
    parser.add_argument("--timeout", type=float, default=900.0)
    parser.add_argument("--no-churn", action="store_true")
    parser.add_argument("--py-spy", type=Path, help="record the operator's convergence here")
    args = parser.parse_args()

    from kubernetes import client
    from test_operator_helpers import OperatorProcess, apply_manifest

    from hubfixtures.server import serve_hub
    from kubellm import sizing
    from kubellm.sandbox.harness import sandbox_cluster

    mix = Mix(args.n, args.models or default_models(args.n), args.namespaces)
    tmp = Path(tempfile.mkdtemp(prefix="bench-operator-"))
    with serve_hub(mix.hub_repos()) as hub:
        os.environ.update(HF_ENDPOINT=hub.endpoint, HF_HOME=str(tmp / "hf"),
                          HF_HUB_DISABLE_TELEMETRY="1")
        manifests = mix.manifests()
        t = time.monotonic()
        big = nodes_yaml({p: 10 * args.n for p in ("NVIDIA-L4", "NVIDIA-L40S",
                                                   "NVIDIA-A100-SXM4-80GB",
                                                   "NVIDIA-H100-80GB-HBM3")})
        first = plan_mix(mix, manifests, sizing.inventory_from_file(inventory_doc(big), "big"),
                         hub_endpoint=hub.endpoint)
        nodes = nodes_yaml(gpus_needed(first))
        inventory = sizing.inventory_from_file(inventory_doc(nodes), "nodes")
        planned = plan_mix(mix, manifests, inventory, hub_endpoint=hub.endpoint)
        plan_seconds = time.monotonic() - t
        (tmp / "nodes.yaml").write_text(nodes)
        kinds: dict[str, int] = {}
        for p in planned:
            kinds[mix.expect(p.index)] = kinds.get(mix.expect(p.index), 0) + 1
        deployable = sum(p.plan.deployable for p in planned)
        n_children = len(children(planned))
        minimum = minimum_writes(planned)
        print(f"mix: {args.n} deployments, {mix.models} models, {args.namespaces} namespaces, "
              f"{kinds}; {deployable} deployable, {n_children} children, "
              f"{len({p.cache for p in planned if p.plan.deployable})} caches; GPUs "
              f"{gpus_needed(planned)}; planned in {plan_seconds:.1f} s (this process)")
        with sandbox_cluster(nodes_file=tmp / "nodes.yaml", reuse=False,
                             progress=lambda m: print(f"[sandbox] {m}")) as cluster:
            cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
            for crd in ("llmdeployments.kubellm.io", "licensepolicies.kubellm.io"):
                cluster.kubectl("wait", "--for", "condition=Established", f"crd/{crd}")
            for ns in mix.namespace_names():
                cluster.kubectl("create", "namespace", ns)
            for ns in mix.namespace_names():
                wait(lambda ns=ns: cluster.kubectl("get", "sa/default", "-n", ns,
                                                   check=False).returncode == 0, 60, "SA")
            apply_manifest(cluster, mix.policy())
            observer = Observer(cluster.api_client, NAMESPACE_PREFIX).start()
            expected = {p.key: p.expected() for p in planned}
            custom = client.CustomObjectsApi(cluster.api_client)
            time.sleep(1.0)

            # ---- 1. baseline
            observer.expect(expected)
            baseline = Baseline(cluster.api_client, observer, planned)
            b0 = baseline.run()
            b = converge(observer, planned, b0, args.timeout)
            baseline.close()
            lasts = ", ".join(f"{k} {v - b0:.2f}" for k, v in sorted(baseline.last.items(),
                                                                      key=lambda kv: kv[1]))
            print(f"baseline: children {b.children:.2f} s (last write s: {lasts})"
                  f", all settled {b.settled:.2f} s, {baseline.writes} writes "
                  f"(minimum {minimum}), {b.unsettled} unsettled, {len(baseline.errors)} errors "
                  f"{baseline.errors[:3]}")
            t = time.monotonic()
            delete_everything(cluster, mix.namespace_names(), args.timeout)
            print(f"baseline deleted in {time.monotonic() - t:.1f} s")
            observer.forget_seen()

            # ---- 2. operator
            extra = []
            if args.resync is not None:
                extra += ["--resync-seconds", str(args.resync)]
            if args.workers is not None:
                extra += ["--workers", str(args.workers)]
            operator = OperatorProcess(Path(cluster.kubeconfig), hub.endpoint,
                                       tmp / "operator.log", *extra).start()
            assert operator.proc is not None
            pid = operator.proc.pid
            try:
                time.sleep(2.0)
                rss_start = rss_mib(pid, "VmRSS")
                print(f"operator pid {pid} {' '.join(extra) or '(default settings)'}, log "
                      f"{tmp / 'operator.log'}, RSS at start {rss_start:.0f} MiB")
                spy = None
                if args.py_spy:
                    spy = subprocess.Popen(  # PY_SPY: the py-spy binary (default: on PATH)
                        [os.environ.get("PY_SPY", "py-spy"), "record", "-p", str(pid), "-r", "50",
                         "--format", "raw", "-o", str(args.py_spy), "--nonblocking"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                w0, k0, c0 = operator.writes(), kopf_patches(cluster), cpu_seconds(pid)
                r0 = operator.reconciles()
                t0 = by_trigger(operator)
                observer.expect(expected)
                o0 = create_all(custom, manifests)
                o = converge(observer, planned, o0, args.timeout)
                time.sleep(2.0)  # the tail of status writes
                o_writes = operator.writes() - w0
                o_kopf = kopf_patches(cluster) - k0
                o_cpu = cpu_seconds(pid) - c0
                o_rec = operator.reconciles() - r0
                o_triggers = {k: v - t0.get(k, 0.0) for k, v in by_trigger(operator).items()}
                by_kind = operator.samples("kubellm_api_writes_total")
                events = sum(v for k, v in by_kind.items() if 'kind="Event"' in k)
                peak_conv = rss_mib(pid)
                if spy is not None:
                    spy.send_signal(signal.SIGINT)
                    spy.wait(60)
                same, total = same_children(cluster, planned)

                n = args.n
                print()
                print(f"=== bench_operator: {n} LLMDeployments ({deployable} deployable), "
                      f"{mix.models} models, operator {' '.join(extra) or 'default settings'}, "
                      f"{os.cpu_count()} CPUs ===")
                row("", f"{'baseline':>10} {'kubellm':>10} {'ratio':>7}  target")
                ratios("first apply -> all children (s)", b.children, o.children, "<= 1.5")
                ratios("first apply -> all settled (s)", b.settled, o.settled,
                       "<= 1.5 (kwok stage delay 0 s)")
                ratios("  first apply -> all download Jobs complete", b.jobs, o.jobs, "")
                ratios("  last Job complete -> all settled", b.settled - b.jobs,
                       o.settled - o.jobs, "")
                row("unsettled at the end", f"{b.unsettled:10d} {o.unsettled:10d}")
                row("API writes per deployment (convergence)",
                    f"{baseline.writes / n:10.2f} {(o_writes + o_kopf) / n:10.2f} "
                    f"{(o_writes + o_kopf) / minimum:7.2f}  <= 1.2 x minimum "
                    f"{minimum / n:.2f}")
                row("  of which events / kopf patches per depl.",
                    f"{0:10.2f} {events / n:5.2f} / {o_kopf / n:.2f}")
                row("children equal to the baseline's (hash)", f"{same}/{total}")
                row("reconciles per deployment", f"{o_rec / n:.2f}")
                row("  by trigger (per deployment)", ", ".join(
                    f"{k} {v / n:.2f}" for k, v in sorted(o_triggers.items()) if v))
                row("operator CPU (convergence)",
                    f"{o_cpu:.1f} s, {o_cpu / n * 1000:.1f} ms per deployment (target <= 15)")
                row("operator peak RSS (VmHWM)",
                    f"{peak_conv:.0f} MiB, {peak_conv / n:.3f} MiB per deployment, "
                    f"{(peak_conv - rss_start) / n:.3f} above start (target <= 200 at 1000, "
                    "< 85 at 50)")
                for key, value in sorted(by_kind.items()):
                    print(f"    {key} {value:.0f}")
                phase_report(operator)
                if not args.no_churn:
                    churn(mix, planned, inventory, hub.endpoint, cluster, custom, observer,
                          operator, pid, args)
                idle(operator, cluster, pid, args)
                row("operator peak RSS at the end (VmHWM)", f"{rss_mib(pid):.0f} MiB")
                if spy is not None:
                    from pyspy_summary import summarise

                    err = spy.stderr.read().decode() if spy.stderr else ""
                    if args.py_spy.exists():
                        print("\n".join(summarise(args.py_spy.read_text())))
                    else:
                        print(f"py-spy wrote nothing: {err[-500:]}")
            finally:
                observer.stop.set()
                operator.stop()
    return 0


def ratios(label: str, base: float, ours: float, target: str) -> None:
    ratio = ours / base if base > 0 else float("nan")
    row(label, f"{base:10.2f} {ours:10.2f} {ratio:7.2f}  {target}")


def phase_report(operator: Any) -> None:
    durations = operator.samples("kubellm_reconcile_duration_seconds")
    phases = operator.samples("kubellm_reconcile_phase_seconds")
    count = durations.get("kubellm_reconcile_duration_seconds_count", 0)
    total = durations.get("kubellm_reconcile_duration_seconds_sum", 0)
    row("reconciles so far, mean duration", f"{count:.0f}, {total / max(count, 1) * 1000:.0f} ms")
    for phase in ("facts", "observe", "plan", "cache", "serving", "status"):
        n = phases.get(f'kubellm_reconcile_phase_seconds_count{{phase="{phase}"}}', 0)
        t = phases.get(f'kubellm_reconcile_phase_seconds_sum{{phase="{phase}"}}', 0)
        print(f"    phase {phase:<8} mean {t / max(n, 1) * 1000:6.1f} ms (n={n:.0f}, "
              f"total {t:.1f} s)")


def churn(mix: Mix, planned: list[Planned], inventory: Any, hub_endpoint: str, cluster: Any,
          custom: Any, observer: Observer, operator: Any, pid: int,
          args: argparse.Namespace) -> None:
    """10 % spec edits, 10 % deletes, the policy denying mit; timed to re-convergence."""
    from test_operator_helpers import apply_manifest

    rng = random.Random(14)
    n = args.n
    editable = [p for p in planned if p.plan.deployable and mix.expect(p.index) == "deployable"]
    edits = rng.sample(editable, min(len(editable), n // 10))
    edited = {p.index for p in edits}
    rest = [p for p in planned if p.index not in edited and mix.expect(p.index) != "flipped"]
    deletes = rng.sample(rest, min(len(rest), n // 10))
    deleted = {p.index for p in deletes}
    after = plan_mix(mix, [mix.manifest(i, context=8192) if i in edited else mix.manifest(i)
                           for i in range(n)], inventory, flipped=True, hub_endpoint=hub_endpoint)
    expected: dict[tuple[str, str], Expected] = {}
    flipped = 0
    minimum = 0
    for p, q in zip(planned, after, strict=True):
        if p.index in deleted:
            expected[p.key] = Expected("", gone=True)
        elif p.index in edited:
            expected[p.key] = q.expected(generation=2)
            minimum += 2 if q.plan.deployable else 1
        elif q.expected() != p.expected():
            expected[p.key] = q.expected()
            flipped += 1
            minimum += 2 if p.plan.deployable else 1
    w0, k0, c0, r0 = operator.writes(), kopf_patches(cluster), cpu_seconds(pid), \
        operator.reconciles()
    observer.expect(expected)
    t0 = time.monotonic()
    apply_manifest(cluster, mix.policy(flipped=True))

    def act(p: Planned) -> None:
        ns, name = p.plan.namespace, p.plan.name
        if p.index in edited:
            edit = {"spec": {"context": {"maxModelLen": 8192}}}
            custom.patch_namespaced_custom_object("kubellm.io", "v1alpha1", ns, "llmdeployments",
                                                  name, edit)
        else:
            custom.delete_namespaced_custom_object("kubellm.io", "v1alpha1", ns, "llmdeployments",
                                                   name)

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(act, edits + deletes))
    wait(observer.all_settled, args.timeout, "churn to settle")
    done = max(observer.settled_at.values(), default=float("nan")) - t0
    time.sleep(2.0)
    writes = operator.writes() - w0
    kopf = kopf_patches(cluster) - k0 - len(edits)  # minus the benchmark's own spec patches
    print()
    row(f"churn: {len(edits)} edits, {len(deletes)} deletes,",
        f"{flipped} flipped by the policy change")
    row("  churn -> all affected settled", f"{done:.2f} s ({len(observer.unsettled())} "
        "unsettled)")
    row("  writes (kubellm + kopf)", f"{writes:.0f} + {kopf:.0f} (minimum {minimum}: "
        "Deployment + status per edit, scale + status per flip)")
    row("  operator CPU, reconciles", f"{cpu_seconds(pid) - c0:.1f} s, "
        f"{operator.reconciles() - r0:.0f}")


def idle(operator: Any, cluster: Any, pid: int, args: argparse.Namespace) -> None:
    time.sleep(3.0)
    w0, k0, c0, r0 = operator.writes(), kopf_patches(cluster), cpu_seconds(pid), \
        operator.reconciles()
    time.sleep(args.idle)
    print()
    row(f"idle {args.idle:.0f} s: writes (kubellm + kopf)",
        f"{operator.writes() - w0:.0f} + {kopf_patches(cluster) - k0:.0f} (target 0)")
    row("  reconciles, operator CPU", f"{operator.reconciles() - r0:.0f}, "
        f"{cpu_seconds(pid) - c0:.2f} s")


if __name__ == "__main__":
    sys.exit(main())
