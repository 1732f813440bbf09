"""Multi-node plans: a replica that needs more GPUs than one node has is rendered as a
LeaderWorkerSet whose pods each request one node's GPUs (never one pod asking for them all)."""

from __future__ import annotations

from typing import Any

from kubellm.api.v1alpha1 import LLMDeployment
from kubellm.facts import ModelFacts
from kubellm.planner import plan_deployment
from kubellm.runtimes.lws import LABEL_WORKER_INDEX
from kubellm.sizing import inventory_from_file

H100_2X8 = inventory_from_file(
    [{"gpuProduct": "NVIDIA-H100-80GB-HBM3", "gpusPerNode": 8, "nodes": 2}], "t"
)


def facts_405b() -> ModelFacts:
    return ModelFacts(
        repo="acme/llama-405b", sha="b" * 40, license="llama3.1",
        weight_bytes=810_000_000_000, parameters=405_000_000_000,
    )  # fmt: skip


def llmd(**spec: Any) -> LLMDeployment:
    body = {
        "model": {"repo": "acme/llama-405b"},
        "quantization": "none",
        "gpu": {"type": "h100"},
        "context": {"maxModelLen": 8192},
        **spec,
    }
    return LLMDeployment.model_validate(
        {"metadata": {"name": "big", "namespace": "ai"}, "spec": body}
    )


def gpu_requests(pod_template: dict[str, Any]) -> list[str]:
    return [c["resources"]["limits"]["nvidia.com/gpu"] for c in pod_template["spec"]["containers"]]


def test_multi_node_plan_is_a_leader_worker_set_of_one_node_pods() -> None:
    plan = plan_deployment(llmd(cache={"enabled": False}), facts_405b(), [], H100_2X8)
    assert plan.deployable, plan.refusal
    assert plan.sizing is not None and plan.sizing.nodes_per_replica == 2
    assert plan.sizing.gpus_per_replica == 16
    assert [o["kind"] for o in plan.serving_objects] == ["LeaderWorkerSet", "Service"]
    lws, service = plan.serving_objects
    assert lws["apiVersion"] == "leaderworkerset.x-k8s.io/v1"
    template = lws["spec"]["leaderWorkerTemplate"]
    assert template["size"] == 2
    assert template["restartPolicy"] == "RecreateGroupOnPodRestart"
    assert gpu_requests(template["leaderTemplate"]) == ["8"]
    assert gpu_requests(template["workerTemplate"]) == ["8"]
    leader_args = template["leaderTemplate"]["spec"]["containers"][0]["args"][0]
    assert "ray start --head" in leader_args
    for flag in (
        "--tensor-parallel-size 8",
        "--pipeline-parallel-size 2",
        "--distributed-executor-backend ray",
    ):
        assert flag in leader_args
    worker_args = template["workerTemplate"]["spec"]["containers"][0]["args"][0]
    assert "--address=$LWS_LEADER_ADDRESS:6379" in worker_args and "--block" in worker_args
    assert service["spec"]["selector"][LABEL_WORKER_INDEX] == "0"
    assert all(o["kind"] != "Deployment" for o in plan.objects)


def test_no_serving_pod_ever_asks_for_the_whole_replica() -> None:
    plan = plan_deployment(llmd(replicas=1), facts_405b(), [], H100_2X8)
    assert plan.deployable, plan.refusal
    for obj in plan.objects:
        spec = obj.get("spec") or {}
        templates = [spec.get("template")]
        lwt = spec.get("leaderWorkerTemplate") or {}
        templates += [lwt.get("leaderTemplate"), lwt.get("workerTemplate")]
        for template in filter(None, templates):
            for request in gpu_requests(template) if obj["kind"] != "Job" else []:
                assert int(request) <= 8


def test_tgi_multi_node_is_refused_naming_the_runtime() -> None:
    plan = plan_deployment(llmd(runtime="tgi"), facts_405b(), [], H100_2X8)
    assert not plan.deployable
    assert plan.objects == () and plan.serving_objects == ()
    assert plan.refusal_reason == "Unsupported"
    assert plan.refusal is not None
    assert "spec.runtime" in plan.refusal and "vLLM can" in plan.refusal
