"""e2e: several ``kubellm run --leader-elect`` processes against the sandbox, exactly one
reconciling.

Each process runs as the operator's ServiceAccount (``kubellm/data/rbac.yaml``, whose Role grants
the Lease in kubellm-system), with its own metrics and liveness ports and ``POD_NAME`` set, so
the Lease's holderIdentity names it. Checked: one holder; only it reconciles (the standby's
``kubellm_api_writes_total`` and ``kubellm_reconciles_total`` stay 0, ``kubellm_leader`` is 0, its
log says it waits, its liveness endpoint answers); SIGTERM on the leader releases the Lease and
the standby takes over within one retry period (plus the leader's shutdown) and reconciles a new
LLMDeployment; ``kill -9`` (no release) is taken over within a lease duration plus a retry
period. The failover times are printed (``pytest -s`` shows them).
"""

from __future__ import annotations

import signal
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_operator_helpers import (
    CRDS,
    OperatorProcess,
    apply_manifest,
    condition,
    example,
    free_port,
    get_json,
    policy,
    service_account_kubeconfig,
    wait_until,
)

from hubfixtures.server import HubServer, serve_hub
from kubellm.k8s.leader import LEASE_DURATION, RETRY_PERIOD

pytestmark = pytest.mark.e2e

LEASE_NAMESPACE = "kubellm-system"  # where kubellm/data/rbac.yaml grants leases


@pytest.fixture(scope="module")
def hub() -> Iterator[HubServer]:
    with serve_hub() as server:
        yield server


@pytest.fixture(scope="module")
def kubeconfig(cluster: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS))
    for crd in ("llmdeployments.kubellm.io", "licensepolicies.kubellm.io"):
        cluster.kubectl("wait", "--for", "condition=Established", f"crd/{crd}", "--timeout=60s")
    return service_account_kubeconfig(cluster, tmp_path_factory.mktemp("leader") / "sa")


class Candidates:
    """Operator processes competing for one Lease (named per test)."""

    def __init__(self, kubeconfig: Path, hub: HubServer, tmp: Path) -> None:
        self.kubeconfig, self.hub, self.tmp = kubeconfig, hub, tmp
        self.lease = f"kubellm-e2e-{uuid.uuid4().hex[:6]}"
        self.procs: dict[str, OperatorProcess] = {}
        self.liveness: dict[str, int] = {}

    def start(self, name: str) -> OperatorProcess:
        port = free_port()
        proc = OperatorProcess(
            self.kubeconfig, self.hub.endpoint, self.tmp / f"{name}.log", "-A",
            "--resync-seconds", "3", "--image", "ghcr.io/kubellm/kubellm:e2e",
            "--leader-elect", "--leader-election-namespace", LEASE_NAMESPACE,
            "--leader-election-id", self.lease,
            "--liveness", f"http://127.0.0.1:{port}/healthz",
            env={"POD_NAME": name})
        self.procs[name], self.liveness[name] = proc, port
        return proc.start()

    def stop_all(self) -> None:
        for name, proc in self.procs.items():
            proc.stop()
            print(f"--- {name} log tail ---\n{proc.tail(15)}")


@pytest.fixture
def candidates(kubeconfig: Path, hub: HubServer, namespace: str,
               tmp_path: Path, cluster: Any) -> Iterator[Candidates]:
    apply_manifest(cluster, policy(f"pol-{namespace}", [namespace]))
    made = Candidates(kubeconfig, hub, tmp_path)
    yield made
    made.stop_all()
    cluster.kubectl("delete", "licensepolicy", f"pol-{namespace}", "--ignore-not-found")
    cluster.kubectl("delete", "lease", "-n", LEASE_NAMESPACE, made.lease, "--ignore-not-found")


def holder(cluster: Any, lease: str) -> str:
    found = get_json(cluster, "lease", lease, "-n", LEASE_NAMESPACE)
    return str(((found or {}).get("spec") or {}).get("holderIdentity") or "")


def wait_holder(cluster: Any, lease: str, name: str, timeout: float) -> float:
    """Seconds until the Lease names ``name`` (POD_NAME + suffix) as its holder."""
    started = time.monotonic()
    wait_until(lambda: holder(cluster, lease).startswith(f"{name}_"), timeout, 0.1,
               what=f"lease {lease} held by {name} (holder: {holder(cluster, lease)!r})")
    return time.monotonic() - started


def gauge(proc: OperatorProcess, name: str) -> float:
    return sum(proc.samples(name).values())


def live(port: int) -> bool:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
        return bool(response.status == 200)


def ready(cluster: Any, namespace: str, name: str, timeout: float = 120) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        obj = get_json(cluster, "llmd", name, "-n", namespace)
        cond = condition(obj, "Ready")
        return obj if cond and cond[0] == "True" else None

    found: dict[str, Any] = wait_until(check, timeout, what=f"{namespace}/{name} Ready")
    return found


def qwen(name: str, namespace: str) -> dict[str, Any]:
    """The Qwen2.5-7B example (one L4 of the sandbox) under another name."""
    doc = example("qwen2.5-7b-l4.yaml", namespace)
    doc["metadata"]["name"] = name
    return doc


