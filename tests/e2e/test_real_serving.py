"""e2e on real pods: kubellm's own download Job and a CPU vLLM server on the sandbox's real node.

The operator (``kubellm run``, out of cluster as in the other e2e tests, with
``--runtime-image vllm=<the CPU vLLM image built here>``) reads the facts of a tiny random-weight
Llama (built offline, :mod:`hubfixtures.realmodels`) from the fixture Hub listening on the
bridge address, which pods reach; the operator's ``HF_ENDPOINT`` points there, as a mirror
user's would, and the download Job inherits it. Then, for real: the Job runs ``kubellm
download`` in the kubellm image (built from operator/Dockerfile) into a local-path PV, the vLLM
pod starts with the args kubellm rendered (offline, the cache read-only, non-root), its
startup/readiness/liveness probes pass, the LLMDeployment turns ``Ready=True`` and an OpenAI
chat completion through the Service returns tokens. GPUs stay simulated: the node advertises
``nvidia.com/gpu`` (NVIDIA-L4), vLLM runs on CPU (its KV cache capped with
``VLLM_CPU_KVCACHE_SPACE``, an allowed env name, and a small ``maxModelLen``).

Placement: the test namespace carries the real node's node-selector and toleration as
namespace defaults (PodNodeSelector / PodTolerationRestriction, enabled by the sandbox with a
real node), so the download Job's pod, which kubellm renders without placement, runs there too.
Timings (apply -> first token) are printed (``-s`` or the report's captured output).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from real_support import READY_TIMEOUT, chat, tiny, wait_ready
from test_operator_helpers import (
    CRDS,
    OperatorProcess,
    apply_manifest,
    condition,
    get_json,
    items,
    policy,
    service_account_kubeconfig,
    wait_until,
)

from hubfixtures import realmodels
from hubfixtures.server import HubServer, serve_hub
from kubellm.sandbox import engines, imagestore, nodeconfig
from kubellm.sandbox.harness import Cluster

pytestmark = [pytest.mark.e2e, pytest.mark.real]

TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="module")
def vllm_image(cluster: Cluster) -> str:
    ref = imagestore.vllm_ref()
    if ref is None:
        pytest.fail("no CPU vLLM image in the real node's store: kubellm sandbox install "
                    "--engines, then kubellm sandbox install --real-node", pytrace=False)
    return ref


@pytest.fixture(scope="module")
def hub(cluster: Cluster) -> Iterator[HubServer]:
    model_dir = realmodels.build(engines.vllm().python)
    with serve_hub(realmodels.repos(model_dir), host=nodeconfig.NODE_IP) as server:
        yield server


@pytest.fixture(scope="module")
def operator(cluster: Cluster, hub: HubServer, vllm_image: str,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS))
    for crd in ("llmdeployments.kubellm.io", "licensepolicies.kubellm.io"):
        cluster.kubectl("wait", "--for", "condition=Established", f"crd/{crd}", "--timeout=60s")
    tmp = tmp_path_factory.mktemp("real-operator")
    kubeconfig = service_account_kubeconfig(cluster, tmp / "sa-kubeconfig")
    proc = OperatorProcess(kubeconfig, hub.endpoint, tmp / "operator.log", "-A",
                           "--resync-seconds", "3", "--cache-grace-period", "5",
                           "--runtime-image", f"vllm={vllm_image}").start()
    yield proc
    proc.stop()
    print(f"--- operator log tail ({tmp / 'operator.log'}) ---\n{proc.tail(40)}")
    if TIMINGS:
        print("apply -> first token:", json.dumps(TIMINGS))


@pytest.fixture
def ns(cluster: Cluster, namespace: str, operator: OperatorProcess) -> Iterator[str]:
    """The test namespace, pinned to the real node, with a commercial policy covering it."""
    annotations = [f"{k}={v}" for k, v in nodeconfig.real_node_namespace_annotations().items()]
    cluster.kubectl("annotate", "namespace", namespace, "--overwrite", *annotations)
    apply_manifest(cluster, [policy(f"pol-{namespace}", [namespace])])
    yield namespace
    cluster.kubectl("delete", "llmd", "--all", "-n", namespace, "--wait=false", check=False)
    cluster.kubectl("delete", "licensepolicy", f"pol-{namespace}", "--ignore-not-found")


def serve_and_chat(cluster: Cluster, ns: str, name: str, repo: str) -> dict[str, Any]:
    started = time.monotonic()
    apply_manifest(cluster, tiny(name, ns, repo))
    wait_ready(cluster, ns, name)
    answer = wait_until(lambda: chat(cluster, ns, name, repo), 120, interval=2,
                        what="a chat completion through the Service")
    TIMINGS[f"{name} ({'warm' if TIMINGS else 'cold'})"] = round(time.monotonic() - started, 1)
    assert answer["usage"]["completion_tokens"] > 0, answer
    assert answer["choices"][0]["message"]["content"], answer
    return answer


def test_a_tiny_model_downloads_and_serves_on_real_pods(
    cluster: Cluster, ns: str, hub: HubServer, real_node: str, vllm_image: str
) -> None:
    serve_and_chat(cluster, ns, "tiny", realmodels.LLAMA)

    (job,) = items(cluster, "jobs", ns, "-l", "app.kubernetes.io/component=model-download")
    assert job["status"].get("succeeded") == 1
    (dl_pod,) = items(cluster, "pods", ns, "-l", "app.kubernetes.io/component=model-download")
    assert dl_pod["spec"]["nodeName"] == real_node
    assert dl_pod["spec"]["containers"][0]["image"].startswith("ghcr.io/kubellm/kubellm:")
    log = cluster.kubectl("logs", "-n", ns, dl_pod["metadata"]["name"]).stdout
    fetched = [p for (m, p, _) in hub.requests if m == "GET" and "/resolve/" in p]
    assert any(p.endswith("/model.safetensors") for p in fetched), (fetched, log)

    (pod,) = items(cluster, "pods", ns, "-l", "app.kubernetes.io/component=server")
    assert pod["spec"]["nodeName"] == real_node
    container = pod["spec"]["containers"][0]
    assert container["image"] == vllm_image
    assert container["command"] == ["vllm", "serve"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["HF_HUB_OFFLINE"] == "1"
    assert all(m["readOnly"] for m in container["volumeMounts"] if m["name"] == "model-cache")
    assert {"startupProbe", "readinessProbe", "livenessProbe"} <= set(container)
    name = pod["metadata"]["name"]
    uid = cluster.kubectl("exec", "-n", ns, name, "--", "id", "-u").stdout.strip()
    assert uid != "0"
    write = cluster.kubectl("exec", "-n", ns, name, "--", "touch", "/models/x", check=False)
    assert write.returncode != 0  # the cache is mounted read-only
    metrics = cluster.kubectl("exec", "-n", ns, name, "--", "python3", "-c",
                              "import urllib.request as u; print(u.urlopen("
                              "'http://127.0.0.1:8000/metrics').read().decode()[:20000])").stdout
    assert "vllm:" in metrics


def test_the_mistral_layout_serves_from_its_hf_shards(cluster: Cluster, ns: str,
                                                       hub: HubServer) -> None:
    before = len(hub.requests)
    serve_and_chat(cluster, ns, "tiny-mistral", realmodels.MISTRAL)
    fetched = [p for (m, p, _) in hub.requests[before:] if m == "GET" and "/resolve/" in p]
    assert any("model-00001-of-00002.safetensors" in p for p in fetched), fetched
    assert not any(p.endswith("/consolidated.safetensors") for p in fetched), fetched


def test_delete_removes_the_server_and_collects_the_cache_after_its_grace_period(
    cluster: Cluster, ns: str
) -> None:
    apply_manifest(cluster, tiny("gc", ns, realmodels.LLAMA))
    wait_until(lambda: items(cluster, "pvc", ns, "-l", "app.kubernetes.io/component=model-cache"),
               120, what="the cache PVC")
    wait_ready(cluster, ns, "gc")
    cluster.kubectl("delete", "llmd", "gc", "-n", ns, "--timeout=120s")
    wait_until(lambda: not items(cluster, "deployments", ns), 120, what="the Deployment gone")
    wait_until(lambda: not items(cluster, "pvc", ns) and not items(cluster, "jobs", ns), 180,
               what="the cache (PVC + Job) collected after its grace period")
    wait_until(lambda: not items(cluster, "pods", ns), 180, what="every pod gone")


def _resolve_gets(hub: HubServer, repo: str) -> dict[str, int]:
    """How often each file of ``repo`` was fetched (GET .../resolve/<rev>/<path>)."""
    counts: dict[str, int] = {}
    for method, path, _ in hub.requests:
        if method == "GET" and path.startswith(f"/{repo}/resolve/"):
            name = path.split("/resolve/", 1)[1].split("/", 1)[1].split("?")[0]
            counts[name] = counts.get(name, 0) + 1
    return counts


def test_two_deployments_of_one_model_share_one_download(cluster: Cluster, ns: str,
                                                         hub: HubServer) -> None:
    before = _resolve_gets(hub, realmodels.LLAMA).get("model.safetensors", 0)
    apply_manifest(cluster, [tiny("one", ns, realmodels.LLAMA), tiny("two", ns, realmodels.LLAMA)])
    wait_ready(cluster, ns, "one")
    wait_ready(cluster, ns, "two")
    (pvc,) = items(cluster, "pvc", ns)
    assert len(items(cluster, "jobs", ns)) == 1
    claims = {v["persistentVolumeClaim"]["claimName"]
              for p in items(cluster, "pods", ns, "-l", "app.kubernetes.io/component=server")
              for v in p["spec"]["volumes"] if "persistentVolumeClaim" in v}
    assert claims == {pvc["metadata"]["name"]}
    assert _resolve_gets(hub, realmodels.LLAMA)["model.safetensors"] == before + 1
    for name in ("one", "two"):
        # Ready follows the Deployment; kube-proxy programs the ClusterIP a moment later.
        answer = wait_until(lambda n=name: chat(cluster, ns, n, realmodels.LLAMA), 120,
                            interval=2, what=f"a chat completion through {name}'s Service")
        assert answer["usage"]["completion_tokens"] > 0, answer


def _volume_dir(cluster: Cluster, ns: str) -> Path | None:
    """The host directory of the namespace's cache PV (local-path: on this machine)."""
    pvcs = items(cluster, "pvc", ns)
    name = pvcs[0]["spec"].get("volumeName") if pvcs else None
    if not name:
        return None
    pv = get_json(cluster, "pv", name)
    source = pv["spec"].get("hostPath") or pv["spec"].get("local") or {}
    return Path(source["path"]) if source.get("path") else None


