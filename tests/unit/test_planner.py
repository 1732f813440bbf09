"""kubellm.planner: the one decision path (pure; facts built in the test, no Hub)."""

from __future__ import annotations

from typing import Any

import pytest

from archs import QWEN2_5_7B
from kubellm.api.v1alpha1 import LicensePolicy, LLMDeployment
from kubellm.facts import ModelFacts, WeightFile
from kubellm.planner import plan_deployment
from kubellm.sizing import default_inventory, inventory_from_file


def facts(license: str = "apache-2.0", license_name: str | None = None, **kw: Any) -> ModelFacts:
    base: dict[str, Any] = dict(
        repo="Qwen/Qwen2.5-7B-Instruct",
        sha="a" * 40,
        license=license,
        license_name=license_name,
        architecture=QWEN2_5_7B,
        weight_bytes=15_231_233_024,
        parameters=7_615_616_512,
        weight_files=(
            WeightFile("model-00001-of-00002.safetensors", 8_000_000_000),
            WeightFile("model-00002-of-00002.safetensors", 7_231_233_024),
        ),
    )
    base.update(kw)
    return ModelFacts(**base)


def llmd(**spec: Any) -> LLMDeployment:
    body = {"model": {"repo": "Qwen/Qwen2.5-7B-Instruct"}, **spec}
    return LLMDeployment.model_validate(
        {"metadata": {"name": "qwen", "namespace": "team-a"}, "spec": body}
    )


def policy(**spec: Any) -> LicensePolicy:
    return LicensePolicy.model_validate({"metadata": {"name": "corp"}, "spec": spec})


L4_ONLY = inventory_from_file([{"gpuProduct": "NVIDIA-L4", "gpusPerNode": 1, "nodes": 2}], "t")


def kinds(objs: tuple[dict[str, Any], ...]) -> list[str]:
    return [o["kind"] for o in objs]


def test_allowed_and_fitting_gives_cache_then_serving_objects() -> None:
    plan = plan_deployment(llmd(gpu={"type": "l4"}), facts(), [policy()], L4_ONLY)
    assert plan.deployable and plan.refusal is None
    assert plan.license.policy_name == "corp"
    assert kinds(plan.objects) == ["PersistentVolumeClaim", "Job", "Deployment", "Service"]
    assert all(o["metadata"]["namespace"] == "team-a" for o in plan.objects)
    assert plan.cache_key and plan.sizing is not None and plan.sizing.gpu_type == "NVIDIA-L4"


def test_cache_incomplete_holds_serving_objects_back() -> None:
    plan = plan_deployment(llmd(), facts(), [], L4_ONLY, cache_complete=False)
    assert kinds(plan.objects) == ["PersistentVolumeClaim", "Job"]
    assert kinds(plan.serving_objects) == ["Deployment", "Service"]


def test_hub_endpoint_reaches_the_download_job_only() -> None:
    plan = plan_deployment(llmd(), facts(), [], L4_ONLY, hub_endpoint="http://mirror:8080")
    by_kind = {o["kind"]: o for o in plan.objects}
    job_env = by_kind["Job"]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "HF_ENDPOINT", "value": "http://mirror:8080"} in job_env
    serving_env = by_kind["Deployment"]["spec"]["template"]["spec"]["containers"][0]["env"]
    assert not any(e["name"] == "HF_ENDPOINT" for e in serving_env)  # serves offline from cache


def test_cache_disabled_has_no_cache_objects() -> None:
    plan = plan_deployment(llmd(cache={"enabled": False}), facts(), [], L4_ONLY)
    assert kinds(plan.objects) == ["Deployment", "Service"] and plan.cache_key is None


def test_denied_creates_nothing_and_says_why() -> None:
    research = facts(license="other", license_name="mrl")
    plan = plan_deployment(llmd(), research, [policy(commercialUse=True)], L4_ONLY)
    assert not plan.deployable
    assert plan.refusal_reason == "LicenseDenied"
    assert "commercial" in (plan.refusal or "")
    assert plan.objects == () and plan.serving_objects == () and plan.cache_objects == ()
    assert plan.sizing is not None  # sizing is still explained


