"""The licence decision covers what actually runs: spec.args, spec.env and spec.image cannot make
the serving pod load another model, revision, tokenizer, source, code or listen elsewhere.

Each bypass below was either possible before (rendered `Allowed`, appended after kubellm's args:
argparse lets the last value win) or crash-looped the pod; now each is refused with
`NotPermitted`, naming the field and the fix, in `kubellm plan` and the operator alike.
"""

from __future__ import annotations

from typing import Any

import pytest

from kubellm.api.v1alpha1 import LicensePolicy, LLMDeployment
from kubellm.datafiles import load_mapping
from kubellm.planner import plan_deployment
from kubellm.runtimes import guard
from kubellm.runtimes.guard import OverrideRefusedError
from kubellm.sizing.inventory import default_inventory

SHA = "0123456789abcdef0123456789abcdef01234567"

REFUSED_ARGS = [
    # runtime, args, the flag or problem the message names
    ("tgi", ["--model-id", "mistralai/Mistral-Large-Instruct-2407"], "--model-id is not permitted"),
    ("tgi", ["--model-id=mistralai/Mistral-Large-Instruct-2407"], "--model-id is not permitted"),
    ("tgi", ["--revision", SHA], "--revision is set by kubellm"),
    ("tgi", ["--trust-remote-code"], "--trust-remote-code is not permitted"),
    ("tgi", ["--max-batch-size=1 --model-id x"], "split or expanded"),  # unquoted $@ splits it
    ("tgi", ["--max-batch-size", "$(N)"], "split or expanded"),  # kubelet expansion, then split
    ("tgi", ["--lora-adapters", "org/adapter"], "--lora-adapters is not permitted"),
    ("tgi", ["--ngrok"], "--ngrok is not permitted"),
    ("tgi", ["--max-batch-size", "1", "--max-batch-size", "2"], "given twice"),
    ("vllm", ["--tokenizer", "mistralai/Mistral-Large-Instruct-2407"], "--tokenizer is not"),
    ("vllm", ["--revision", SHA], "--revision is set by kubellm"),
    ("vllm", ["--trust-remote-code"], "--trust-remote-code is not permitted"),
    ("vllm", ["--trust_remote_code"], "--trust-remote-code is not permitted"),  # '_' == '-'
    ("vllm", ["--revis", SHA], "--revis is not an option"),  # argparse would take the prefix
    ("vllm", ["--model=mistralai/Mistral-Large-Instruct-2407"], "--model is not permitted"),
    ("vllm", ["mistralai/Mistral-Large-Instruct-2407"], "is not the value of a flag"),
    ("vllm", ["--enforce-eager", "mistralai/Mistral-Large-Instruct-2407"], "not the value"),
    ("vllm", ["-tp", "2"], "short or abbreviated"),
    ("vllm", ["-O3"], "short or abbreviated"),
    ("vllm", ["--config", "/etc/more-args.yaml"], "--config is not permitted"),
    ("vllm", ["--speculative-config.model", "org/draft"], "--speculative-config is not"),
    ("vllm", ["--speculative_config", '{"model": "org/draft"}'], "--speculative-config is not"),
    ("vllm", ["--lora-modules", "a=org/adapter"], "--lora-modules is not permitted"),
    ("vllm", ["--hf-overrides", '{"architectures": ["X"]}'], "--hf-overrides is not permitted"),
    ("vllm", ["--load-format", "runai_streamer"], "--load-format is not permitted"),
    ("vllm", ["--worker-extension-cls", "evil.Ext"], "--worker-extension-cls is not"),
    ("vllm", ["--port", "9000"], "--port is set by kubellm"),
    ("vllm", ["--host", "127.0.0.1"], "--host is set by kubellm"),
    ("vllm", ["--max-model-len", "100000"], "spec.context.maxModelLen"),
    ("vllm", ["--served-model-name", "gpt-4"], "spec.servedModelName"),
    ("vllm", ["--bogus-flag"], "--bogus-flag is not an option of vLLM 0.32.0"),
    ("vllm", ["--enforce-eager=false"], "--enforce-eager takes no value"),
    ("vllm", ["--max-num-seqs"], "--max-num-seqs needs a value"),
    ("vllm", ["--max-num-seqs", "--enforce-eager"], "--max-num-seqs needs a value"),
    ("vllm", ["--"], "is not the value of a flag"),
]