def test_a_killed_download_pod_resumes_without_refetching_finished_files(
    cluster: Cluster, ns: str, hub: HubServer
) -> None:
    # The module's Hub also served the Mistral repo to an earlier test: count from here on.
    before = _resolve_gets(hub, realmodels.MISTRAL)
    hub.delay = 2.0  # every Hub answer takes 2 s: the download is still running when killed
    try:
        apply_manifest(cluster, tiny("resume", ns, realmodels.MISTRAL))

        def finished() -> set[str]:
            root = _volume_dir(cluster, ns)
            snaps = list(root.glob("models--*/snapshots/*")) if root else []
            return {str(p.relative_to(snaps[0])) for p in snaps[0].rglob("*")
                    if p.is_symlink() and p.resolve().is_file()} if snaps else set()

        done = wait_until(finished, 180, interval=0.2, what="a first finished file")
        (dl,) = items(cluster, "pods", ns, "-l", "app.kubernetes.io/component=model-download")
        cluster.kubectl("delete", "pod", "-n", ns, dl["metadata"]["name"], "--grace-period=0",
                        "--force")
        done = finished() | done
        assert dl["status"]["phase"] == "Running", dl["status"]  # killed mid-download
        job = items(cluster, "jobs", ns)[0]
        assert not job["status"].get("succeeded"), "the download finished before the kill"
    finally:
        hub.delay = 0.0

    def cache_ready() -> bool:
        cond = condition(get_json(cluster, "llmd", "resume", "-n", ns), "CacheReady")
        return bool(cond and cond[0] == "True")

    wait_until(cache_ready, 300, interval=1, what="CacheReady after the resumed download")
    (job,) = items(cluster, "jobs", ns)
    assert job["status"].get("succeeded") == 1
    after = _resolve_gets(hub, realmodels.MISTRAL)
    gets = {name: after[name] - before.get(name, 0) for name in after}
    assert all(gets.get(name, 0) == 1 for name in done), (done, gets)
    pods = items(cluster, "pods", ns, "-l", "app.kubernetes.io/component=model-download")
    assert dl["metadata"]["name"] not in {p["metadata"]["name"] for p in pods}


