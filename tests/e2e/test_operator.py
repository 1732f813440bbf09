"""e2e: ``kubellm run`` on a real apiserver (the sandbox) with kwok GPU nodes and the fake Hub.

The operator runs as a subprocess authenticated as the ServiceAccount of
``kubellm/data/rbac.yaml`` (so a missing RBAC rule fails these tests), with a short resync
(3 s) and cache grace period (4 s). Each test works in its own namespace with its own
LicensePolicy scoped to it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_operator_helpers import (
    CRDS,
    OperatorProcess,
    apply_manifest,
    condition,
    example,
    get_json,
    items,
    llmd,
    policy,
    service_account_kubeconfig,
    token_secret,
    wait_until,
)

from hubfixtures.models import CATALOGUE, FakeRepo
from hubfixtures.server import HubServer, serve_hub

pytestmark = pytest.mark.e2e

GPU_LABEL = "nvidia.com/gpu.product"


@pytest.fixture(scope="module")
def hub() -> Iterator[HubServer]:
    with serve_hub() as server:
        yield server


@pytest.fixture(scope="module")
def operator(cluster: Any, hub: HubServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
    OperatorProcess
]:
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS))
    for crd in ("llmdeployments.kubellm.io", "licensepolicies.kubellm.io"):
        cluster.kubectl("wait", "--for", "condition=Established", f"crd/{crd}", "--timeout=60s")
    tmp = tmp_path_factory.mktemp("operator")
    kubeconfig = service_account_kubeconfig(cluster, tmp / "sa-kubeconfig")
    proc = OperatorProcess(kubeconfig, hub.endpoint, tmp / "operator.log", "-A",
                           "--resync-seconds", "3", "--cache-grace-period", "4",
                           "--image", "ghcr.io/kubellm/kubellm:e2e").start()
    yield proc
    proc.stop()
    print(f"--- operator log tail ({tmp / 'operator.log'}) ---\n{proc.tail(40)}")


@pytest.fixture
def ns(cluster: Any, namespace: str, operator: OperatorProcess) -> Iterator[str]:
    """The test namespace with a commercial policy covering it and a Hub token Secret."""
    apply_manifest(cluster, [policy(f"pol-{namespace}", [namespace]), token_secret(namespace)])
    yield namespace
    cluster.kubectl("delete", "licensepolicy", f"pol-{namespace}", "--ignore-not-found")


def get_llmd(cluster: Any, ns: str, name: str) -> dict[str, Any] | None:
    found: dict[str, Any] | None = get_json(cluster, "llmd", name, "-n", ns)
    return found


def wait_ready(cluster: Any, ns: str, name: str, timeout: float = 90) -> dict[str, Any]:
    def ready() -> dict[str, Any] | None:
        obj = get_llmd(cluster, ns, name)
        cond = condition(obj, "Ready")
        return obj if cond and cond[0] == "True" else None

    try:
        return wait_until(ready, timeout, what=f"{ns}/{name} Ready")
    except AssertionError:
        obj = get_llmd(cluster, ns, name)
        raise AssertionError(f"{ns}/{name} not Ready: {(obj or {}).get('status')}") from None


def wait_condition(cluster: Any, ns: str, name: str, type_: str, status: str,
                   reason: str | None = None, timeout: float = 60) -> tuple[str, str, str]:
    def check() -> tuple[str, str, str] | None:
        cond = condition(get_llmd(cluster, ns, name), type_)
        if cond and cond[0] == status and (reason is None or cond[1] == reason):
            return cond
        return None

    try:
        return wait_until(check, timeout, what=f"{ns}/{name} {type_}={status} {reason or ''}")
    except AssertionError:
        obj = get_llmd(cluster, ns, name)
        raise AssertionError(f"{ns}/{name}: {(obj or {}).get('status')}") from None


def serving_pods(cluster: Any, ns: str, name: str) -> list[dict[str, Any]]:
    return items(cluster, "pods", ns, "-l",
                 f"app.kubernetes.io/component=server,app.kubernetes.io/instance={name}")


def node_product(cluster: Any, node: str) -> str:
    found = get_json(cluster, "node", node)
    return str(found["metadata"]["labels"].get(GPU_LABEL)) if found else "?"


# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("file", "gpu"), [
    ("qwen2.5-7b-l4.yaml", "NVIDIA-L4"),
    ("llama-3.1-70b-awq-h100.yaml", "NVIDIA-H100-80GB-HBM3"),
    ("llama-3.3-70b-bf16-tp.yaml", "NVIDIA-A100-SXM4-80GB"),
    ("sglang/qwen2.5-7b-l4.yaml", "NVIDIA-L4"),  # the third runtime, end to end on the sandbox
])
def test_example_becomes_ready_on_the_right_gpus(cluster: Any, ns: str, file: str,
                                                 gpu: str) -> None:
    doc = example(file, ns)
    name = doc["metadata"]["name"]
    apply_manifest(cluster, doc)
    obj = wait_ready(cluster, ns, name, timeout=120)
    status = obj["status"]
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    assert status["sizing"]["gpuType"] == gpu
    assert status["endpoint"].startswith(f"http://{name}.{ns}.svc.cluster.local:")
    assert status["endpoint"].endswith("/v1")
    assert status["readyReplicas"] >= 1 and status["license"]["allowed"] is True
    assert status["resolvedRevision"] and len(status["resolvedRevision"]) == 40
    # kopf keeps no state on the object (no diff-base or progress annotations: no kopf patch)
    assert not [k for k in obj["metadata"].get("annotations") or {}
                if k.startswith("kubellm.io/")], obj["metadata"].get("annotations")
    pods = serving_pods(cluster, ns, name)
    assert pods, "no serving pods"
    for pod in pods:
        assert node_product(cluster, pod["spec"]["nodeName"]) == gpu
        limits = pod["spec"]["containers"][0]["resources"]["limits"]
        assert int(limits["nvidia.com/gpu"]) == status["sizing"]["gpusPerReplica"]
    # the scale subresource selects exactly the serving pods
    selected = items(cluster, "pods", ns, "-l", status["selector"])
    assert {p["metadata"]["name"] for p in selected} == {p["metadata"]["name"] for p in pods}
    events = items(cluster, "events", ns, "--field-selector",
                   f"involvedObject.name={name},involvedObject.kind=LLMDeployment")
    assert any(e["reason"] == "Ready" for e in events), [e["reason"] for e in events]
    runtime = doc["spec"].get("runtime", "auto")
    if runtime != "auto":  # the pods run what the spec asked for
        assert status["runtime"] == runtime
        assert {p["metadata"]["labels"]["kubellm.io/runtime"] for p in pods} == {runtime}


def test_policy_denial_then_change(cluster: Any, ns: str) -> None:
    doc = llmd("mistral", ns, "mistralai/Mistral-Large-Instruct-2407",
               hubTokenSecretRef={"name": "hf-token", "key": "HF_TOKEN"})
    apply_manifest(cluster, doc)
    lic = wait_condition(cluster, ns, "mistral", "LicenseApproved", "False", "LicenseDenied")
    assert "research" in lic[2].lower() or "commercial" in lic[2].lower(), lic
    assert condition(get_llmd(cluster, ns, "mistral"), "Ready")[:2] == ("False", "LicenseDenied")
    time.sleep(2)
    assert items(cluster, "deployments", ns) == [] and items(cluster, "jobs", ns) == []
    assert items(cluster, "pods", ns) == []
    events = items(cluster, "events", ns, "--field-selector", "involvedObject.name=mistral")
    assert any(e["reason"] == "LicenseDenied" and e["type"] == "Warning" for e in events)

    # a research deployment: the policy now allows research-only licences, non-commercially
    apply_manifest(cluster, policy(f"pol-{ns}", [ns], commercialUse=False,
                                   allowedClasses=["permissive", "restrictive-community",
                                                   "research-only"]))
    obj = wait_ready(cluster, ns, "mistral", timeout=120)
    assert obj["status"]["license"]["allowed"] is True
    assert len(items(cluster, "deployments", ns)) == 1

    # and back: denied again -> the running rollout is scaled to zero, nothing deleted
    apply_manifest(cluster, policy(f"pol-{ns}", [ns]))
    wait_condition(cluster, ns, "mistral", "LicenseApproved", "False", "LicenseDenied")
    dep = wait_until(lambda: [d for d in items(cluster, "deployments", ns)
                              if d["spec"]["replicas"] == 0], 30, what="scaled to 0")[0]
    assert dep["metadata"]["name"] == "mistral"


def test_does_not_fit_creates_no_pods(cluster: Any, ns: str) -> None:
    doc = llmd("too-big", ns, "Qwen/Qwen2.5-72B-Instruct", quantization="none",
               gpu={"type": "NVIDIA-L4", "count": 1})
    apply_manifest(cluster, doc)
    sized = wait_condition(cluster, ns, "too-big", "Sized", "False")
    assert sized[1] in ("DoesNotFit", "Unsupported", "InvalidSpec"), sized
    assert "GiB" in sized[2], sized  # explained with numbers
    time.sleep(4)  # at least one resync later
    assert items(cluster, "pods", ns) == []
    assert items(cluster, "deployments", ns) == [] and items(cluster, "jobs", ns) == []
    assert items(cluster, "pvc", ns) == []


def test_two_deployments_share_one_cache(cluster: Any, ns: str) -> None:
    apply_manifest(cluster, [example("qwen2.5-7b-l4.yaml", ns), example("qwen2.5-7b-tgi.yaml",
                                                                           ns)])
    a = wait_ready(cluster, ns, "qwen-7b")
    b = wait_ready(cluster, ns, "qwen-7b-tgi")
    assert a["status"]["cache"] == b["status"]["cache"]
    assert a["status"]["runtime"] != b["status"]["runtime"]
    assert len(items(cluster, "jobs", ns)) == 1
    assert len(items(cluster, "pvc", ns)) == 1
    assert items(cluster, "pvc", ns)[0]["metadata"].get("ownerReferences") is None


CLAIMS_INDEX = [{"name": "claims-7b", "results": [
    {"task": {"type": "text-generation", "name": "Text Generation"},
     "dataset": {"name": "MMLU (5-Shot)", "type": "cais/mmlu", "split": "test"},
     "metrics": [{"type": "acc", "value": 68.9, "name": "accuracy"}],
     "source": {"name": "Open LLM Leaderboard",
                "url": "https://huggingface.co/spaces/open-llm-leaderboard"}}]}]


def test_model_card_claims_in_status_and_plan(cluster: Any, ns: str, hub: HubServer,
                                              tmp_path: Path) -> None:
    """A card's model-index results reach status.claims and `kubellm plan -o json` alike."""
    qwen = CATALOGUE["Qwen/Qwen2.5-7B-Instruct"]
    repo = dataclasses.replace(qwen, repo_id="kubellm-e2e/claims-7b",
                               card={**qwen.card, "model-index": CLAIMS_INDEX})
    hub.push(repo)
    doc = llmd("claims", ns, repo.repo_id, gpu={"type": "NVIDIA-L4"},
               context={"maxModelLen": 8192})
    apply_manifest(cluster, doc)
    claims = wait_ready(cluster, ns, "claims")["status"]["claims"]
    assert claims == [{"benchmark": "MMLU (5-Shot)", "metric": "accuracy", "value": 68.9,
                       "task": "Text Generation", "split": "test",
                       "source": "Open LLM Leaderboard",
                       "url": "https://huggingface.co/spaces/open-llm-leaderboard",
                       "verified": False}], claims
    path = tmp_path / "claims.yaml"
    path.write_text(yaml.safe_dump_all([policy(f"pol-{ns}", [ns]), doc]))
    done = subprocess.run(
        [sys.executable, "-m", "kubellm", "plan", "-f", str(path), "--kubeconfig",
         cluster.kubeconfig, "-o", "json"], capture_output=True, text=True, check=False,
        env={**os.environ, "HF_ENDPOINT": hub.endpoint}, timeout=120)
    reports = json.loads(done.stdout)
    report = reports[0] if isinstance(reports, list) else reports
    assert report["model"]["claims"] == claims, done.stderr