def test_warn_mode_deploys_with_warnings() -> None:
    research = facts(license="other", license_name="mrl")
    plan = plan_deployment(llmd(), research, [policy(mode="Warn")], L4_ONLY)
    assert plan.deployable
    assert plan.license.decision == "AllowedWithWarnings"
    assert plan.warnings


def test_does_not_fit_creates_nothing() -> None:
    plan = plan_deployment(
        llmd(context={"maxModelLen": 32768, "concurrency": 64}), facts(), [], L4_ONLY
    )
    assert plan.refusal_reason == "DoesNotFit"
    assert "GiB" in (plan.refusal or "")
    assert plan.objects == ()


@pytest.mark.parametrize(("runtime", "needle"), [("tgi", "llama.cpp backend"),
                                                  ("vllm", "vllm-gguf-plugin"),
                                                  ("auto", "vllm-gguf-plugin")])
def test_gguf_is_refused_by_every_runtime(runtime: str, needle: str) -> None:
    """The pinned vLLM (0.32) has no in-tree GGUF and TGI's CUDA image none at all: refused with
    the reason, nothing rendered (it used to render a vLLM pod that crash-looped)."""
    gguf = facts(
        weight_files=(WeightFile("qwen-q4_k_m.gguf", 4_700_000_000),), weight_bytes=4_700_000_000
    )
    plan = plan_deployment(
        llmd(runtime=runtime,
             model={"repo": "Qwen/Qwen2.5-7B-Instruct", "file": "qwen-q4_k_m.gguf"}),
        gguf,
        [],
        default_inventory(),
    )
    assert not plan.deployable
    assert plan.refusal_reason == "Unsupported"
    assert needle in (plan.refusal or "")
    assert plan.objects == ()


def test_auto_serves_bitsandbytes_with_the_runtime_that_has_it() -> None:
    """bitsandbytes is out of tree in the pinned vLLM: auto takes TGI (bitsandbytes-nf4); an
    explicit vllm is refused and told to use tgi."""
    auto = plan_deployment(llmd(quantization="bitsandbytes"), facts(), [], default_inventory())
    assert auto.deployable and auto.runtime == "tgi"
    explicit = plan_deployment(llmd(runtime="vllm", quantization="bitsandbytes"), facts(), [],
                               default_inventory())
    assert explicit.refusal_reason == "Unsupported"
    assert "vllm-bnb-plugin" in (explicit.refusal or "")
    assert "set spec.runtime to tgi" in (explicit.refusal or "")


def test_invalid_explicit_gpu_type_is_an_invalid_spec() -> None:
    plan = plan_deployment(llmd(gpu={"type": "voodoo-9000"}), facts(), [], L4_ONLY)
    assert plan.refusal_reason == "InvalidSpec"
    assert "spec.gpu.type" in (plan.refusal or "")


def test_policy_selection_by_namespace() -> None:
    strict = LicensePolicy.model_validate(
        {
            "metadata": {"name": "strict"},
            "spec": {"namespaces": ["team-*"], "requireOpenSource": True},
        }
    )
    loose = policy()
    plan = plan_deployment(llmd(), facts(), [loose, strict], L4_ONLY)
    assert plan.license.policy_name == "strict"
    assert plan.refusal_reason == "LicenseDenied"  # Qwen is open-weight, not open-source


@pytest.mark.parametrize("replicas", [0, 3])
def test_replicas_flow_into_the_deployment(replicas: int) -> None:
    three = inventory_from_file([{"gpuProduct": "NVIDIA-L4", "gpusPerNode": 1, "nodes": 3}], "t")
    plan = plan_deployment(llmd(replicas=replicas), facts(), [], three)
    deploy = next(o for o in plan.objects if o["kind"] == "Deployment")
    assert deploy["spec"]["replicas"] == replicas


