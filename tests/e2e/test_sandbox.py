"""e2e: the sandbox is a real cluster. The real scheduler places GPU pods by node labels and
``nvidia.com/gpu`` capacity, the controller-manager runs Deployments, Jobs, the PV binder and
the garbage collector, RBAC is enforced, and kwok's stages make pods Ready, complete or fail.

With USE_EXISTING_CLUSTER=true the RBAC and garbage-collection tests run on any cluster; the
ones that need simulated pods (kwok nodes, as in another ``kubellm sandbox``) say so and skip.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from kubellm.sandbox.harness import Cluster, use_existing_cluster

pytestmark = pytest.mark.e2e

IMAGE = "registry.invalid/kubellm/no-image:0"  # kwok runs no container, nothing is pulled
FAIL = "kubellm.io/sandbox-fail"


def apply(cluster: Cluster, namespace: str, *objects: dict[str, Any]) -> None:
    body = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)})
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=body)


def get(cluster: Cluster, namespace: str, *what: str) -> dict[str, Any]:
    out = cluster.kubectl("get", "-n", namespace, *what, "-o", "json").stdout
    result: dict[str, Any] = json.loads(out)
    return result


def eventually(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.25)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")


def container(gpus: int = 0) -> dict[str, Any]:
    resources: dict[str, Any] = {"requests": {"cpu": "100m", "memory": "64Mi"}}
    if gpus:
        resources["limits"] = {"nvidia.com/gpu": str(gpus)}
    return {"name": "main", "image": IMAGE, "resources": resources}


def deployment(name: str, gpus: int, product: str | None = None) -> dict[str, Any]:
    pod_spec: dict[str, Any] = {"containers": [container(gpus)]}
    if product:
        pod_spec["nodeSelector"] = {"nvidia.com/gpu.product": product}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
        },
    }


def job(name: str, annotations: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": annotations or {}},
                "spec": {"restartPolicy": "Never", "containers": [container()]},
            },
        },
    }


@pytest.fixture(scope="module")
def simulated(cluster: Cluster) -> bool:
    """True when kwok simulates the nodes (pods need no image and no real GPU)."""
    nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    return any(
        (n["metadata"].get("annotations") or {}).get("kwok.x-k8s.io/node") == "fake" for n in nodes
    )


@pytest.fixture
def needs_simulation(simulated: bool) -> None:
    if not simulated:
        pytest.skip("needs kwok-simulated nodes (a kubellm sandbox); this cluster has none")


def gpu_products(cluster: Cluster) -> dict[str, int]:
    """GPU product label -> the most allocatable nvidia.com/gpu on one node of that product."""
    nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    found: dict[str, int] = {}
    for node in nodes:
        product = node["metadata"]["labels"].get("nvidia.com/gpu.product")
        count = int(node["status"].get("allocatable", {}).get("nvidia.com/gpu", "0"))
        if product and count:
            found[product] = max(found.get(product, 0), count)
    return found


def pods_of(cluster: Cluster, namespace: str, selector: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = get(cluster, namespace, "pods", "-l", selector)["items"]
    return items


def condition(obj: dict[str, Any], kind: str) -> dict[str, Any] | None:
    for cond in obj.get("status", {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


@pytest.mark.skipif(use_existing_cluster(), reason="checks the sandbox's own node pools")
def test_gpu_nodes_carry_feature_discovery_labels_and_capacity(cluster: Cluster) -> None:
    # The kwok pools only: a real worker node (--real-node) is checked in test_real_node.py.
    selector = "kubellm.io/real-node!=true"
    nodes = json.loads(cluster.kubectl("get", "nodes", "-l", selector, "-o", "json").stdout)
    nodes = nodes["items"]
    by_product: dict[str, list[dict[str, Any]]] = {}
    for node in nodes:
        product = node["metadata"]["labels"].get("nvidia.com/gpu.product", "none")
        by_product.setdefault(product, []).append(node)
        ready = condition(node, "Ready") or {}
        assert ready.get("status") == "True", node["metadata"]["name"]
    assert {k: len(v) for k, v in by_product.items()} == {
        "NVIDIA-H100-80GB-HBM3": 2,
        "NVIDIA-A100-SXM4-80GB": 2,
        "NVIDIA-L4": 4,
        "none": 1,
    }
    h100 = by_product["NVIDIA-H100-80GB-HBM3"][0]
    assert h100["status"]["allocatable"]["nvidia.com/gpu"] == "8"
    labels = h100["metadata"]["labels"]
    assert labels["nvidia.com/gpu.count"] == "8"
    assert labels["nvidia.com/gpu.present"] == "true"
    assert int(labels["nvidia.com/gpu.memory"]) > 80_000
    assert "nvidia.com/gpu" not in by_product["none"][0]["status"]["allocatable"]


@pytest.mark.usefixtures("needs_simulation")
def test_gpu_deployment_lands_on_matching_node_and_too_big_one_stays_pending(
    cluster: Cluster, namespace: str
) -> None:
    products = gpu_products(cluster)
    fitting = sorted(p for p, n in products.items() if n >= 2)
    if not fitting:
        pytest.skip(f"no node with >= 2 allocatable GPUs: {products}")
    # The sandbox has A100 (4 per node) and H100 (8): ask for 2 x A100, more than any node has.
    product = "NVIDIA-A100-SXM4-80GB" if "NVIDIA-A100-SXM4-80GB" in fitting else fitting[0]
    too_many = max(products.values()) + 1
    apply(
        cluster,
        namespace,
        deployment("fits", 2, product),
        deployment("too-big", too_many),
    )
    cluster.kubectl(
        "wait", "-n", namespace, "--for=condition=Available", "deployment/fits", "--timeout=90s"
    )
    [pod] = pods_of(cluster, namespace, "app=fits")
    node = get(cluster, "default", "node", pod["spec"]["nodeName"])
    assert node["metadata"]["labels"]["nvidia.com/gpu.product"] == product
    assert (condition(pod, "Ready") or {}).get("status") == "True"

    def unschedulable() -> dict[str, Any] | None:
        pods = pods_of(cluster, namespace, "app=too-big")
        cond = condition(pods[0], "PodScheduled") if pods else None
        return cond if cond and cond.get("reason") == "Unschedulable" else None

    cond = eventually(unschedulable, f"the {too_many}-GPU pod to be Unschedulable")
    assert cond["status"] == "False"
    assert "nvidia.com/gpu" in cond["message"]
    [pending] = pods_of(cluster, namespace, "app=too-big")
    assert pending["status"]["phase"] == "Pending"
    assert not pending["spec"].get("nodeName")


@pytest.mark.usefixtures("needs_simulation")
def test_pvc_binds_and_pod_mounting_it_becomes_ready(cluster: Cluster, namespace: str) -> None:
    pvc = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "model-cache"},
        "spec": {"accessModes": ["ReadWriteMany"], "resources": {"requests": {"storage": "2Ti"}}},
    }
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "reader"},
        "spec": {
            "containers": [
                {**container(), "volumeMounts": [{"name": "cache", "mountPath": "/models"}]}
            ],
            "volumes": [{"name": "cache", "persistentVolumeClaim": {"claimName": "model-cache"}}],
        },
    }
    apply(cluster, namespace, pvc, pod)
    cluster.kubectl(
        "wait", "-n", namespace, "--for=jsonpath={.status.phase}=Bound", "pvc/model-cache",
        "--timeout=60s",
    )
    bound = get(cluster, namespace, "pvc", "model-cache")
    assert bound["status"]["capacity"]["storage"] == "2Ti"
    volume = get(cluster, "default", "pv", bound["spec"]["volumeName"])
    assert volume["status"]["phase"] == "Bound"
    cluster.kubectl("wait", "-n", namespace, "--for=condition=Ready", "pod/reader", "--timeout=60s")


@pytest.mark.usefixtures("needs_simulation")
def test_job_completes_and_annotated_job_fails(cluster: Cluster, namespace: str) -> None:
    apply(cluster, namespace, job("ok"), job("broken", {FAIL: "true"}))
    cluster.kubectl("wait", "-n", namespace, "--for=condition=Complete", "job/ok", "--timeout=60s")
    cluster.kubectl(
        "wait", "-n", namespace, "--for=condition=Failed", "job/broken", "--timeout=60s"
    )
    [failed] = pods_of(cluster, namespace, "batch.kubernetes.io/job-name=broken")
    assert failed["status"]["phase"] == "Failed"
    terminated = failed["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] == 1
    [done] = pods_of(cluster, namespace, "batch.kubernetes.io/job-name=ok")
    assert done["status"]["phase"] == "Succeeded"


def test_deleting_an_owner_garbage_collects_its_dependents(
    cluster: Cluster, namespace: str, simulated: bool
) -> None:
    core = client.CoreV1Api(cluster.api_client)
    owner = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="owner"))
    )
    assert owner.metadata is not None
    ref = client.V1OwnerReference(
        api_version="v1", kind="ConfigMap", name="owner", uid=owner.metadata.uid
    )
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="dependent", owner_references=[ref])),
    )
    web = deployment("web", 0)
    web["spec"]["replicas"] = 1 if simulated else 0  # real pods would need a pullable image
    apply(cluster, namespace, web)
    cluster.kubectl(
        "wait", "-n", namespace, "--for=condition=Available", "deployment/web", "--timeout=60s"
    )
    eventually(lambda: get(cluster, namespace, "replicasets")["items"], "the ReplicaSet")
    assert len(pods_of(cluster, namespace, "app=web")) == (1 if simulated else 0)

    core.delete_namespaced_config_map("owner", namespace)
    cluster.kubectl("delete", "-n", namespace, "deployment/web", "--wait=false")

    def dependent_gone() -> bool:
        try:
            core.read_namespaced_config_map("dependent", namespace)
        except ApiException as exc:
            return bool(exc.status == 404)
        return False

    eventually(dependent_gone, "the dependent ConfigMap to be garbage-collected")
    eventually(
        lambda: not get(cluster, namespace, "replicasets")["items"]
        and not pods_of(cluster, namespace, "app=web"),
        "the Deployment's ReplicaSet and pods to be garbage-collected",
    )


def test_rbac_refuses_a_service_account_without_rights(cluster: Cluster, namespace: str) -> None:
    core = client.CoreV1Api(cluster.api_client)
    core.create_namespaced_service_account(
        namespace, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="nobody"))
    )
    issued = core.create_namespaced_service_account_token(
        "nobody", namespace, client.AuthenticationV1TokenRequest(spec={"audiences": []})
    )
    assert issued.status is not None
    token = issued.status.token

    admin = cluster.api_client.configuration
    config = client.Configuration()
    config.host = admin.host
    config.ssl_ca_cert = admin.ssl_ca_cert
    config.verify_ssl = admin.verify_ssl
    config.api_key = {"authorization": f"Bearer {token}"}
    with client.ApiClient(config) as as_nobody:
        with pytest.raises(ApiException) as refused:
            client.CoreV1Api(as_nobody).list_namespaced_secret(namespace)
        assert refused.value.status == 403
        assert f"system:serviceaccount:{namespace}:nobody" in str(refused.value.body)
        # The same token is accepted (authenticated) for what everyone may do.
        client.VersionApi(as_nobody).get_code()
