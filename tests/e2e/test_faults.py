"""e2e (issue 12, item 3): faults during a rollout of N LLMDeployments lose nothing.

On the session sandbox, with its own kwok GPU pool (``faults``: 8 x NVIDIA-L40S nodes, enough
for every deployment the policy allows plus a node of slack for rolling updates), its own
fixture Hub (``HF_ENDPOINT``) and ``kubellm run`` as the operator's ServiceAccount, N
LLMDeployments of four fixture models (Qwen2.5-7B, Phi-3-mini, OLMo-2-7B: allowed; Mistral
Large: research-only, refused by the commercial policy) are rolled out, then each fault in turn:

1. the operator SIGKILLed ``KILLS`` times at random moments (seeded) while the rollout is
   applied, some deployments deleted and some specs changed, restarted each time;
2. the apiserver restarted (stopped 3 s) right after new deployments were applied;
3. etcd restarted (stopped 3 s) likewise;
4. download Job pods killed mid-download: kwok stopped so a new cache's pod stays where it is,
   the pod marked to die with exit code 137 (as a SIGKILLed or OOM-killed container), another
   deleted; kwok started again: the Job retries;
5. the Hub answering 500, then hanging past the client timeout, for a while (operator restarted
   first so nothing is memoised), with new deployments waiting on it;
6. the LicensePolicy changed mid-rollout (MIT refused, then allowed again);
7. a tenth of the deployments deleted.

After each: :meth:`test_faults_helpers.Rollout.check` (every deployment in its expected state,
no duplicate or orphaned objects, no user field changed, no GPU double-booked) and the operator
still running. The figures go to ``~/.cache/kubellm/hardening/faults.json`` for
``benchmarks/hardening_report.py``. ``KUBELLM_FAULTS_N`` / ``KUBELLM_FAULTS_KILLS`` change the
size (default 100 / 20). Skipped, saying why, with ``USE_EXISTING_CLUSTER`` (no kwok to add
nodes with, no components to restart).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_faults_helpers import Rollout, add_gpu_nodes, delete_nodes, nodes_for, write_record
from test_operator_helpers import (
    CRDS,
    OperatorProcess,
    apply_manifest,
    get_json,
    items,
    policy,
    service_account_kubeconfig,
    token_secret,
    wait_until,
)

from hubfixtures.server import HubServer, serve_hub
from kubellm.sandbox import harness, nodes

pytestmark = pytest.mark.e2e

N = int(os.environ.get("KUBELLM_FAULTS_N", "100"))
KILLS = int(os.environ.get("KUBELLM_FAULTS_KILLS", "20"))
POOL, PRODUCT, MEMORY_MIB, GPUS_PER_NODE = "faults", "NVIDIA-L40S", 46068, 8
QWEN, PHI, OLMO = ("Qwen/Qwen2.5-7B-Instruct", "microsoft/Phi-3-mini-4k-instruct",
                   "allenai/OLMo-2-1124-7B")
MISTRAL, QWEN_GPTQ = "mistralai/Mistral-Large-Instruct-2407", "Qwen/Qwen2.5-7B-Instruct-GPTQ-Int4"
LLAMA = "meta-llama/Llama-3.1-8B-Instruct"  # gated: the namespace's token Secret
ROTATION = [QWEN, PHI, OLMO, QWEN, MISTRAL]  # one in five refused
EXTRA = 24  # deployments the later phases add
RESULTS: dict[str, Any] = {"n": N, "phases": {}}


def doc(name: str, ns: str, repo: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": {"repo": repo}, "gpu": {"type": PRODUCT},
                            "context": {"maxModelLen": 4096}, **spec}
    if repo in (MISTRAL, LLAMA):
        body["hubTokenSecretRef"] = {"name": "hf-token", "key": "HF_TOKEN"}
    return {"apiVersion": "kubellm.io/v1alpha1", "kind": "LLMDeployment",
            "metadata": {"name": name, "namespace": ns}, "spec": body}


class Env:
    """What the phases share: the rollout, the operator, the Hub, the sandbox."""

    def __init__(self, cluster: Any, ns: str, hub: HubServer, operator: OperatorProcess,
                 rollout: Rollout) -> None:
        self.cluster, self.ns, self.hub, self.operator = cluster, ns, hub, operator
        self.rollout = rollout
        self.serial = 0

    def new_docs(self, count: int, repos: list[str], prefix: str) -> list[dict[str, Any]]:
        out = []
        for i in range(count):
            out.append(doc(f"{prefix}-{self.serial:03d}", self.ns, repos[i % len(repos)]))
            self.serial += 1
        return out

    def pool_nodes(self) -> list[dict[str, Any]]:
        found = get_json(self.cluster, "nodes", "-l", f"{nodes.POOL_LABEL}={POOL}")
        return list((found or {}).get("items", []))

    def converge_and_check(self, phase: str, faults: int, timeout: float = 240) -> None:
        began = time.monotonic()
        RESULTS["phases"][phase] = {"faults": faults, "survived": 0, "lost": 0}
        seconds = self.rollout.wait_converged(timeout)
        counts = self.rollout.check(self.pool_nodes())
        proc = self.operator.proc
        assert proc is not None and proc.poll() is None, f"operator died:\n{self.operator.tail()}"
        RESULTS["phases"][phase] = {"faults": faults, "survived": faults,
                                    "converged_seconds": round(seconds, 1),
                                    "check_seconds": round(time.monotonic() - began - seconds, 1),
                                    **counts}
        print(f"\n[faults] {phase}: {faults} faults, converged in {seconds:.1f}s, {counts}")

    def sandbox(self) -> Any:
        if self.cluster.sandbox is None:
            pytest.skip("restarting control-plane components needs the local sandbox "
                        "(USE_EXISTING_CLUSTER=true runs against a cluster we cannot restart)")
        return self.cluster.sandbox


@pytest.fixture(scope="module")
def env(cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    if cluster.sandbox is None:
        pytest.skip("the fault tests add kwok GPU nodes and restart control-plane components: "
                    "they need the local sandbox, not USE_EXISTING_CLUSTER")
    began = time.monotonic()
    allowed = sum(1 for i in range(N) if ROTATION[i % len(ROTATION)] != MISTRAL)
    count = nodes_for(allowed + EXTRA, GPUS_PER_NODE) + 1
    add_gpu_nodes(cluster, POOL, count, PRODUCT, GPUS_PER_NODE, MEMORY_MIB)
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS))
    for crd in ("llmdeployments.kubellm.io", "licensepolicies.kubellm.io"):
        cluster.kubectl("wait", "--for", "condition=Established", f"crd/{crd}", "--timeout=60s")
    ns = f"faults-{int(time.time()) % 100000}"
    cluster.kubectl("create", "namespace", ns)
    wait_until(lambda: cluster.kubectl("get", "sa/default", "-n", ns, check=False
                                       ).returncode == 0, 60, what="default ServiceAccount")
    apply_manifest(cluster, [policy(f"faults-{ns}", [ns]), token_secret(ns)])
    tmp = tmp_path_factory.mktemp("faults")
    kubeconfig = service_account_kubeconfig(cluster, tmp / "sa-kubeconfig")
    with serve_hub() as hub:
        hub.hang_seconds = 8.0  # past HF_HUB_ETAG_TIMEOUT (5 s)
        operator = OperatorProcess(kubeconfig, hub.endpoint, tmp / "operator.log",
                                   "--namespace", ns, "--resync-seconds", "5",
                                   "--cache-grace-period", "4",
                                   "--image", "ghcr.io/kubellm/kubellm:e2e").start()
        rollout = Rollout(cluster, ns, POOL)
        rollout.set_allowed({QWEN: True, PHI: True, OLMO: True, QWEN_GPTQ: True, LLAMA: True,
                             MISTRAL: False})
        RESULTS["setup_seconds"] = round(time.monotonic() - began, 1)
        RESULTS["pool"] = f"{count} x {GPUS_PER_NODE} {PRODUCT}"
        try:
            yield Env(cluster, ns, hub, operator, rollout)
        finally:
            operator.stop()
            log = Path(operator.log_path).read_text(errors="replace")
            RESULTS["operator_log_tracebacks"] = log.count("Traceback")
            RESULTS["total_seconds"] = round(time.monotonic() - began, 1)
            RESULTS["faults_injected"] = sum(p["faults"] for p in RESULTS["phases"].values())
            RESULTS["faults_survived"] = sum(p["survived"] for p in RESULTS["phases"].values())
            RESULTS["objects_lost"] = sum(p["lost"] for p in RESULTS["phases"].values())
            print(f"\n[faults] record {write_record('faults', RESULTS)}; operator log "
                  f"{operator.log_path}:\n{operator.tail(15)}")
            cluster.kubectl("delete", "licensepolicy", f"faults-{ns}", "--ignore-not-found")
            # wait: the GC of ~100 deployments slows the apiserver for the next module
            cluster.kubectl("delete", "namespace", ns, "--timeout=180s", check=False,
                            timeout=200)
            delete_nodes(cluster, POOL)


def test_operator_sigkilled_during_the_rollout(env: Env) -> None:
    rng = random.Random(12)
    docs = [doc(f"m-{i:03d}", env.ns, ROTATION[i % len(ROTATION)]) for i in range(N)]
    batches = [docs[i:i + 10] for i in range(0, len(docs), 10)]
    kills: list[float] = []
    failure: list[BaseException] = []

    def killer() -> None:
        try:
            while len(kills) < KILLS:
                time.sleep(rng.uniform(0.2, 3.0))
                env.operator.kill()
                kills.append(time.monotonic())
                env.operator.start()
        except BaseException as exc:  # reported by the main thread
            failure.append(exc)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    for i, batch in enumerate(batches):
        env.rollout.apply(batch)
        if i == len(batches) // 2:  # some deleted, some changed, mid-rollout
            env.rollout.delete([d["metadata"]["name"] for d in docs[:5]])
            changed = docs[10:15]
            for d in changed:
                d["spec"]["context"] = {"maxModelLen": 2048}
            env.rollout.apply(changed)
        time.sleep(rng.uniform(0.0, 1.0))
    thread.join(timeout=600)
    assert not failure, failure
    assert len(kills) == KILLS
    env.converge_and_check("operator SIGKILL", len(kills), timeout=300)
    changed_gen = [env.rollout.generation[d["metadata"]["name"]] for d in docs[10:15]]
    assert changed_gen == [2] * 5, changed_gen


def test_apiserver_restarted(env: Env) -> None:
    sandbox = env.sandbox()
    env.rollout.apply(env.new_docs(4, [QWEN, OLMO], "api"))
    seconds = harness.restart_component(sandbox, "kube-apiserver", down_seconds=3)
    RESULTS["apiserver_restart_seconds"] = round(seconds, 1)
    env.converge_and_check("apiserver restart", 1)


def test_etcd_restarted(env: Env) -> None:
    sandbox = env.sandbox()
    env.rollout.apply(env.new_docs(4, [PHI, QWEN], "etcd"))
    seconds = harness.restart_component(sandbox, "etcd", down_seconds=3)
    RESULTS["etcd_restart_seconds"] = round(seconds, 1)
    env.converge_and_check("etcd restart", 1)


def test_download_pods_killed_mid_download(env: Env) -> None:
    """kwok stopped: a new cache's Job pod is created and bound but not run; it is marked to
    die with 137 and a second cache's pod is deleted; kwok back: the Jobs retry and finish."""
    sandbox = env.sandbox()
    harness.stop_component(sandbox, "kwok")
    try:
        env.rollout.apply(env.new_docs(3, [QWEN_GPTQ, LLAMA], "dl"))  # two new caches

        def job_pods() -> list[dict[str, Any]]:
            pods = [p for p in items(env.cluster, "pods", env.ns, "-l", "job-name")
                    if p["status"].get("phase") not in ("Succeeded", "Failed")]
            return pods if len(pods) >= 2 else []

        pods = wait_until(job_pods, 60, what="two new download pods")
        marked, deleted = pods[0]["metadata"]["name"], pods[1]["metadata"]["name"]
        env.cluster.kubectl("annotate", "pod", marked, "-n", env.ns,
                            "kubellm.io/sandbox-fail=true", "kubellm.io/sandbox-exit-code=137")
        env.cluster.kubectl("delete", "pod", deleted, "-n", env.ns, "--wait=false")
    finally:
        harness.start_component(sandbox, "kwok")
    job_of = {p["metadata"]["name"]: p["metadata"]["labels"]["job-name"] for p in pods}

    def failed_once() -> bool:
        job = get_json(env.cluster, "job", job_of[marked], "-n", env.ns)
        return bool(job and (job.get("status") or {}).get("failed"))

    wait_until(failed_once, 60, what="the killed download pod counted as failed")
    env.converge_and_check("download pod killed", 2, timeout=180)
    for job in job_of.values():
        status = get_json(env.cluster, "job", job, "-n", env.ns)["status"]
        assert status.get("succeeded") == 1, (job, status)