def test_replicas_are_checked_against_the_inventory() -> None:
    """3 replicas of 1 x L4 on 2 single-L4 nodes: too few GPUs even when all are free."""
    plan = plan_deployment(llmd(replicas=3), facts(), [], L4_ONLY)
    assert plan.refusal_reason == "DoesNotFit" and plan.objects == ()
    assert "3 replicas" in (plan.refusal or "") and "2 x 1 x NVIDIA-L4" in (plan.refusal or "")
    # the same on three nodes of which one is busy: the GPUs exist but are taken
    busy = inventory_from_file([{"gpuProduct": "NVIDIA-L4", "gpusPerNode": 1, "nodes": 3,
                                 "freeGpusPerNode": [1, 0, 1]}], "t")
    plan = plan_deployment(llmd(replicas=3), facts(), [], busy)
    assert plan.refusal_reason == "GpusBusy", plan.refusal
    assert "only 2 of those GPUs are free" in (plan.refusal or "")


def test_plan_is_deterministic() -> None:
    a = plan_deployment(llmd(), facts(), [policy()], L4_ONLY)
    b = plan_deployment(llmd(), facts(), [policy()], L4_ONLY)
    assert a.objects == b.objects and a.sizing == b.sizing


@pytest.mark.parametrize(
    ("license", "license_name", "reason"),
    [("apache-2.0", None, "GatedModel"), ("other", "mrl", "LicenseDenied")],
)
def test_unreadable_gated_files_refuse_after_the_licence(
    license: str, license_name: str | None, reason: str
) -> None:
    gated = facts(
        license=license,
        license_name=license_name,
        architecture=None,
        gated="manual",
        access_error="acme/x: gated model: set spec.hubTokenSecretRef",
    )
    plan = plan_deployment(llmd(), gated, [policy()], L4_ONLY)
    assert plan.refusal_reason == reason
    assert plan.objects == () and plan.sizing is None


def test_sizer_and_runtime_check_share_one_capability_table() -> None:
    """For every runtime, quantization it serves and catalogue GPU, the sizer's GPU filter and
    the planner's runtime check give the same answer (they disagreed: vLLM fp8 was 7.5 in the
    sizer's gpus.yaml kernels table and 8.0 in runtimes.yaml, so a model was sized onto a GPU the
    runtime check then refused)."""
    from kubellm.errors import UnsupportedError
    from kubellm.runtimes import RUNTIMES
    from kubellm.sizing import gpu_supports, load_gpu_catalog
    from kubellm.sizing.types import Quant

    for name, runtime in RUNTIMES.items():
        for method, row in runtime.info.quantizations.items():
            for bits in (4.16, 8.0, 16.0):
                quant = Quant(method, bits, from_checkpoint=row.needs_checkpoint)
                for gpu in load_gpu_catalog():
                    sized, why = gpu_supports(gpu, quant, runtime=name)
                    try:
                        runtime.supports(quant, gpu)
                        checked = True
                    except UnsupportedError:
                        checked = False
                    assert sized == checked, (name, method, bits, gpu.product, why)


@pytest.mark.parametrize(("runtime", "gpu"), [("tgi", "NVIDIA-H100-80GB-HBM3"),
                                              ("vllm", "Tesla-T4")])
def test_fp8_on_a_mixed_inventory_is_sized_where_the_runtime_serves_it(runtime: str,
                                                                       gpu: str) -> None:
    """TGI fp8 needs Hopper: with T4, L4 and H100 nodes it is sized onto the H100, never onto a
    GPU its check refuses; vLLM serves fp8 on Turing (FP8 Marlin, vLLM 0.32's own minimum 7.5)
    and takes the cheapest."""
    mixed = inventory_from_file([
        {"gpuProduct": "Tesla-T4", "gpusPerNode": 1, "nodes": 1},
        {"gpuProduct": "NVIDIA-L4", "gpusPerNode": 1, "nodes": 1},
        {"gpuProduct": "NVIDIA-H100-80GB-HBM3", "gpusPerNode": 1, "nodes": 1},
    ], "mixed")
    plan = plan_deployment(llmd(runtime=runtime, quantization="fp8",
                                context={"maxModelLen": 4096}),
                           facts(weight_bytes=15_000_000_000), [], mixed)
    assert plan.deployable, plan.refusal
    assert plan.sizing is not None and plan.sizing.gpu_type == gpu