class _Bumped(FakeRepo):
    """The same repo after a new commit (another sha)."""

    @property
    def sha(self) -> str:
        return "c0ffee" + "0" * 34


def test_revision_bump_new_cache_and_rollout(cluster: Any, ns: str, hub: HubServer) -> None:
    repo = "Qwen/Qwen2.5-7B-Instruct"
    doc = llmd("chat", ns, repo, runtime="vllm", gpu={"type": "NVIDIA-L4"},
               context={"maxModelLen": 8192})
    apply_manifest(cluster, doc)
    first = wait_ready(cluster, ns, "chat")["status"]
    old = CATALOGUE[repo]
    bumped = _Bumped(**{f: getattr(old, f) for f in old.__dataclass_fields__})
    hub.models[repo] = bumped
    try:
        doc["spec"]["model"]["revision"] = bumped.sha
        apply_manifest(cluster, doc)

        def rolled() -> dict[str, Any] | None:
            obj = get_llmd(cluster, ns, "chat")
            st = (obj or {}).get("status") or {}
            ok = (st.get("resolvedRevision") == bumped.sha and st.get("ready") == "True"
                  and st.get("observedGeneration") == obj["metadata"]["generation"])
            return st if ok else None

        second = wait_until(rolled, 120, what="rolled out to the new revision")
    finally:
        hub.models[repo] = old
    assert second["cache"]["key"] != first["cache"]["key"]
    jobs = {j["metadata"]["name"] for j in items(cluster, "jobs", ns)}
    assert second["cache"]["jobName"] in jobs
    dep = items(cluster, "deployments", ns)[0]
    assert bumped.sha in str(dep["spec"]["template"]), "the Deployment serves the new revision"
    assert len(items(cluster, "deployments", ns)) == 1