@pytest.mark.parametrize(("runtime", "args", "needle"), REFUSED_ARGS)
def test_refused_args(runtime: str, args: list[str], needle: str) -> None:
    with pytest.raises(OverrideRefusedError) as info:
        guard.check_args(runtime, args)
    assert needle in str(info.value)
    assert info.value.field.startswith("spec.args[")
    assert info.value.reason == "NotPermitted"
    assert info.value.fix  # every refusal says what to do


ALLOWED_ARGS = [
    ("vllm", ["--enforce-eager"]),
    ("vllm", ["--max-num-seqs", "8", "--max-num-batched-tokens=4096"]),
    ("vllm", ["--no-enable-prefix-caching", "--enable-chunked-prefill"]),
    ("vllm", ["--compilation-config", '{"level": 3}']),
    ("vllm", ["--compilation-config.level", "3"]),
    ("vllm", ["--seed", "-1"]),
    ("vllm", ["--max_num_seqs", "4"]),
    ("vllm", ["--allowed-media-domains", "a.example", "b.example", "--enforce-eager"]),
    ("vllm", ["--tool-call-parser", "hermes", "--enable-auto-tool-choice"]),
    ("tgi", ["--max-batch-prefill-tokens", "4096", "--max-concurrent-requests=64"]),
    ("tgi", ["--cors-allow-origin", "a.example", "--cors-allow-origin", "b.example"]),
    ("tgi", ["--json-output"]),
]


@pytest.mark.parametrize(("runtime", "args"), ALLOWED_ARGS)
def test_allowed_args(runtime: str, args: list[str]) -> None:
    guard.check_args(runtime, args)


@pytest.mark.parametrize(
    ("runtime", "name"),
    [("vllm", "HF_ENDPOINT"), ("vllm", "HF_HUB_OFFLINE"), ("tgi", "HF_TOKEN"),
     ("vllm", "VLLM_USE_MODELSCOPE"), ("vllm", "VLLM_PLUGINS"),
     ("vllm", "VLLM_ALLOW_RUNTIME_LORA_UPDATING"), ("vllm", "VLLM_API_KEY"),
     ("vllm", "HUGGING_FACE_HUB_TOKEN"), ("vllm", "TRANSFORMERS_OFFLINE"),
     ("vllm", "MODELSCOPE_ENDPOINT"), ("vllm", "PYTHONPATH"), ("vllm", "LD_PRELOAD"),
     ("vllm", "HTTPS_PROXY"), ("vllm", "https_proxy"), ("vllm", "HOME"),
     ("tgi", "MODEL_ID"), ("tgi", "REVISION"), ("tgi", "TRUST_REMOTE_CODE"),
     ("tgi", "HUGGINGFACE_HUB_CACHE"), ("tgi", "WEIGHTS_CACHE_OVERRIDE"), ("tgi", "PORT"),
     ("tgi", "LORA_ADAPTERS")],
)
def test_refused_env(runtime: str, name: str) -> None:
    with pytest.raises(OverrideRefusedError) as info:
        guard.check_env(runtime, [{"name": "OK_VAR", "value": "1"}, {"name": name, "value": "x"}])
    assert info.value.field == "spec.env[1].name"
    assert name in str(info.value)


@pytest.mark.parametrize(
    ("runtime", "name"),
    [("vllm", "VLLM_LOGGING_LEVEL"), ("vllm", "VLLM_CPU_KVCACHE_SPACE"), ("vllm", "NCCL_DEBUG"),
     ("vllm", "OMP_NUM_THREADS"), ("tgi", "NCCL_DEBUG"), ("tgi", "MAX_BATCH_SIZE")],
)
def test_allowed_env(runtime: str, name: str) -> None:
    guard.check_env(runtime, [{"name": name, "value": "1"}])


@pytest.mark.parametrize(
    ("image", "prefixes", "ok"),
    [
        (None, [], True),
        ("vllm/vllm-openai:v0.32.0", [], True),
        ("vllm/vllm-openai:v0.31.0", [], True),  # the same repository, another tag
        ("vllm/vllm-openai@sha256:" + "a" * 64, [], True),
        ("evil.example/vllm-openai:v0.32.0", [], False),
        ("vllm/vllm-openai-evil:v0.32.0", [], False),
        ("registry.corp/ml/vllm-openai:v0.32.0", ["registry.corp/ml/"], True),
        ("registry.corp/other/vllm:1", ["registry.corp/ml/"], False),
    ],
)
def test_image(image: str | None, prefixes: list[str], ok: bool) -> None:
    if ok:
        guard.check_image(image, "vllm/vllm-openai:v0.32.0", prefixes, "corp")
        return
    with pytest.raises(OverrideRefusedError) as info:
        guard.check_image(image, "vllm/vllm-openai:v0.32.0", prefixes, "corp")
    assert info.value.field == "spec.image" and "allowedImages" in str(info.value)


