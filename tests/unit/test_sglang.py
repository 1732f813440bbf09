"""SGLang, the third runtime: what it renders, what it serves where, what spec.args may add."""

from __future__ import annotations

from dataclasses import replace

import pytest
from test_render_cases import (
    A100_80,
    AWQ,
    BF16,
    FP8_ON_THE_FLY,
    GPTQ,
    H100,
    L4,
    T4,
    Case,
    llama_8b,
    llama_70b,
)

from kubellm.api.v1alpha1 import LLMDeploymentSpec
from kubellm.errors import UnsupportedError
from kubellm.runtimes import choose_runtime, get_runtime, guard
from kubellm.runtimes.guard import OverrideRefusedError
from kubellm.runtimes.lws import LABEL_WORKER_INDEX
from kubellm.sizing.memory import overhead_gib

SGLANG = get_runtime("sglang")


def spec(runtime: str = "sglang") -> LLMDeploymentSpec:
    return LLMDeploymentSpec.model_validate({"model": {"repo": "a/b"}, "runtime": runtime})


def args_of(case: Case) -> list[str]:
    return SGLANG.args(case.context())


def value(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args else None


def test_spec_runtime_sglang_is_accepted_and_auto_keeps_vllm_then_tgi() -> None:
    assert spec().runtime == "sglang"
    assert choose_runtime(spec(), BF16, L4) == "sglang"
    assert choose_runtime(spec("auto"), BF16, L4) == "vllm"


def test_args_are_sglangs_names_for_the_sized_facts() -> None:
    args = args_of(Case("s", "sglang", llama_8b(), BF16, L4, {}))
    assert args[0] == "--enable-metrics"
    assert value(args, "--model-path") == "meta-llama/Llama-3.1-8B-Instruct"
    assert value(args, "--revision") == llama_8b().sha
    assert value(args, "--host") == "0.0.0.0"
    assert value(args, "--port") == "30000"
    assert value(args, "--tp-size") == "1"
    assert value(args, "--context-length") == "16384"
    assert "--pp-size" not in args and "--quantization" not in args


def test_mem_fraction_static_leaves_the_sized_overhead_outside_weights_and_kv() -> None:
    # L4: 24 GiB x 0.9 = 21.6 usable; 8B bf16 = 14.96 GiB of weights on one GPU.
    weights = llama_8b().weight_bytes / 1024**3
    usable, overhead = round(24.0 * 0.9, 2), round(overhead_gib(weights), 2)
    expected = round(0.9 * (usable - overhead) / usable, 3)
    args = args_of(Case("s", "sglang", llama_8b(), BF16, L4, {}))
    assert value(args, "--mem-fraction-static") == str(expected)
    assert float(str(expected)) < 0.9
    # without the sizer's breakdown the utilization itself is passed
    ctx = Case("s", "sglang", llama_8b(), BF16, L4, {}).context()
    bare = replace(ctx, sizing=replace(ctx.sizing, overhead_gib=None))
    assert value(SGLANG.args(bare), "--mem-fraction-static") == "0.9"


def test_fp8_on_the_fly_and_fp8_kv_cache() -> None:
    args = args_of(Case("s", "sglang", llama_8b(), FP8_ON_THE_FLY, H100, {}, kv="fp8"))
    assert value(args, "--quantization") == "fp8"
    assert value(args, "--kv-cache-dtype") == "fp8_e4m3"
    # a pre-quantized checkpoint is read from its config: no --quantization
    assert "--quantization" not in args_of(Case("s", "sglang", llama_8b(), AWQ, L4, {}))


@pytest.mark.parametrize(("quant", "gpu", "ok"), [
    (FP8_ON_THE_FLY, A100_80, True),  # Fp8Config min capability 80 (Marlin W8A16)
    (FP8_ON_THE_FLY, T4, False),
    (GPTQ, T4, False),  # only gptq_marlin on CUDA: 8.0
    (GPTQ, L4, True),
    (AWQ, T4, True),  # AWQConfig: Turing
    (BF16, T4, True),
])
def test_capability_table(quant: object, gpu: object, ok: bool) -> None:
    if ok:
        SGLANG.supports(quant, gpu)  # type: ignore[arg-type]
    else:
        with pytest.raises(UnsupportedError, match=r"needs 8\.0"):
            SGLANG.supports(quant, gpu)  # type: ignore[arg-type]


def test_gguf_and_bitsandbytes_are_refused_naming_why() -> None:
    from kubellm.sizing.types import Quant

    with pytest.raises(UnsupportedError, match="GGUF path"):
        SGLANG.supports(Quant("gguf", 4.9, from_checkpoint=True), L4)
    with pytest.raises(UnsupportedError, match=r"set spec\.runtime to tgi or auto"):
        SGLANG.supports(Quant("bitsandbytes", 4.5, from_checkpoint=False), L4)


def test_multi_node_is_sglangs_own_rendezvous_without_ray() -> None:
    case = Case("s", "sglang", llama_70b(), BF16, H100, {"replicas": 2}, tp=8, pp=2, nodes=2,
                max_model_len=8192)
    lws, service = SGLANG.render(case.context())
    group = lws["spec"]["leaderWorkerTemplate"]
    leader = group["leaderTemplate"]["spec"]["containers"][0]
    worker = group["workerTemplate"]["spec"]["containers"][0]
    assert group["size"] == 2
    for container, rank in ((leader, "--node-rank 0"), (worker, '--node-rank "$LWS_WORKER_INDEX"')):
        script = container["args"][0]
        assert container["command"] == ["/bin/sh", "-c"]
        assert script.startswith("exec python3 -m sglang.launch_server ")
        assert '--dist-init-addr "$LWS_LEADER_ADDRESS:5000" --nnodes 2 ' + rank in script
        assert "--tp-size 8" in script and "--pp-size 2" in script and "ray" not in script
    assert "startupProbe" in leader and "startupProbe" not in worker and "ports" not in worker
    assert service["spec"]["selector"][LABEL_WORKER_INDEX] == "0"


def test_tgi_multi_node_refusal_names_both_runtimes_that_can() -> None:
    case = Case("t", "tgi", llama_70b(), BF16, H100, {}, tp=8, pp=2, nodes=2)
    with pytest.raises(UnsupportedError, match=r"set spec\.runtime to sglang or vllm or auto"):
        get_runtime("tgi").render(case.context())


@pytest.mark.parametrize(("args", "why"), [
    (["--model", "other/model"], "--model is not permitted"),  # the alias of --model-path
    (["--nccl-init-addr", "x:1"], "--nccl-init-addr is set by kubellm"),
    (["--tensor-parallel-size", "2"], "set by kubellm"),
    (["--tp", "2"], "not an option of SGLang 0.5.23"),  # argparse would expand the prefix
    (["--model_path", "x"], "not an option"),  # plain argparse: no '_' spelling
    (["--trust-remote-code"], "runs code"),
    (["--enable-custom-logit-processor"], "serialized Python"),
    (["--config", "f.yaml"], "past these checks"),
    (["--enable-metrics"], "set by kubellm"),
])
def test_guard_refuses_what_would_change_model_code_or_listener(args: list[str], why: str
                                                                ) -> None:  # fmt: skip
    with pytest.raises(OverrideRefusedError, match=why):
        guard.check_args("sglang", args)


def test_guard_lets_tuning_flags_through() -> None:
    assert guard.check_args("sglang", ["--enable-torch-compile", "--chunked-prefill-size",
                                       "4096", "--schedule-policy=lpm"]) == [
        "--enable-torch-compile", "--chunked-prefill-size", "--schedule-policy"]


@pytest.mark.parametrize("name", ["SGLANG_USE_MODELSCOPE", "SGL_FORCE_SHUTDOWN", "HF_TOKEN"])
def test_guard_refuses_sglang_env(name: str) -> None:
    with pytest.raises(OverrideRefusedError, match=name):
        guard.check_env("sglang", [{"name": name, "value": "1"}])