def test_failing_download_sets_cache_ready_false(cluster: Any, ns: str, hub: HubServer,
                                                 tmp_path: Path) -> None:
    """The download Job (pre-created with kwok's fail annotation) fails: CacheReady=False with
    the Job's reason, and no serving pods."""
    doc = example("qwen2.5-7b-l4.yaml", ns)
    path = tmp_path / "llmd.yaml"
    path.write_text(yaml.safe_dump(doc))
    planned = subprocess.run(
        [sys.executable, "-m", "kubellm", "plan", "-f", str(path), "--kubeconfig",
         cluster.kubeconfig, "-o", "json"],
        capture_output=True, text=True, env={**os.environ, "HF_ENDPOINT": hub.endpoint},
        check=False)
    plan = json.loads(planned.stdout)
    plan = plan[0] if isinstance(plan, list) else plan
    job = next(o for o in plan["objects"] if o["kind"] == "Job")
    job["metadata"]["namespace"] = ns
    job["spec"]["backoffLimit"] = 0
    template_meta = job["spec"]["template"].setdefault("metadata", {})
    template_meta.setdefault("annotations", {})["kubellm.io/sandbox-fail"] = "true"
    apply_manifest(cluster, job)
    apply_manifest(cluster, doc)
    cache = wait_condition(cluster, ns, "qwen-7b", "CacheReady", "False", "BackoffLimitExceeded",
                           timeout=90)
    assert job["metadata"]["name"] in cache[2]
    obj = get_llmd(cluster, ns, "qwen-7b")
    assert obj["status"]["reason"] == "BackoffLimitExceeded"
    assert items(cluster, "deployments", ns) == []