def test_image_repository() -> None:
    assert guard.image_repository("registry:5000/org/name:tag") == "registry:5000/org/name"
    assert guard.image_repository("registry:5000/org/name") == "registry:5000/org/name"
    assert guard.image_repository("name@sha256:abc") == "name"


def test_policy_lists_only_real_flags() -> None:
    """Every owned or refused flag is an option of the pinned engine (a typo would leave the real
    flag allowed); the facts files are checked against the engines themselves in tests/engines."""
    overrides = load_mapping("overrides.yaml")["runtimes"]
    for runtime, entry in overrides.items():
        known = guard.policy(runtime).flags
        for flag in (*entry.get("owned", {}), *entry.get("refused", {})):
            assert flag in known, f"{runtime}: {flag} is not an option of {runtime}"


def test_every_flag_kubellm_renders_is_owned() -> None:
    """What kubellm renders itself a user cannot set again (it would override it or conflict)."""
    from test_render_cases import cases

    from kubellm.runtimes import get_runtime

    for case in cases():
        try:
            container = get_runtime(case.runtime).container(case.context())
        except Exception:  # refused combinations render nothing
            continue
        pol = guard.policy(case.runtime)
        rendered = [a.split("=", 1)[0] for a in container["args"] if a.startswith("--")]
        for flag in rendered:
            if flag in case.context().spec.args:
                continue
            assert flag in pol.owned or flag in pol.refused or flag in pol.defaults, (
                f"{case.name}: kubellm renders {flag}, but a user could set it again")


def _llmd(**spec: Any) -> LLMDeployment:
    body = {"model": {"repo": "Qwen/Qwen2.5-7B-Instruct"}, **spec}
    return LLMDeployment.model_validate(
        {"metadata": {"name": "q", "namespace": "team-a"}, "spec": body})


def test_the_api_refuses_the_named_flags_at_admission() -> None:
    """The CRD (CEL) and the API models refuse owned/refused flags by exact name before any plan;
    the planner's guard covers the rest (tests above and below)."""
    from pydantic import ValidationError

    for args in (["--tokenizer", "mistralai/Mistral-Large-Instruct-2407"],
                 ["--model-id", "mistralai/Mistral-Large-Instruct-2407"]):
        with pytest.raises(ValidationError, match="not permitted"):
            _llmd(args=args)


@pytest.mark.parametrize(
    "spec",
    [
        {"args": ["--revis", SHA]},  # an abbreviation: past the CRD's exact names
        {"args": ["--enforce-eager", "mistralai/Mistral-Large-Instruct-2407"]},  # a 2nd model
        {"runtime": "tgi", "args": ["--max-batch-size=1 --model-id other/repo"]},  # word split
        {"env": [{"name": "HF_ENDPOINT", "value": "https://evil.example"}]},
        {"env": [{"name": "VLLM_USE_MODELSCOPE", "value": "true"}]},
        {"image": "evil.example/vllm:latest"},
    ],
)
def test_planner_refuses_bypass_with_nothing_created(spec: dict[str, Any]) -> None:
    from test_planner import facts

    plan = plan_deployment(_llmd(**spec), facts(), [], default_inventory())
    assert plan.refusal_reason == "NotPermitted", plan.refusal
    assert plan.objects == () and plan.serving_objects == () and plan.cache_objects == ()


def test_planner_takes_images_the_policy_allows() -> None:
    from test_planner import facts

    policy = LicensePolicy.model_validate(
        {"metadata": {"name": "corp"}, "spec": {"allowedImages": ["registry.corp/ml/"]}})
    llmd = _llmd(image="registry.corp/ml/vllm-openai:v0.32.0")
    plan = plan_deployment(llmd, facts(), [policy], default_inventory())
    assert plan.deployable, plan.refusal
    refused = plan_deployment(_llmd(image="registry.corp/other:1"), facts(), [policy],
                              default_inventory())
    assert refused.refusal_reason == "NotPermitted"
    assert "LicensePolicy corp allows registry.corp/ml/" in (refused.refusal or "")