class _Load:
    """Chat completions one after another through the Service until stopped, each on a new
    connection (as a client behind kube-proxy sees a rollover); every failure is kept."""

    def __init__(self, cluster: Cluster, ns: str, service: str, model: str) -> None:
        self.args = (cluster, ns, service, model)
        self.ok: list[float] = []
        self.failed: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                answer = chat(*self.args)
                assert answer["usage"]["completion_tokens"] > 0, answer
                self.ok.append(time.monotonic())
            except Exception as exc:  # every failure counts, whatever it is
                self.failed.append((time.monotonic(), repr(exc)))

    def __enter__(self) -> _Load:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=90)


def _server_pods(cluster: Cluster, ns: str) -> list[dict[str, Any]]:
    return items(cluster, "pods", ns, "-l", "app.kubernetes.io/component=server")


# Checks for the tiny random-weight model: it cannot produce this sentence (a chat check) but any
# answer matches the second (a plain completion), so one run proves both branches for real.
EVAL_CHECKS = [
    {"name": "knows-paris", "messages": [{"role": "user", "content": "Capital of France?"}],
     "expect": {"exact": "The capital of France is Paris."}, "maxTokens": 8},
    {"name": "answers", "prompt": "Once upon a time", "expect": {"regex": "[\\s\\S]*"},
     "maxTokens": 4},
]