def test_drift_is_repaired(cluster: Any, ns: str) -> None:
    apply_manifest(cluster, example("qwen2.5-7b-l4.yaml", ns))
    wait_ready(cluster, ns, "qwen-7b")
    cluster.kubectl("scale", "deployment/qwen-7b", "-n", ns, "--replicas=3")
    wait_until(lambda: get_json(cluster, "deploy", "qwen-7b", "-n", ns)["spec"]["replicas"] == 1,
               30, what="replicas restored to 1")
    # a Service keeps no generation: a hand edit of its spec is still news to the owner
    cluster.kubectl("patch", "service", "qwen-7b", "-n", ns, "--type", "json", "-p",
                    '[{"op": "replace", "path": "/spec/selector/app.kubernetes.io~1instance",'
                    ' "value": "someone-else"}]')
    wait_until(lambda: get_json(cluster, "service", "qwen-7b", "-n", ns)["spec"]["selector"][
        "app.kubernetes.io/instance"] == "qwen-7b", 30, what="service selector restored")
    cluster.kubectl("delete", "service", "qwen-7b", "-n", ns)
    wait_until(lambda: get_json(cluster, "service", "qwen-7b", "-n", ns), 30,
               what="service recreated")
    cluster.kubectl("delete", "deployment", "qwen-7b", "-n", ns)
    wait_ready(cluster, ns, "qwen-7b")
    assert len(items(cluster, "deployments", ns)) == 1