def assert_idle_standby(proc: OperatorProcess, lease: str) -> None:
    assert gauge(proc, "kubellm_leader") == 0
    assert gauge(proc, "kubellm_api_writes_total") == 0, "a standby wrote to the apiserver"
    assert gauge(proc, "kubellm_reconciles_total") == 0, "a standby reconciled"
    assert f"standby: lease {LEASE_NAMESPACE}/{lease} is held by" in proc.log_path.read_text()


def test_one_leader_reconciles_and_sigterm_hands_over(cluster: Any, namespace: str,
                                                      candidates: Candidates) -> None:
    a = candidates.start("op-a")
    wait_holder(cluster, candidates.lease, "op-a", 30)
    b = candidates.start("op-b")
    wait_until(lambda: "standby: lease" in b.log_path.read_text(), 30, what="b in standby")
    assert holder(cluster, candidates.lease).startswith("op-a_")
    assert gauge(a, "kubellm_leader") == 1
    assert live(candidates.liveness["op-b"]), "the standby's liveness endpoint must answer"

    apply_manifest(cluster, qwen("first", namespace))
    first = ready(cluster, namespace, "first")
    assert first["status"]["sizing"]["gpuType"] == "NVIDIA-L4"
    assert gauge(a, "kubellm_api_writes_total") > 0
    time.sleep(4)  # more than a resync period: the standby stays idle through it
    assert_idle_standby(b, candidates.lease)
    assert live(candidates.liveness["op-a"]), "the leader's (kopf's) liveness endpoint"

    started = time.monotonic()
    assert a.proc is not None
    a.proc.send_signal(signal.SIGTERM)
    failover = wait_holder(cluster, candidates.lease, "op-b", LEASE_DURATION + 15)
    total = time.monotonic() - started
    assert a.proc.wait(30) == 0, a.tail()
    assert f"lease {LEASE_NAMESPACE}/{candidates.lease} released by op-a_" in a.tail(40)
    print(f"\nSIGTERM failover: the standby held the lease {total:.2f}s after the signal")
    # released, not expired: no lease duration to wait (the leader's shutdown + one retry)
    assert failover < LEASE_DURATION, f"failover took {failover:.1f}s: the lease was not released"

    wait_until(lambda: gauge(b, "kubellm_leader") == 1, 15, what="b's kubellm_leader 1")
    apply_manifest(cluster, qwen("second", namespace))
    ready(cluster, namespace, "second")
    assert gauge(b, "kubellm_api_writes_total") > 0
    wait_until(lambda: live(candidates.liveness["op-b"]), 15, what="b's kopf liveness endpoint")


def test_kill_9_of_the_leader_is_taken_over_within_a_lease_duration(
        cluster: Any, namespace: str, candidates: Candidates) -> None:
    a = candidates.start("op-a")
    wait_holder(cluster, candidates.lease, "op-a", 30)
    b = candidates.start("op-b")
    wait_until(lambda: "standby: lease" in b.log_path.read_text(), 30, what="b in standby")
    time.sleep(2 * RETRY_PERIOD)  # b has seen a few renewals

    started = time.monotonic()
    a.kill()  # SIGKILL: no release, the lease must expire
    wait_holder(cluster, candidates.lease, "op-b", LEASE_DURATION + 20)
    total = time.monotonic() - started
    print(f"\nkill -9 takeover: the standby held the lease {total:.2f}s after SIGKILL "
          f"(lease duration {LEASE_DURATION:g}s, retry period {RETRY_PERIOD:g}s)")
    # Safety, not speed: the standby must not take a lease that has not expired. (How fast it
    # takes over is printed above; wait_holder's timeout is the only upper bound, so a loaded
    # machine cannot fail this test on timing.)
    assert total >= LEASE_DURATION - RETRY_PERIOD - 1, (
        f"takeover after {total:.1f}s: the standby did not wait for the lease to expire")
    lease = get_json(cluster, "lease", candidates.lease, "-n", LEASE_NAMESPACE)["spec"]
    assert lease["leaseTransitions"] >= 1

    apply_manifest(cluster, qwen("after-kill", namespace))
    ready(cluster, namespace, "after-kill")
    assert gauge(b, "kubellm_leader") == 1 and gauge(b, "kubellm_api_writes_total") > 0


def test_a_leader_that_loses_the_lease_stops_and_exits_1(
        cluster: Any, namespace: str, candidates: Candidates) -> None:
    """Someone else holds the Lease (here: written by hand, as after a partition): the leader
    stops reconciling and exits non-zero, so its pod restarts as a standby."""
    a = candidates.start("op-a")
    wait_holder(cluster, candidates.lease, "op-a", 30)
    cluster.kubectl("patch", "lease", candidates.lease, "-n", LEASE_NAMESPACE, "--type=merge",
                    "-p", '{"spec": {"holderIdentity": "intruder_0"}}')
    started = time.monotonic()
    assert a.proc is not None
    code = a.proc.wait(RETRY_PERIOD + 15)
    print(f"\nlease lost: the leader exited {code} after {time.monotonic() - started:.2f}s")
    assert code == 1, a.tail()
    assert "lost the leader lease (the lease is held by intruder_0)" in a.tail(40)
    assert holder(cluster, candidates.lease) == "intruder_0"  # never written back