def _evaluated(cluster: Cluster, ns: str, name: str, generation: int) -> dict[str, Any]:
    """status once Evaluated is known for ``generation`` (the Job ran and was read)."""
    def done() -> dict[str, Any] | None:
        status = (get_json(cluster, "llmd", name, "-n", ns) or {}).get("status") or {}
        evaluated = condition({"status": status}, "Evaluated")
        evaluation = status.get("evaluation") or {}
        if evaluated and evaluated[0] != "Unknown" and evaluation.get("generation") == generation:
            return status
        return None

    try:
        return wait_until(done, READY_TIMEOUT, interval=2, what=f"{name} evaluated")
    except AssertionError:
        jobs = cluster.kubectl("get", "jobs,pods", "-n", ns, "-o", "wide", check=False).stdout
        logs = cluster.kubectl("logs", "-n", ns, "-l", "app.kubernetes.io/component=evaluation",
                               "--tail=30", check=False).stdout
        raise AssertionError(f"{name} not evaluated:\n{jobs}\n{logs}") from None


def test_the_served_model_is_evaluated_for_real_and_gates_ready(
    cluster: Cluster, ns: str, tmp_path: Path
) -> None:
    manifest = tiny("judge", ns, realmodels.LLAMA,
                    evaluation={"checks": EVAL_CHECKS, "gate": True, "minPassRate": 1.0})
    started = time.monotonic()
    apply_manifest(cluster, manifest)
    status = _evaluated(cluster, ns, "judge", 1)
    TIMINGS["judge: apply -> evaluated"] = round(time.monotonic() - started, 1)
    evaluation = status["evaluation"]
    assert condition({"status": status}, "Evaluated")[:2] == ("False", "BelowThreshold"), status
    # gate: true: serving (Available) but not Ready while below the threshold
    assert condition({"status": status}, "Available")[0] == "True"
    assert condition({"status": status}, "Ready")[:2] == ("False", "BelowThreshold")
    by_name = {c["name"]: c for c in evaluation["checks"]}
    assert by_name["knows-paris"]["passed"] is False and by_name["answers"]["passed"] is True
    assert by_name["knows-paris"].get("failure"), evaluation  # what the model answered
    assert evaluation["passRate"] == 0.5 and evaluation["revision"] == status["resolvedRevision"]
    (job,) = items(cluster, "jobs", ns, "-l", "app.kubernetes.io/component=evaluation")
    assert job["metadata"]["name"] == evaluation["jobName"]
    assert job["status"].get("failed") == 1  # exit 1 below the threshold: FailJob, no retry
    TIMINGS["judge: evaluation run (2 checks)"] = evaluation["durationSeconds"]

    # the same evaluation from a laptop: kubellm eval against the same Service
    svc = get_json(cluster, "service", "judge", "-n", ns)
    endpoint = f"http://{svc['spec']['clusterIP']}:{svc['spec']['ports'][0]['port']}/v1"
    path = tmp_path / "judge.yaml"
    path.write_text(json.dumps(manifest))
    cli = subprocess.run([sys.executable, "-m", "kubellm", "eval", "-f", str(path),
                          "--endpoint", endpoint, "-o", "json"],
                         capture_output=True, text=True, timeout=300, check=False)
    assert cli.returncode == 1, cli.stderr
    report = json.loads(cli.stdout)
    assert {c["name"]: c["passed"] for c in report["checks"]} == {
        "knows-paris": False, "answers": True}

    # a lower threshold is a new evaluation spec: a new Job, the old one deleted, Ready True
    cluster.kubectl("patch", "llmd", "judge", "-n", ns, "--type", "merge", "-p",
                    json.dumps({"spec": {"evaluation": {"minPassRate": 0.5}}}))
    status = _evaluated(cluster, ns, "judge", 2)
    assert condition({"status": status}, "Evaluated")[:2] == ("True", "Passed"), status
    wait_ready(cluster, ns, "judge", timeout=120)
    (second,) = items(cluster, "jobs", ns, "-l", "app.kubernetes.io/component=evaluation")
    assert second["metadata"]["name"] != job["metadata"]["name"]
    events = cluster.kubectl("get", "events", "-n", ns, "--field-selector",
                             "involvedObject.name=judge", "-o", "json").stdout
    assert "BelowThreshold" in events


