"""TGI v3.3.7 facts the rendering and the sizer must respect (issue 10, "workloads the real
engines accept"). Each rule comes from data/runtimes.yaml's tgi section or data/tgi-launcher.yaml,
which carry the upstream source lines."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from goldens import GOLDEN
from test_render_cases import (
    AWQ,
    BF16,
    FP8_ON_THE_FLY,
    GPTQ,
    H100,
    L4,
    LLAMA_ARCH,
    T4,
    Case,
    cases,
    gemma3_27b,
    llama_8b,
    mistral_7b,
)

from kubellm.api.v1alpha1 import LLMDeploymentSpec
from kubellm.errors import KubellmError, SpecError, UnsupportedError
from kubellm.facts import Architecture, WeightFile
from kubellm.runtimes import get_runtime
from kubellm.runtimes.catalog import (
    endpoint_drain_seconds,
    launcher_flags,
    memory_multiplier,
    runtime_info,
)
from kubellm.sizing import default_inventory, gpu_supports, lookup_gpu, size
from kubellm.sizing.types import Quant

GIB = 1024**3
BNB = Quant("bitsandbytes", 4.5, from_checkpoint=False)


def container(case: Case) -> dict[str, Any]:
    deployment = get_runtime(case.runtime).render(case.context())[0]
    return deployment["spec"]["template"]["spec"]["containers"][0]


def flag(args: list[str], name: str) -> str | None:
    return args[args.index(name) + 1] if name in args else None


# --- the launcher's flags: everything kubellm renders for TGI exists and parses ----------------


def _check_value(name: str, value: str) -> None:
    spec = launcher_flags("tgi")[name]
    if spec.values:
        assert value in spec.values, f"{name} {value!r}: not one of {spec.values}"
    elif spec.value == "int":
        assert int(value) >= 0, (name, value)
    elif spec.value == "float":
        float(value)
    elif spec.value == "int_list":
        [int(v) for v in value.split(",")]


def check_launcher_args(args: list[str]) -> None:
    """Every ``--flag`` is the launcher's, takes a value when clap wants one (a value of the
    right type, in the enum when it has one) and occurs once unless repeatable."""
    known = launcher_flags("tgi")
    seen: set[str] = set()
    i = 0
    while i < len(args):
        token = args[i]
        assert token.startswith("--"), f"stray argument {token!r} in {args}"
        name, eq, inline = token.partition("=")
        assert name in known, f"{name} is not a text-generation-launcher v3.3.7 flag"
        spec = known[name]
        assert spec.repeatable or name not in seen, f"{name} given twice: clap refuses it"
        seen.add(name)
        if not spec.takes_value:
            assert not eq, f"{name} takes no value"
            i += 1
            continue
        value = inline if eq else args[i + 1]
        _check_value(name, value)
        i += 1 if eq else 2


def check_launcher_env(env: list[dict[str, Any]]) -> None:
    """Environment kubellm sets that the launcher reads as a flag has a value the flag accepts."""
    by_env = {f.env: f for f in launcher_flags("tgi").values() if f.env}
    for item in env:
        spec = by_env.get(item["name"])
        if spec is not None and "value" in item:
            _check_value(spec.name, item["value"])


def tgi_cases() -> list[Case]:
    """Every render case as TGI (the vLLM ones switched over), plus the branches they miss."""
    out = [replace(c, runtime="tgi") for c in cases()]
    out += [
        Case("t", "tgi", llama_8b(), BNB, L4, {}),
        Case("t", "tgi", llama_8b(), FP8_ON_THE_FLY, H100, {"cache": {"enabled": False}}, kv="fp8"),
        Case("t", "tgi", llama_8b(), BF16, L4, {"args": ["--max-concurrent-requests=64"]}),
        Case("t", "tgi", gemma3_27b(), BF16, H100, {"args": ["--max-batch-prefill-tokens", "9"]}),
    ]  # fmt: skip
    return out


def test_every_rendered_tgi_flag_is_a_launcher_flag_with_a_valid_value() -> None:
    rendered = 0
    for case in tgi_cases():
        try:
            c = container(case)
        except KubellmError:
            continue  # a refusal renders nothing (e.g. GGUF, multi-node)
        check_launcher_args(c["args"])
        check_launcher_env(c["env"])
        rendered += 1
    assert rendered >= 10


@pytest.mark.parametrize("path", sorted(GOLDEN.glob("tgi-*.yaml")), ids=lambda p: p.stem)
def test_tgi_goldens_use_only_launcher_flags(path: Path) -> None:
    for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
        if not isinstance(doc, dict) or doc.get("kind") != "Deployment":
            continue
        for c in doc["spec"]["template"]["spec"]["containers"]:
            check_launcher_args(c["args"])
            check_launcher_env(c["env"])


def test_catalogue_flag_values_are_in_the_launcher_enums() -> None:
    info = runtime_info("tgi")
    flags = launcher_flags("tgi")
    assert set(info.quantize_flag.values()) <= set(flags["--quantize"].values)
    assert set(info.kv_cache_dtype_flag.values()) <= set(flags["--kv-cache-dtype"].values)
    check_launcher_env([{"name": k, "value": v} for k, v in info.env.items()])
    assert info.prefill_chunking is not None and info.prefill_chunking.flag in flags


def test_the_checker_catches_what_the_launcher_refuses() -> None:
    with pytest.raises(AssertionError, match="not a text-generation-launcher"):
        check_launcher_args(["--max-model-len", "8192"])  # vLLM's name
    with pytest.raises(AssertionError, match="not one of"):
        check_launcher_args(["--kv-cache-dtype", "fp8"])
    with pytest.raises(AssertionError, match="given twice"):
        check_launcher_args(["--port", "8080", "--port", "80"])
    with pytest.raises(AssertionError, match="not one of"):
        check_launcher_env([{"name": "USAGE_STATS", "value": "false"}])


# --- memory: TGI fills memoryUtilization x TGI_WIGGLE_ROOM --------------------------------------


def _spec(runtime: str, **kw: Any) -> LLMDeploymentSpec:
    return LLMDeploymentSpec.model_validate(
        {"model": {"repo": "meta-llama/Llama-3.1-8B-Instruct"}, "runtime": runtime, **kw}
    )


def test_tgi_sizing_leaves_the_headroom_tgi_keeps() -> None:
    """Llama-3.1-8B bf16 on one L4: vLLM fits 15616 tokens at 0.9; TGI's KV budget is
    0.9 x 0.90 of the GPU, which cannot hold weights + overhead + 2048 tokens there."""
    l4 = {"gpu": {"type": "l4", "count": 1}}
    vllm = size(llama_8b(), _spec("vllm", **l4), default_inventory(), runtime="vllm")
    assert vllm.fits and vllm.max_model_len == 15616
    tgi = size(llama_8b(), _spec("tgi", **l4), default_inventory(), runtime="tgi")
    assert not tgi.fits, tgi.message
    auto = size(llama_8b(), _spec("tgi"), default_inventory(), runtime="tgi")
    assert auto.fits and auto.gpu_memory_gib is not None and auto.per_gpu_gib is not None
    gpu = lookup_gpu(auto.gpu_type or "")
    assert gpu is not None
    assert auto.gpu_memory_gib == pytest.approx(gpu.memory_gib * 0.9 * 0.9, abs=0.01)
    assert auto.per_gpu_gib <= auto.gpu_memory_gib
    assert "usable at 0.9 x 0.9 TGI_WIGGLE_ROOM" in auto.message
    # Given more of the GPU, one L4 serves it with TGI too, at a shorter context than vLLM's.
    more = size(llama_8b(), _spec("tgi", gpu={"type": "l4", "count": 1, "memoryUtilization": 0.97}),
                default_inventory(), runtime="tgi")  # fmt: skip
    assert more.fits and (more.max_model_len or 0) < 15616
    assert more.per_gpu_gib is not None and gpu is not None
    l4_gpu = lookup_gpu("l4")
    assert l4_gpu is not None and more.per_gpu_gib <= l4_gpu.memory_gib * 0.97 * 0.9


def test_tgi_rendered_fraction_is_memory_utilization() -> None:
    # --cuda-memory-fraction also caps torch's allocator (dist.py:56): it stays the share of the
    # GPU the user gave; the sizer counts the part TGI keeps back.
    ctx = Case("t", "tgi", llama_8b(), BF16, L4, {}).context()
    ctx = replace(ctx, sizing=replace(ctx.sizing, memory_utilization=0.95))
    c = get_runtime("tgi").container(ctx)
    assert flag(c["args"], "--cuda-memory-fraction") == "0.95"
    assert runtime_info("tgi").memory_fraction.effective_multiplier == 0.9
    assert runtime_info("vllm").memory_fraction.effective_multiplier == 1.0


def test_wiggle_room_from_spec_env() -> None:
    env = [{"name": "TGI_WIGGLE_ROOM", "value": "0.95"}]
    assert memory_multiplier("tgi", env) == 0.95
    assert memory_multiplier("tgi", [{"name": "TGI_WIGGLE_ROOM", "valueFrom": {}}]) == 0.9
    assert memory_multiplier("vllm", env) == 1.0
    r = size(llama_8b(), _spec("tgi", gpu={"type": "l4", "count": 1}, env=env),
             default_inventory(), runtime="tgi")  # fmt: skip
    l4 = lookup_gpu("l4")
    assert l4 is not None and r.gpu_memory_gib == pytest.approx(l4.memory_gib * 0.9 * 0.95, 0.01)
    with pytest.raises(SpecError, match="TGI_WIGGLE_ROOM"):
        size(llama_8b(), _spec("tgi", env=[{"name": "TGI_WIGGLE_ROOM", "value": "1.5"}]),
             default_inventory(), runtime="tgi")  # fmt: skip


# --- prefill chunking: --max-batch-prefill-tokens where the router needs it ---------------------


def _arch(model_type: str, **kw: Any) -> Architecture:
    return replace(LLAMA_ARCH, model_type=model_type, **kw)


@pytest.mark.parametrize(
    ("model_type", "gpu", "extra", "expected"),
    [
        ("gemma3", H100, {}, "16383"),
        ("qwen2_vl", H100, {}, "16383"),
        ("qwen2_5_vl", H100, {}, "16383"),
        ("mllama", H100, {}, "16383"),
        ("t5", H100, {}, "16383"),
        ("llama", H100, {}, None),  # FlashCausalLM chunks: TGI's default stays
        ("llama", T4, {}, None),  # head dim 128: flashinfer on Turing too
        ("falcon", T4, {}, "16383"),  # paged attention below 8.0: no chunking
        ("falcon", H100, {}, None),
        ("llama", H100, {"env": [{"name": "PREFILL_CHUNKING", "value": "0"}]}, "16383"),
    ],
)
def test_prefill_budget_for_shards_without_chunking(
    model_type: str, gpu: Any, extra: dict[str, Any], expected: str | None
) -> None:
    facts = replace(llama_8b(), architecture=_arch(model_type))
    args = container(Case("t", "tgi", facts, BF16, gpu, extra))["args"]
    assert flag(args, "--max-batch-prefill-tokens") == expected
    if expected is not None:  # backends/v3/src/main.rs:188: prefill >= max_input_tokens
        assert int(expected) >= int(flag(args, "--max-input-tokens") or 0)


def test_speculation_disables_chunking() -> None:
    # kubellm refuses --speculate in spec.args today (runtimes/guard.py); the engine fact stands
    # for a spec that gets it past validation.
    facts = replace(llama_8b(), architecture=_arch("llama"))
    ctx = Case("t", "tgi", facts, BF16, H100, {}).context()
    ctx = replace(ctx, spec=ctx.spec.model_copy(update={"args": ["--speculate", "2"]}))
    assert flag(get_runtime("tgi").args(ctx), "--max-batch-prefill-tokens") == "16383"


def test_head_size_outside_flash_sizes_on_turing_disables_chunking() -> None:
    phi = replace(llama_8b(), architecture=_arch("phi", head_dim=80))
    assert flag(container(Case("t", "tgi", phi, BF16, T4, {}))["args"],
                "--max-batch-prefill-tokens") == "16383"  # fmt: skip
    assert flag(container(Case("t", "tgi", phi, BF16, L4, {}))["args"],
                "--max-batch-prefill-tokens") is None  # fmt: skip


def test_gemma3_golden_case_renders_the_prefill_budget() -> None:
    args = container(Case("t", "tgi", gemma3_27b(), BF16, H100, {}))["args"]
    assert flag(args, "--max-batch-prefill-tokens") == flag(args, "--max-input-tokens") == "16383"


@pytest.mark.parametrize("user", [["--max-batch-prefill-tokens", "20000"],
                                  ["--max-batch-prefill-tokens=20000"]])
def test_a_flag_in_spec_args_replaces_kubellms(user: list[str]) -> None:
    # The launcher (clap) refuses a flag given twice: the user's occurrence is the one left.
    args = container(Case("t", "tgi", gemma3_27b(), BF16, H100, {"args": user}))["args"]
    assert sum(a.split("=")[0] == "--max-batch-prefill-tokens" for a in args) == 1
    assert args[-len(user):] == user
    check_launcher_args(args)


# --- no cache: the emptyDir holds what TGI downloads ---------------------------------------------


def _empty_dir_gib(volumes: list[dict[str, Any]]) -> int:
    cache = next(v for v in volumes if v["name"] == "model-cache")
    return int(cache["emptyDir"]["sizeLimit"].removesuffix("Gi"))


def _pod(case: Case) -> dict[str, Any]:
    dep = get_runtime(case.runtime).render(case.context())[0]
    return dep["spec"]["template"]["spec"]


def test_no_cache_empty_dir_holds_consolidated_safetensors_too() -> None:
    facts = mistral_7b()
    pod = _pod(Case("t", "tgi", facts, BF16, L4, {"cache": {"enabled": False}}))
    downloaded = sum(f.size or 0 for f in facts.weight_files)  # all four top-level files
    assert downloaded == 29_000_000_000
    limit = _empty_dir_gib(pod["volumes"])
    assert limit * GIB >= downloaded * 1.2 + 2 * GIB
    assert limit == math.ceil((downloaded * 1.2 + 2 * GIB) / GIB)
    # The startup budget covers downloading both copies at 25 MiB/s.
    probe = pod["containers"][0]["startupProbe"]
    assert probe["failureThreshold"] * probe["periodSeconds"] >= downloaded / (25 * 1024**2)


def test_tgi_download_selection_follows_weight_hub_files() -> None:
    selection = runtime_info("tgi").hub_download
    assert selection is not None
    picked = [p for p in ("model-00001-of-00002.safetensors", "consolidated.safetensors",
                          "training_args.safetensors", "original/model.safetensors",
                          "adapter_model.bin", "optimizer_arguments.safetensors")
              if selection.selects(p)]  # fmt: skip
    assert picked == ["model-00001-of-00002.safetensors", "consolidated.safetensors"]
    # Sizes unknown for a selected file: it counts as a full copy of the checkpoint.
    facts = replace(mistral_7b(), weight_files=(
        WeightFile("consolidated.safetensors", None),
        WeightFile("model-00001-of-00001.safetensors", 14_500_000_000),
    ))  # fmt: skip
    ctx = Case("t", "tgi", facts, BF16, L4, {"cache": {"enabled": False}}).context()
    assert get_runtime("tgi").download_bytes(ctx) == 29_000_000_000


def test_cached_tgi_pods_download_nothing_and_keep_the_shared_cache() -> None:
    pod = _pod(Case("t", "tgi", mistral_7b(), BF16, L4, {}))
    assert any("persistentVolumeClaim" in v for v in pod["volumes"])


# --- AWQ kernels, grace period, entrypoint --------------------------------------------------------


def test_tgi_awq_needs_ampere() -> None:
    with pytest.raises(UnsupportedError, match=r"needs 8\.0 or newer\)( \(.*Marlin.*\))?"):
        get_runtime("tgi").supports(AWQ, T4)
    get_runtime("tgi").supports(AWQ, L4)
    get_runtime("tgi").supports(GPTQ, T4)  # GPTQ falls back to its triton kernel on Turing
    t4 = lookup_gpu("t4")
    assert t4 is not None
    ok, why = gpu_supports(t4, AWQ, runtime="tgi")
    assert not ok and "8.0" in why
    assert gpu_supports(t4, AWQ, runtime="vllm")[0]  # vLLM keeps its Turing AWQ kernel


def test_grace_period_covers_the_prestop_sleep_and_each_runtimes_drain() -> None:
    drain = launcher_flags("tgi")["--graceful-termination-timeout"].default
    assert drain == "90" and runtime_info("tgi").drain.seconds == int(drain)
    assert runtime_info("tgi").drain.flag is None  # TGI drains by default: no flag rendered
    for runtime in ("tgi", "vllm"):
        pod = _pod(Case("t", runtime, llama_8b(), BF16, L4, {}))
        (server,) = pod["containers"]
        sleep = server["lifecycle"]["preStop"]["sleep"]["seconds"]
        assert sleep == endpoint_drain_seconds() > 0
        info = runtime_info(runtime)
        assert pod["terminationGracePeriodSeconds"] == info.termination_grace_seconds
        assert pod["terminationGracePeriodSeconds"] > sleep + info.drain.seconds
    args = container(Case("v", "vllm", llama_8b(), BF16, L4, {}))["args"]
    # vLLM 0.32 aborts in-flight requests on SIGTERM with its default --shutdown-timeout 0
    assert args[args.index("--shutdown-timeout") + 1] == str(runtime_info("vllm").drain.seconds)


def test_tgi_renders_args_only_for_the_image_entrypoint() -> None:
    c = container(Case("t", "tgi", llama_8b(), BF16, L4, {}))
    assert "command" not in c and c["args"][0].startswith("--")
    assert runtime_info("tgi").entrypoint == ("/tgi-entrypoint.sh",)
    assert container(Case("v", "vllm", llama_8b(), BF16, L4, {}))["command"] == ["vllm", "serve"]