def test_deletion_leaves_nothing_but_caches_in_use(cluster: Any, ns: str) -> None:
    apply_manifest(cluster, [example("qwen2.5-7b-l4.yaml", ns),
                             example("qwen2.5-7b-tgi.yaml", ns)])
    wait_ready(cluster, ns, "qwen-7b")
    wait_ready(cluster, ns, "qwen-7b-tgi")
    obj = get_llmd(cluster, ns, "qwen-7b")
    assert not obj["metadata"].get("finalizers"), "no finalizer: delete works without operator"
    cluster.kubectl("delete", "llmd", "qwen-7b", "-n", ns, "--wait=true", "--timeout=30s")
    wait_until(lambda: [d["metadata"]["name"] for d in items(cluster, "deployments", ns)]
               == ["qwen-7b-tgi"], 60, what="GC of qwen-7b's Deployment")
    wait_until(lambda: [s["metadata"]["name"] for s in items(cluster, "services", ns)]
               == ["qwen-7b-tgi"], 60, what="GC of qwen-7b's Service")
    time.sleep(9)  # > grace (4 s) + resync (3 s): the shared cache is still in use
    assert len(items(cluster, "pvc", ns)) == 1 and len(items(cluster, "jobs", ns)) == 1
    cluster.kubectl("delete", "llmd", "qwen-7b-tgi", "-n", ns, "--wait=true", "--timeout=30s")
    wait_until(lambda: not items(cluster, "pvc", ns) and not items(cluster, "jobs", ns), 60,
               what="the unused cache collected after its grace period")
    wait_until(lambda: not items(cluster, "deployments", ns) and not items(cluster, "services",
                                                                             ns), 60,
               what="nothing left")


def test_restart_mid_rollout_converges_without_duplicates(cluster: Any, ns: str,
                                                          operator: OperatorProcess) -> None:
    docs = [llmd(f"m{i}", ns, "Qwen/Qwen2.5-7B-Instruct", runtime="vllm",
                 gpu={"type": "auto"}, context={"maxModelLen": 4096}) for i in range(3)]
    apply_manifest(cluster, docs)
    wait_until(lambda: items(cluster, "jobs", ns), 30, what="the rollout started")
    operator.kill()  # SIGKILL mid-rollout
    try:
        for d in docs:  # spec changes while it is down
            d["spec"]["context"]["maxModelLen"] = 2048
        apply_manifest(cluster, docs)
    finally:
        operator.start()
    for d in docs:
        obj = wait_ready(cluster, ns, d["metadata"]["name"], timeout=120)
        assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"] == 2
    wait_until(lambda: all(d["status"].get("readyReplicas") == 1
                           and d["status"].get("updatedReplicas") == 1
                           for d in items(cluster, "deployments", ns)), 60, what="rolled out")
    deployments = items(cluster, "deployments", ns)
    assert sorted(d["metadata"]["name"] for d in deployments) == ["m0", "m1", "m2"]
    assert len(items(cluster, "jobs", ns)) == 1 and len(items(cluster, "pvc", ns)) == 1
    assert len(items(cluster, "services", ns)) == 3
    pods = [p for p in items(cluster, "pods", ns)
            if p["metadata"]["labels"].get("app.kubernetes.io/component") == "server"
            and not p["metadata"].get("deletionTimestamp")]
    assert len(pods) == 3
    assert all("2048" in str(d["spec"]["template"]) for d in deployments)