def test_a_revision_bump_downloads_once_and_rolls_over_without_a_failed_request(
    cluster: Cluster, ns: str, hub: HubServer
) -> None:
    first = hub.models[realmodels.LLAMA]
    apply_manifest(cluster, tiny("roll", ns, realmodels.LLAMA, model={"revision": first.sha},
                                 evaluation={"checks": EVAL_CHECKS[1:]}))
    wait_ready(cluster, ns, "roll")
    assert _evaluated(cluster, ns, "roll", 1)["evaluation"]["revision"] == first.sha
    wait_until(lambda: chat(cluster, ns, "roll", realmodels.LLAMA), 120, interval=2,
               what="a chat completion before the bump")
    (old_pod,) = _server_pods(cluster, ns)
    second = realmodels.next_commit(realmodels.build(engines.vllm().python))
    hub.push(second)
    with _Load(cluster, ns, "roll", realmodels.LLAMA) as load:
        wait_until(lambda: len(load.ok) >= 3, 60, what="requests before the bump")
        bumped = time.monotonic()
        cluster.kubectl("patch", "llmd", "roll", "-n", ns, "--type", "merge", "-p",
                        json.dumps({"spec": {"model": {"revision": second.sha}}}))

        def rolled_over() -> bool:
            pods = _server_pods(cluster, ns)
            revisions = {p["metadata"]["annotations"].get("kubellm.io/revision") for p in pods}
            ready = all(any(c["type"] == "Ready" and c["status"] == "True"
                            for c in p["status"].get("conditions", [])) for p in pods)
            return revisions == {second.sha} and ready and len(pods) == 1

        wait_until(rolled_over, READY_TIMEOUT, interval=2, what="the rollover to the new revision")
        switched = time.monotonic()
        wait_until(lambda: sum(t > switched for t in load.ok) >= 3, 120,
                   what="requests after the rollover")
    assert not load.failed, f"{len(load.failed)} failed requests: {load.failed[:5]}"
    assert sum(bumped < t < switched for t in load.ok) > 0, "no request during the rollover"
    assert old_pod["metadata"]["name"] not in {p["metadata"]["name"]
                                               for p in _server_pods(cluster, ns)}
    # One download of the new revision: each of its files fetched once, by one succeeded Job.
    fetched: dict[str, int] = {}
    for method, path, _ in hub.requests:
        if method == "GET" and path.startswith(f"/{realmodels.LLAMA}/resolve/{second.sha}/"):
            name = path.split(f"/{second.sha}/", 1)[1].split("?")[0]
            fetched[name] = fetched.get(name, 0) + 1
    assert fetched.get("model.safetensors") == 1 and set(fetched.values()) == {1}, fetched
    jobs = items(cluster, "jobs", ns, "-l", "app.kubernetes.io/component=model-download")
    assert any(j["status"].get("succeeded") == 1 and second.sha[:12] in json.dumps(j["spec"])
               for j in jobs), [j["metadata"]["name"] for j in jobs]
    status = get_json(cluster, "llmd", "roll", "-n", ns)["status"]
    assert status["resolvedRevision"] == second.sha, status
    # the bump re-evaluates, once the new revision serves alone
    evaluation = _evaluated(cluster, ns, "roll", 2)["evaluation"]
    assert evaluation["revision"] == second.sha and evaluation["passed"] is True, evaluation
    TIMINGS["rollover (bump -> new pod serving)"] = round(switched - bumped, 1)
    print(f"rollover: {len(load.ok)} requests, {sum(bumped < t < switched for t in load.ok)} "
          f"during the rollover, {len(load.failed)} failed")
