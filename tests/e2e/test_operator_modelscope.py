"""e2e: a ModelScope model (``spec.model.source: modelscope``) through ``kubellm run`` on the
sandbox gets the same licence gate, sizing and shared cache as the same model from the Hub.

The operator reads both fixture hubs (``hubfixtures.server`` as HF_ENDPOINT,
``hubfixtures.modelscope_server`` as MODELSCOPE_ENDPOINT, serving the same repos) with the real
huggingface_hub and modelscope clients; kwok completes the download Jobs (their real runs are
tested in tests/unit/test_modelscope.py and, for the Hub, on the real node).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from test_operator_helpers import (
    CRDS,
    OperatorProcess,
    apply_manifest,
    condition,
    get_json,
    items,
    llmd,
    policy,
    service_account_kubeconfig,
    wait_until,
)

from hubfixtures.modelscope_server import ModelScopeServer, serve_modelscope
from hubfixtures.server import HubServer, serve_hub

pytestmark = pytest.mark.e2e

QWEN = "Qwen/Qwen2.5-7B-Instruct"
RESEARCH = "mistralai/Mistral-Large-Instruct-2407"  # mrl: research-only
REPOS = [QWEN, "Qwen/Qwen2.5-7B", RESEARCH]


@pytest.fixture(scope="module")
def hubs() -> Iterator[tuple[HubServer, ModelScopeServer]]:
    with serve_hub(REPOS) as hub, serve_modelscope(REPOS) as ms:
        yield hub, ms


@pytest.fixture(scope="module")
def operator(cluster: Any, hubs: tuple[HubServer, ModelScopeServer],
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    hub, ms = hubs
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS))
    for crd in ("llmdeployments.kubellm.io", "licensepolicies.kubellm.io"):
        # polled: `kubectl wait` right after the apply can fail on a CRD with no conditions yet
        wait_until(lambda crd=crd: (condition(get_json(cluster, "crd", crd), "Established")
                                    or ("",))[0] == "True", 60, what=f"crd/{crd} Established")
    tmp = tmp_path_factory.mktemp("operator-ms")
    kubeconfig = service_account_kubeconfig(cluster, tmp / "sa-kubeconfig")
    proc = OperatorProcess(kubeconfig, hub.endpoint, tmp / "operator.log", "-A",
                           "--resync-seconds", "3", "--cache-grace-period", "4",
                           "--image", "ghcr.io/kubellm/kubellm:e2e",
                           env={"MODELSCOPE_ENDPOINT": ms.endpoint}).start()
    yield proc
    proc.stop()
    print(f"--- operator log tail ({tmp / 'operator.log'}) ---\n{proc.tail(40)}")


@pytest.fixture
def ns(cluster: Any, namespace: str, operator: OperatorProcess) -> Iterator[str]:
    apply_manifest(cluster, policy(f"pol-{namespace}", [namespace]))
    yield namespace
    cluster.kubectl("delete", "licensepolicy", f"pol-{namespace}", "--ignore-not-found")


def doc(name: str, ns: str, repo: str, source: str | None) -> dict[str, Any]:
    model = {"source": source} if source else {}
    return llmd(name, ns, repo, model=model, runtime="vllm", gpu={"type": "NVIDIA-L4"},
                context={"maxModelLen": "auto", "concurrency": 4, "kvCacheDtype": "fp8"})


def wait_condition(cluster: Any, ns: str, name: str, type_: str, status: str,
                   timeout: float = 120) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        obj: dict[str, Any] | None = get_json(cluster, "llmd", name, "-n", ns)
        cond = condition(obj, type_)
        return obj if cond and cond[0] == status else None

    try:
        return wait_until(check, timeout, what=f"{ns}/{name} {type_}={status}")
    except AssertionError:
        obj = get_json(cluster, "llmd", name, "-n", ns)
        raise AssertionError(f"{ns}/{name}: {(obj or {}).get('status')}") from None


def test_same_gate_sizing_and_cache_as_the_hub(cluster: Any, ns: str,
                                               hubs: tuple[HubServer, ModelScopeServer]) -> None:
    _, ms = hubs
    apply_manifest(cluster, [doc("hf", ns, QWEN, None), doc("ms", ns, QWEN, "modelscope"),
                             doc("ms-2", ns, QWEN, "modelscope")])
    hf, one, two = (wait_condition(cluster, ns, n, "Ready", "True") for n in ("hf", "ms", "ms-2"))
    # no revision in the stored object (the CRD has no default: it depends on the source)
    assert "revision" not in one["spec"]["model"]
    for key in ("gpuType", "gpusPerReplica", "tensorParallelSize", "maxModelLen", "concurrency",
                "quantization", "weightsGiB", "kvCacheGiB"):
        assert one["status"]["sizing"].get(key) == hf["status"]["sizing"].get(key), key
    for key in ("id", "class", "decision", "allowed", "obligations"):
        assert one["status"]["license"].get(key) == hf["status"]["license"].get(key), key
    # one cache for both ModelScope deployments, another one for the Hub's repo of that name
    assert one["status"]["cache"] == two["status"]["cache"]
    assert one["status"]["cache"]["key"] != hf["status"]["cache"]["key"]
    assert one["status"]["cache"]["size"] == hf["status"]["cache"]["size"]
    assert len(items(cluster, "pvc", ns)) == 2 and len(items(cluster, "jobs", ns)) == 2
    job = next(j for j in items(cluster, "jobs", ns)
               if j["metadata"]["name"] == one["status"]["cache"]["jobName"])
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][-2:] == ["--source", "modelscope"]
    assert container["args"][container["args"].index("--revision") + 1] == "master"
    assert {"name": "MODELSCOPE_ENDPOINT", "value": ms.endpoint} in container["env"]
    dep = get_json(cluster, "deployment", "ms", "-n", ns)
    model_arg = dep["spec"]["template"]["spec"]["containers"][0]["args"][0]
    assert model_arg == f"/models/models/{QWEN.replace('/', '--')}/snapshots/master"
    assert any(p == "/openapi/v1/models/" + QWEN for _, p, _ in ms.requests)


def test_research_licence_is_denied_as_on_the_hub(cluster: Any, ns: str) -> None:
    apply_manifest(cluster, [doc("hf", ns, RESEARCH, None), doc("ms", ns, RESEARCH, "modelscope")])
    hf = wait_condition(cluster, ns, "hf", "LicenseApproved", "False")
    ms = wait_condition(cluster, ns, "ms", "LicenseApproved", "False")
    assert condition(ms, "LicenseApproved")[1] == condition(hf, "LicenseApproved")[1] \
        == "LicenseDenied"
    for key in ("class", "decision", "allowed"):
        assert ms["status"]["license"].get(key) == hf["status"]["license"].get(key), key
    # the Hub says license: other + license_name: mrl; ModelScope names the licence, normalised
    # to the same catalogue entry
    assert (hf["status"]["license"]["id"], hf["status"]["license"]["name"]) == ("other", "mrl")
    assert ms["status"]["license"]["id"] == "mrl"
    assert items(cluster, "pvc", ns) == [] and items(cluster, "jobs", ns) == []
    assert items(cluster, "deployments", ns) == []
