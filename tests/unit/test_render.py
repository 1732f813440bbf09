"""Runtime rendering rules, one table per rule (no cluster, no Hub)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from test_render_cases import (
    A100_80,
    AWQ,
    BF16,
    FP8_ON_THE_FLY,
    GGUF_Q4,
    GPTQ,
    H100,
    L4,
    L40S,
    T4,
    Case,
    llama_8b,
    llama_70b,
)

from kubellm.api.v1alpha1 import LLMDeploymentSpec
from kubellm.errors import DoesNotFitError, UnsupportedError
from kubellm.runtimes import RUNTIMES, choose_runtime, endpoint_url, get_runtime
from kubellm.runtimes.base import RenderContext
from kubellm.sizing.types import GpuType, Quant

V100 = GpuType("Tesla-V100-SXM2-32GB", 32.0, (7, 0))
MXFP4 = Quant("mxfp4", 4.25, from_checkpoint=True)
AWQ_ON_THE_FLY = Quant("awq", 4.16, from_checkpoint=False)
BNB = Quant("bitsandbytes", 4.5, from_checkpoint=False)


def spec(**kw: Any) -> LLMDeploymentSpec:
    return LLMDeploymentSpec.model_validate({"model": {"repo": "org/m"}, **kw})


def deployment(case: Case) -> dict[str, Any]:
    return get_runtime(case.runtime).render(case.context())[0]


def container(case: Case) -> dict[str, Any]:
    return deployment(case)["spec"]["template"]["spec"]["containers"][0]


# --- support matrix --------------------------------------------------------------------------

SUPPORT = [
    # runtime, quant, gpu, error fragment or None
    ("vllm", BF16, L4, None),
    ("vllm", BF16, V100, "vllm does not run on Tesla-V100"),  # V1 engine: 7.5+
    ("vllm", FP8_ON_THE_FLY, A100_80, None),  # W8A16 Marlin on Ampere
    ("vllm", FP8_ON_THE_FLY, T4, None),  # weight-only FP8 Marlin on Turing (vLLM: 75)
    ("vllm", AWQ, T4, None),
    ("vllm", AWQ, V100, "compute capability 7.0; needs 7.5 or newer"),
    ("vllm", GPTQ, V100, "vllm does not run on Tesla-V100"),
    ("vllm", GGUF_Q4, V100, "out-of-tree vllm-gguf-plugin"),  # not in vLLM 0.32's image
    ("vllm", MXFP4, A100_80, None),
    ("vllm", MXFP4, T4, "needs 8.0 or newer"),
    ("vllm", AWQ_ON_THE_FLY, L4, "cannot quantize to awq on the fly"),
    ("vllm", BNB, V100, "set spec.runtime to tgi or auto"),  # vllm-bnb-plugin, out of tree
    ("tgi", BF16, T4, None),
    ("tgi", BF16, V100, "needs 7.5 or newer"),
    ("tgi", FP8_ON_THE_FLY, H100, None),
    ("tgi", FP8_ON_THE_FLY, L40S, "NVIDIA-L40S (compute capability 8.9; needs 9.0"),
    ("tgi", GGUF_Q4, L4, "llama.cpp backend image"),
    ("tgi", MXFP4, H100, "cannot serve quantization mxfp4"),
    ("tgi", AWQ, None, None),
    ("tgi", AWQ, L4, None),
    ("tgi", AWQ, T4, "needs 8.0 or newer"),  # Marlin / kernels built for sm_80+
    ("tgi", GGUF_Q4, None, "choose another spec.quantization"),  # no runtime serves GGUF
]


@pytest.mark.parametrize(("runtime", "quant", "gpu", "error"), SUPPORT)
def test_supports(runtime: str, quant: Quant, gpu: GpuType | None, error: str | None) -> None:
    rt = get_runtime(runtime)
    if error is None:
        rt.supports(quant, gpu)
        return
    with pytest.raises(UnsupportedError) as info:
        rt.supports(quant, gpu)
    assert error in str(info.value)
    assert str(info.value).startswith("spec.")  # names the field to change


def test_refusal_lists_what_is_supported() -> None:
    with pytest.raises(UnsupportedError) as info:
        get_runtime("tgi").supports(FP8_ON_THE_FLY, L4)
    text = str(info.value)
    assert "none, awq, gptq, bitsandbytes" in text  # what this GPU can do with tgi instead
    assert "spec.gpu.type" in text


def test_unknown_runtime_lists_known_ones() -> None:
    with pytest.raises(UnsupportedError, match="kubellm knows sglang, tgi, vllm"):
        get_runtime("tensorrt")


@pytest.mark.parametrize(
    ("runtime", "quant", "gpu", "expected"),
    [
        ("auto", BF16, L4, "vllm"),
        ("auto", BNB, L4, "tgi"),  # the pinned vLLM has no bitsandbytes: the next runtime
        ("auto", AWQ, T4, "vllm"),
        ("tgi", BF16, L4, "tgi"),  # TGI only when asked
        ("vllm", BF16, None, "vllm"),
    ],
)
def test_choose_runtime(runtime: str, quant: Quant, gpu: GpuType | None, expected: str) -> None:
    assert choose_runtime(spec(runtime=runtime), quant, gpu) == expected


@pytest.mark.parametrize(
    ("runtime", "quant", "gpu"),
    [("auto", MXFP4, T4), ("tgi", FP8_ON_THE_FLY, L4), ("auto", AWQ_ON_THE_FLY, L4),
     ("auto", GGUF_Q4, L4)],
)
def test_choose_runtime_refuses(runtime: str, quant: Quant, gpu: GpuType) -> None:
    with pytest.raises(UnsupportedError):
        choose_runtime(spec(runtime=runtime), quant, gpu)


def test_registry() -> None:
    assert sorted(RUNTIMES) == ["sglang", "tgi", "vllm"]
    assert all(RUNTIMES[n].name == n for n in RUNTIMES)


# --- arguments -------------------------------------------------------------------------------


def _flag(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args else None


@pytest.mark.parametrize(
    ("case", "flags"),
    [
        # quantization flag only to quantize on the fly
        (Case("v", "vllm", llama_8b(), FP8_ON_THE_FLY, H100, {}, kv="fp8"),
         {"--quantization": "fp8_per_tensor", "--kv-cache-dtype": "fp8"}),
        (Case("v", "vllm", llama_8b(), BF16, L4, {}),
         {"--quantization": None, "--kv-cache-dtype": None}),
        (Case("t", "tgi", llama_8b(), BNB, L4, {}), {"--quantize": "bitsandbytes-nf4"}),
        (Case("t", "tgi", llama_8b(), FP8_ON_THE_FLY, H100, {}, kv="fp8"),
         {"--quantize": "fp8", "--kv-cache-dtype": "fp8_e4m3fn"}),
        # parallelism and context
        (Case("v", "vllm", llama_70b(), BF16, A100_80, {}, tp=4, max_model_len=8192),
         {"--tensor-parallel-size": "4", "--pipeline-parallel-size": None,
          "--max-model-len": "8192"}),
        (Case("t", "tgi", llama_70b(), BF16, A100_80, {}, tp=4, max_model_len=8192),
         {"--num-shard": "4", "--max-total-tokens": "8192", "--max-input-tokens": "8191"}),
        # served model name and revision pinning
        (Case("v", "vllm", llama_8b(), BF16, L4, {"servedModelName": "llama"}),
         {"--served-model-name": "llama", "--revision": llama_8b().sha,
          "--tokenizer-revision": llama_8b().sha}),
        (Case("t", "tgi", llama_8b(), BF16, L4, {"cache": {"enabled": False}}),
         {"--model-id": "meta-llama/Llama-3.1-8B-Instruct", "--revision": llama_8b().sha}),
        (Case("t", "tgi", llama_8b(), BF16, L4, {}), {"--revision": None}),
    ],
)  # fmt: skip
def test_flags(case: Case, flags: dict[str, str | None]) -> None:
    args = container(case)["args"]
    for flag, value in flags.items():
        assert _flag(args, flag) == value, (flag, args)


def test_user_args_come_last() -> None:
    args = container(Case("v", "vllm", llama_8b(), BF16, L4, {"args": ["--enforce-eager"]}))["args"]
    assert args[0] == "meta-llama/Llama-3.1-8B-Instruct" and args[-1] == "--enforce-eager"


def test_tgi_refuses_pipeline_parallel() -> None:
    ctx = Case("t", "tgi", llama_70b(), BF16, L4, {}, tp=4).context()
    ctx = replace(ctx, sizing=replace(ctx.sizing, pipeline_parallel_size=2, gpus_per_replica=8))
    with pytest.raises(UnsupportedError, match="no pipeline parallelism"):
        get_runtime("tgi").render(ctx)
    assert _flag(get_runtime("vllm").container(ctx)["args"], "--pipeline-parallel-size") == "2"


def test_does_not_fit_is_refused() -> None:
    ctx = Case("v", "vllm", llama_70b(), BF16, L4, {}).context()
    with pytest.raises(DoesNotFitError, match="needs 2 x 80 GiB"):
        get_runtime("vllm").render(
            replace(ctx, sizing=replace(ctx.sizing, fits=False, message="needs 2 x 80 GiB"))
        )


# --- pod shape -------------------------------------------------------------------------------


@pytest.mark.parametrize("runtime", ["vllm", "tgi"])
@pytest.mark.parametrize(
    ("weight_bytes", "cache", "minimum"),
    [
        (16_000_000_000, True, 600),  # small model: the 10-minute floor
        (141_000_000_000, True, 1345),  # 70B bf16 at 100 MiB/s
        (141_000_000_000, False, 1345 + 5379),  # + download at 25 MiB/s
        (700_000_000_000, True, 6676),  # DeepSeek-class
    ],
)
def test_startup_probe_budget_covers_the_load(
    runtime: str, weight_bytes: int, cache: bool, minimum: int
) -> None:
    facts = replace(llama_70b(), weight_bytes=weight_bytes, weight_files=())
    extra = {} if cache else {"cache": {"enabled": False}}
    case = Case("x", runtime, facts, BF16, A100_80, extra, tp=8)
    probe = container(case)["startupProbe"]
    budget = probe["failureThreshold"] * probe["periodSeconds"]
    assert budget >= minimum
    assert budget <= minimum + 600  # not absurdly generous either (base <= 420 s + a period)
    dep = deployment(case)
    assert dep["spec"]["progressDeadlineSeconds"] >= budget


@pytest.mark.parametrize(("runtime", "readiness"), [("vllm", "/v1/models"), ("tgi", "/health")])
def test_probes_use_real_endpoints(runtime: str, readiness: str) -> None:
    c = container(Case("x", runtime, llama_8b(), BF16, L4, {}))
    assert c["readinessProbe"]["httpGet"]["path"] == readiness
    assert c["livenessProbe"]["httpGet"]["path"] == "/health"
    assert c["livenessProbe"]["timeoutSeconds"] >= 10


@pytest.mark.parametrize(
    ("replicas", "override", "surge", "unavailable", "effective"),
    [(1, None, 1, 0, 1), (2, None, 0, 1, 2), (4, None, 0, 1, 4), (3, 0, 1, 0, 0)],
)
def test_replicas_and_strategy(
    replicas: int, override: int | None, surge: int, unavailable: int, effective: int
) -> None:
    case = Case("x", "vllm", llama_8b(), BF16, L4, {"replicas": replicas}, replicas=override)
    dep = deployment(case)
    assert dep["spec"]["replicas"] == effective
    assert dep["spec"]["strategy"]["rollingUpdate"] == {
        "maxSurge": surge,
        "maxUnavailable": unavailable,
    }


@pytest.mark.parametrize(
    ("runtime", "tp", "shm"),
    [("tgi", 1, False), ("tgi", 2, True), ("vllm", 1, True), ("vllm", 2, True), ("vllm", 8, True)],
)
def test_dev_shm_with_several_gpus_and_always_for_vllm(runtime: str, tp: int, shm: bool) -> None:
    """vLLM always (its single-GPU k8s examples; on CPU its message queues need >64 MiB)."""
    pod = deployment(Case("x", runtime, llama_70b(), BF16, A100_80, {}, tp=tp))["spec"][
        "template"
    ]["spec"]
    assert any(v["name"] == "dshm" for v in pod["volumes"]) is shm
    assert any(m["mountPath"] == "/dev/shm" for m in pod["containers"][0]["volumeMounts"]) is shm


def test_gpu_placement_and_user_overrides() -> None:
    extra = {
        "nodeSelector": {"topology.kubernetes.io/zone": "eu-west-1a"},
        "tolerations": [
            {"key": "dedicated", "operator": "Equal", "value": "llm", "effect": "NoSchedule"}
        ],
        "resources": {"limits": {"memory": "64Gi", "nvidia.com/gpu": 8}, "requests": {"cpu": "8"}},
        "env": [{"name": "HF_HUB_OFFLINE", "value": "0"}, {"name": "A_FIRST", "value": "x"}],
    }
    pod = deployment(Case("x", "vllm", llama_70b(), BF16, A100_80, extra, tp=2))["spec"][
        "template"
    ]["spec"]
    term = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][
        "nodeSelectorTerms"
    ][0]
    assert term["matchExpressions"] == [
        {"key": "nvidia.com/gpu.product", "operator": "In",
         "values": ["NVIDIA-A100-80GB-PCIe", "NVIDIA-A100-SXM4-80GB"]}
    ]  # fmt: skip
    assert pod["nodeSelector"] == {"topology.kubernetes.io/zone": "eu-west-1a"}
    assert pod["tolerations"][0] == {
        "effect": "NoSchedule",
        "key": "nvidia.com/gpu",
        "operator": "Exists",
    }
    assert pod["tolerations"][1]["key"] == "dedicated"
    c = pod["containers"][0]
    assert c["resources"] == {
        "limits": {"memory": "64Gi", "nvidia.com/gpu": "2"},
        "requests": {"cpu": "8"},
    }
    names = [e["name"] for e in c["env"]]
    assert names == sorted(names) and names[0] == "A_FIRST"
    assert {"name": "HF_HUB_OFFLINE", "value": "0"} in c["env"]  # the user's value wins
    assert pod["enableServiceLinks"] is False


def test_token_secret_only_when_downloading_in_the_pod() -> None:
    token = {"hubTokenSecretRef": {"name": "hf", "key": "token"}}
    with_cache = container(Case("x", "vllm", llama_8b(), BF16, L4, token))["env"]
    without = container(
        Case("x", "vllm", llama_8b(), BF16, L4, {**token, "cache": {"enabled": False}})
    )["env"]
    assert not any(e["name"] == "HF_TOKEN" for e in with_cache)
    assert {"name": "HF_HUB_OFFLINE", "value": "1"} in with_cache
    assert {
        "name": "HF_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}},
    } in without
    assert not any(e["name"] == "HF_HUB_OFFLINE" for e in without)


def test_service_and_metadata() -> None:
    dep, svc = get_runtime("vllm").render(
        Case("x", "vllm", llama_8b(), BF16, L4, {}, llmd_name="Chat.Prod").context()
    )
    assert dep["metadata"]["name"] == svc["metadata"]["name"]
    assert svc["metadata"]["name"].startswith("chat-prod-")
    assert svc["spec"]["selector"] == dep["spec"]["selector"]["matchLabels"]
    assert svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    assert svc["spec"]["ports"][0]["targetPort"] == "http"
    for obj in (dep, svc):
        assert "ownerReferences" not in obj["metadata"]
        assert obj["metadata"]["namespace"] == "ai"
    ann = dep["spec"]["template"]["metadata"]["annotations"]
    assert ann["prometheus.io/scrape"] == "true" and ann["prometheus.io/port"] == "8000"
    assert endpoint_url("Chat.Prod", "ai") == f"http://{svc['metadata']['name']}.ai.svc/v1"


def test_spec_hash_tracks_the_pod_template_only() -> None:
    base = Case("x", "vllm", llama_8b(), BF16, L4, {})
    h = deployment(base)["spec"]["template"]["metadata"]["annotations"]["kubellm.io/spec-hash"]
    same = deployment(Case("x", "vllm", llama_8b(), BF16, L4, {"replicas": 3}))
    other = deployment(Case("x", "vllm", llama_8b(), BF16, L4, {"args": ["--enforce-eager"]}))
    assert same["spec"]["template"]["metadata"]["annotations"]["kubellm.io/spec-hash"] == h
    assert other["spec"]["template"]["metadata"]["annotations"]["kubellm.io/spec-hash"] != h
    assert deployment(base)["metadata"]["annotations"]["kubellm.io/spec-hash"] == h


def test_image_precedence() -> None:
    case = Case("x", "vllm", llama_8b(), BF16, L4, {"image": "registry.local/vllm:pinned"})
    assert container(case)["image"] == "registry.local/vllm:pinned"
    ctx: RenderContext = replace(case.context(), image="override:1")
    assert get_runtime("vllm").container(ctx)["image"] == "override:1"
    assert container(Case("x", "tgi", llama_8b(), AWQ, L4, {}))["image"].startswith(
        "ghcr.io/huggingface/text-generation-inference:"
    )


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"env": [{"value": "x"}]}, r"env\[0\]\.name must be a non-empty string"),
        ({"env": [{"name": "A", "value": "1"}, {"name": ""}]}, r"env\[1\]\.name"),
        ({"resources": {"limits": ["memory"]}}, r"resources\.limits must map resource names"),
    ],
)
def test_bad_overrides_are_refused_by_validation(extra: dict[str, Any], words: str) -> None:
    """Malformed core/v1 overrides never reach the renderer: the spec refuses them, naming the
    element (kubellm plan prefixes file, document and spec.env / spec.resources)."""
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=words):
        Case("x", "vllm", llama_8b(), BF16, L4, extra).llmd_spec()


@pytest.mark.parametrize(
    ("raw", "refused"),
    [
        ({"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": True}, True),
        ({"quant_method": "gptq", "bits": 4, "group_size": -1, "desc_act": True}, False),
        ({"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": False}, False),
        ({"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": False,
          "dynamic": {r"+:.*\.mlp\..*": {"desc_act": True}}}, True),
        ({"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": False,
          "dynamic": {r"-:.*\.mlp\..*": {"desc_act": True}}}, False),
    ],
)
def test_vllm_refuses_gptq_with_group_activation_ordering(raw: dict[str, Any],
                                                          refused: bool) -> None:
    """vLLM 0.32 raises for desc_act with grouped quantization (tests/engines found it on the
    real hugging-quants GPTQ-INT4 checkpoint); TGI still serves it."""
    from test_render_cases import qwen_7b_gptq

    from kubellm.facts import Architecture, QuantizationConfig

    base = qwen_7b_gptq()
    qc = QuantizationConfig("gptq", 4, raw["group_size"], raw=raw)
    facts = replace(base, architecture=replace(base.architecture or Architecture(),
                                               quantization=qc))
    case = Case("v", "vllm", facts, GPTQ, L4, {})
    if refused:
        with pytest.raises(UnsupportedError, match="desc_act"):
            container(case)
        container(Case("t", "tgi", facts, GPTQ, L4, {}))
    else:
        container(case)