def test_hub_failing_for_a_while(env: Env) -> None:
    env.operator.kill()  # nothing memoised: every reconcile asks the Hub
    env.hub.fail = "500"
    try:
        env.operator.start()
        docs = env.new_docs(3, [PHI, OLMO, QWEN], "hub")
        env.rollout.apply(docs)

        def waiting() -> bool:
            objs = [get_json(env.cluster, "llmd", d["metadata"]["name"], "-n", env.ns)
                    for d in docs]
            return all((o or {}).get("status", {}).get("reason") == "HubUnavailable"
                       for o in objs)

        wait_until(waiting, 60, what="HubUnavailable on the new deployments")
        time.sleep(5)
        env.hub.fail = "hang"
        time.sleep(12)
    finally:
        env.hub.fail = None
    env.converge_and_check("hub 500 + timeouts", 2, timeout=240)


def test_license_policy_changed_mid_rollout(env: Env) -> None:
    name = f"faults-{env.ns}"
    env.rollout.apply(env.new_docs(4, [PHI, QWEN], "pol"))
    apply_manifest(env.cluster, policy(name, [env.ns], deniedLicenses=["mit"]))
    env.rollout.set_allowed({PHI: False})
    env.converge_and_check("policy changed (mit denied)", 1)
    env.rollout.apply(env.new_docs(2, [PHI, OLMO], "pol"))
    apply_manifest(env.cluster, policy(name, [env.ns]))
    env.rollout.set_allowed({PHI: True})
    env.converge_and_check("policy changed back", 1)


def test_deletions_leave_no_children(env: Env) -> None:
    live = sorted(env.rollout.live_names())
    env.rollout.delete(live[:: 10])
    env.converge_and_check("deletions (GC)", 0)