def test_idle_resync_makes_zero_writes(cluster: Any, ns: str, operator: OperatorProcess) -> None:
    apply_manifest(cluster, [example("qwen2.5-7b-l4.yaml", ns),
                             example("llama-3.1-70b-awq-h100.yaml", ns)])
    wait_ready(cluster, ns, "qwen-7b")
    wait_ready(cluster, ns, "llama-70b-awq")

    def versions() -> dict[str, str]:
        out = {}
        for kind in ("llmd", "deployments", "services", "jobs", "pvc"):
            for obj in items(cluster, kind, ns):
                out[f"{kind}/{obj['metadata']['name']}"] = obj["metadata"]["resourceVersion"]
        return out

    # let the last status/event writes settle, then watch three resync periods
    def settled() -> bool:
        before = operator.writes()
        time.sleep(3.5)
        return operator.writes() == before

    wait_until(settled, 60, interval=0, what="writes to settle")
    before_rv, before_writes = versions(), operator.writes()
    before_reconciles = operator.reconciles()
    time.sleep(10)  # >= 3 resyncs at 3 s
    assert operator.reconciles() >= before_reconciles + 6, "the resync did not run"
    assert versions() == before_rv
    assert operator.writes() == before_writes, operator.samples("kubellm_api_writes_total")
    gauge = operator.samples('kubellm_deployments{condition="Ready",status="True"}')
    assert sum(gauge.values()) >= 2, gauge


def test_scale_subresource_drives_the_deployment(cluster: Any, ns: str) -> None:
    apply_manifest(cluster, example("qwen2.5-7b-l4.yaml", ns))
    wait_ready(cluster, ns, "qwen-7b")
    cluster.kubectl("scale", "llmd/qwen-7b", "-n", ns, "--replicas=2")
    wait_until(lambda: (get_llmd(cluster, ns, "qwen-7b") or {}).get("status", {}).get(
        "readyReplicas") == 2, 60, what="2 ready replicas in status")
    assert get_json(cluster, "deploy", "qwen-7b", "-n", ns)["spec"]["replicas"] == 2
    scale = json.loads(cluster.kubectl("get", "--raw",
                                       f"/apis/kubellm.io/v1alpha1/namespaces/{ns}/"
                                       "llmdeployments/qwen-7b/scale").stdout)
    assert scale["spec"]["replicas"] == 2 and scale["status"]["replicas"] == 2
    assert "app.kubernetes.io/instance=qwen-7b" in scale["status"]["selector"]


def test_hub_down_is_temporary_then_recovers(cluster: Any, ns: str, hub: HubServer) -> None:
    hub.fail = "500"
    try:
        apply_manifest(cluster, llmd("phi", ns, "microsoft/Phi-3-mini-4k-instruct"))
        ready = wait_condition(cluster, ns, "phi", "Ready", "Unknown", "HubUnavailable")
        assert ready[2], "the message says what failed"
        assert items(cluster, "jobs", ns) == [] and items(cluster, "deployments", ns) == []
        lic = condition(get_llmd(cluster, ns, "phi"), "LicenseApproved")
        assert lic is not None and lic[0] == "Unknown", "a Hub outage is never a denial"
    finally:
        hub.fail = None
    wait_ready(cluster, ns, "phi", timeout=120)


def test_warn_mode_deploys_with_a_warning(cluster: Any, ns: str) -> None:
    apply_manifest(cluster, policy(f"pol-{ns}", [ns], mode="Warn"))
    apply_manifest(cluster, llmd("mistral", ns, "mistralai/Mistral-Large-Instruct-2407",
                                 hubTokenSecretRef={"name": "hf-token", "key": "HF_TOKEN"}))
    obj = wait_ready(cluster, ns, "mistral", timeout=120)
    lic = condition(obj, "LicenseApproved")
    assert lic is not None and lic[:2] == ("True", "AllowedWithWarnings"), lic
    assert obj["status"]["license"]["decision"] == "AllowedWithWarnings"
    ready = condition(obj, "Ready")
    assert ready is not None and lic[2] and lic[2] in ready[2], "Ready repeats the warning"
    events = items(cluster, "events", ns, "--field-selector", "involvedObject.name=mistral")
    assert any(e["type"] == "Warning" and "AllowedWithWarnings" in e["message"]
               for e in events), [(e["type"], e["reason"]) for e in events]
