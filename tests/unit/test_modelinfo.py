"""kubellm.modelinfo.resolve against the fake Hub (online) and a hand-made HF cache (offline).

huggingface_hub fixes HF_ENDPOINT / HF_HUB_OFFLINE / HF_HUB_CACHE when it is first imported, so
every mode runs in its own subprocess (``hubfixtures.driver``): one process resolves a whole batch
of calls, and the tests below look the answers up. The expected values are written by hand from
the published checkpoints (sizing_cases.json GiB, licences.md), not computed from the fixtures.
"""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path
from typing import Any

import pytest

from hubfixtures import build_offline_cache, get_repo, serve_hub
from hubfixtures.driver import run_resolve

GiB = 2**30
TOKEN = "hf_good"

# repo: (license, license_name, gated, GiB, parameters (B) or None, quant method, bits,
#        [(base, relation, base licence or None if unresolvable)], multimodal, weight files)
EXPECTED: dict[str, tuple[Any, ...]] = {
    "meta-llama/Llama-3.1-8B-Instruct": (
        "llama3.1", None, "auto", 14.96, 8.03, None, None,
        [("meta-llama/Llama-3.1-8B", "finetune", "llama3.1")], False, 4),
    "meta-llama/Llama-3.3-70B-Instruct": (
        "llama3.3", None, "auto", 131.42, 70.55, None, None,
        [("meta-llama/Llama-3.1-70B", "finetune", None)], False, 30),
    "meta-llama/Llama-3.2-11B-Vision-Instruct": (
        "llama3.2", None, "manual", 19.9, 10.67, None, None,
        [("meta-llama/Llama-3.2-11B-Vision", "finetune", None)], True, 5),
    "hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4": (
        "llama3.1", None, None, 37.0, 70.55, "awq", 4.0,
        [("meta-llama/Llama-3.1-70B-Instruct", "quantized", "llama3.1")], False, 9),
    "neuralmagic/Meta-Llama-3.1-70B-Instruct-FP8": (
        "llama3.1", None, None, 67.7, 70.55, "compressed-tensors", 8.0,
        [("meta-llama/Llama-3.1-70B-Instruct", "quantized", "llama3.1")], False, 15),
    "hugging-quants/Meta-Llama-3.1-8B-Instruct-GPTQ-INT4": (
        "llama3.1", None, None, 5.3, 8.03, "gptq", 4.0,
        [("meta-llama/Llama-3.1-8B-Instruct", "quantized", "llama3.1"),
         ("meta-llama/Llama-3.1-8B", "finetune", "llama3.1")], False, 2),
    "bartowski/Meta-Llama-3.1-8B-Instruct-GGUF": (
        "llama3.1", None, None, 4.58, None, "gguf", 4.8944,
        [("meta-llama/Llama-3.1-8B-Instruct", "quantized", "llama3.1"),
         ("meta-llama/Llama-3.1-8B", "finetune", "llama3.1")], False, 1),
    "Qwen/Qwen2.5-7B-Instruct": (
        "apache-2.0", None, None, 14.19, 7.62, None, None,
        [("Qwen/Qwen2.5-7B", "finetune", "apache-2.0")], False, 4),
    "Qwen/Qwen2.5-72B-Instruct": (
        "other", "qwen", None, 135.4, 72.7, None, None,
        [("Qwen/Qwen2.5-72B", "finetune", None)], False, 31),
    "deepseek-ai/DeepSeek-R1-Distill-Llama-8B": (
        "mit", None, None, 14.96, 8.03, None, None,
        [("meta-llama/Llama-3.1-8B", "finetune", "llama3.1")], False, 4),
    "mistralai/Mistral-Large-Instruct-2407": (
        "other", "mrl", "auto", 228.4, 122.6, None, None, [], False, 51),
    "allenai/OLMo-2-1124-7B": ("apache-2.0", None, None, 27.2, 7.30, None, None, [], False, 6),
    "microsoft/Phi-3-mini-4k-instruct": ("mit", None, None, 7.12, 3.82, None, None, [], False, 2),
    "deepseek-ai/DeepSeek-V2-Lite-Chat": (
        "other", "deepseek", None, 29.26, 15.71, None, None, [], False, 8),
}
CALLS = [{"repo": r, "token": TOKEN} for r in EXPECTED]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def online(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One process resolving every case against the fake Hub."""
    home = tmp_path_factory.mktemp("hfhome")
    extra: list[dict[str, Any]] = [
        {"repo": "meta-llama/Llama-3.1-8B-Instruct"},  # no token
        {"repo": "meta-llama/Llama-3.1-8B-Instruct", "token": "hf_wrong"},
        {"repo": "nobody/missing", "token": TOKEN},
        {"repo": "Qwen/Qwen2.5-7B-Instruct", "revision": "v9.9", "token": TOKEN},
        {"repo": "Qwen/Qwen2.5-7B-Instruct", "revision": get_repo("Qwen/Qwen2.5-7B-Instruct").sha},
        {"repo": "bartowski/Meta-Llama-3.1-8B-Instruct-GGUF",
         "gguf_file": "Meta-Llama-3.1-8B-Instruct-Q8_0.gguf"},
        {"repo": "bartowski/Meta-Llama-3.1-8B-Instruct-GGUF", "gguf_file": "nope-Q4_K_M.gguf"},
        {"repo": "bartowski/Meta-Llama-3.1-8B-Instruct-GGUF",
         "declared": {"repo": "bartowski/Meta-Llama-3.1-8B-Instruct-GGUF", "parameters": "8B",
                      "license": "mit"}},
        {"repo": "deepseek-ai/DeepSeek-R1-Distill-Llama-8B", "follow_base": False},
    ]
    with serve_hub(tokens={TOKEN}) as hub:
        env = {"HF_ENDPOINT": hub.endpoint, "HF_HOME": str(home)}
        results = run_resolve(CALLS + extra, env)
        # Without the Hub's counts and cardData the client reads shard headers and README.md.
        hub.drop_info_fields = {"safetensors", "cardData"}
        headers = run_resolve([{"repo": "hugging-quants/Meta-Llama-3.1-8B-Instruct-GPTQ-INT4"},
                               {"repo": "Qwen/Qwen2.5-7B-Instruct"}],
                              {**env, "HF_HUB_CACHE": str(home / "other")})
    by_repo = {c["repo"]: r for c, r in zip(CALLS, results[: len(CALLS)], strict=True)}
    return {"by_repo": by_repo, "extra": results[len(CALLS):], "headers": headers}


def _check(facts: dict[str, Any], repo: str, *, offline: bool = False) -> None:
    lic, name, gated, gib, params_b, qmethod, qbits, bases, mm, nfiles = EXPECTED[repo]
    assert facts["repo"] == repo
    assert (facts["license"], facts["license_name"]) == (lic, name)
    assert facts["gated"] == (None if offline else gated)
    assert facts["weight_bytes"] / GiB == pytest.approx(gib, rel=0.01)
    if params_b is None:
        assert facts["parameters"] is None
    else:
        assert facts["parameters"] / 1e9 == pytest.approx(params_b, rel=0.005)
    quant = (facts["architecture"] or {}).get("quantization")
    assert (quant and quant["method"], quant and quant["bits"]) == (qmethod, qbits)
    got_bases = [(b["repo"], b["relation"], b["license"] if b["resolved"] else None)
                 for b in facts["base_models"]]
    # Offline there are no Hub tags: relations are inferred and must agree with the tags.
    assert got_bases == list(bases)
    assert facts["architecture"]["multimodal"] is mm
    assert len(facts["weight_files"]) == nfiles
    assert all(w["size"] and w["size"] > 0 for w in facts["weight_files"])
    assert facts["sha"] == get_repo(repo).sha
    assert facts["source"] == ("cache" if offline else "hub")


@pytest.mark.parametrize("repo", sorted(EXPECTED))
def test_online_facts(online: dict[str, Any], repo: str) -> None:
    result = online["by_repo"][repo]
    assert "facts" in result, result
    _check(result["facts"], repo)


def test_online_architecture_details(online: dict[str, Any]) -> None:
    llama = online["by_repo"]["meta-llama/Llama-3.3-70B-Instruct"]["facts"]["architecture"]
    assert (llama["num_hidden_layers"], llama["num_attention_heads"],
            llama["num_key_value_heads"], llama["hidden_size"], llama["intermediate_size"],
            llama["vocab_size"], llama["max_position_embeddings"], llama["torch_dtype"]) == (
        80, 64, 8, 8192, 28672, 128256, 131072, "bfloat16")
    vision = online["by_repo"]["meta-llama/Llama-3.2-11B-Vision-Instruct"]["facts"]
    assert vision["architecture"]["num_hidden_layers"] == 40  # text_config
    assert vision["eu_disallowed"] is True
    v2 = online["by_repo"]["deepseek-ai/DeepSeek-V2-Lite-Chat"]["facts"]["architecture"]
    assert (v2["num_experts"], v2["num_experts_per_tok"], v2["kv_lora_rank"],
            v2["qk_rope_head_dim"]) == (64, 6, 512, 64)
    olmo = online["by_repo"]["allenai/OLMo-2-1124-7B"]["facts"]
    assert olmo["datasets"] == ["allenai/olmo-mix-1124", "allenai/dolmino-mix-1124"]
    assert olmo["architecture"]["torch_dtype"] == "float32"
    qwen = online["by_repo"]["Qwen/Qwen2.5-7B-Instruct"]["facts"]
    assert (qwen["library_name"], qwen["pipeline_tag"]) == ("transformers", "text-generation")
    assert "license:apache-2.0" in qwen["tags"]
    gguf = online["by_repo"]["bartowski/Meta-Llama-3.1-8B-Instruct-GGUF"]["facts"]
    assert gguf["weight_files"][0]["path"] == "Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf"
    assert gguf["architecture"]["quantization"]["raw"] == {"type": "Q4_K_M"}


@pytest.mark.parametrize(
    ("index", "error", "needle"),
    [
        (2, "ModelNotFoundError", "nobody/missing not found"),
        (3, "ModelNotFoundError", "revision 'v9.9'"),
        (6, "SpecError", "spec.model.file"),
    ],
)
def test_online_errors(online: dict[str, Any], index: int, error: str, needle: str) -> None:
    result = online["extra"][index]
    assert result.get("error") == error, result
    assert needle in result["message"]


@pytest.mark.parametrize(("index", "needle"), [(0, "spec.hubTokenSecretRef"),
                                              (1, "accepted the terms")])
def test_gated_without_usable_token_keeps_the_public_card(
    online: dict[str, Any], index: int, needle: str
) -> None:
    """The licence of a gated repo is public: it is read, the files are not (access_error)."""
    result = online["extra"][index]
    assert "error" not in result, result
    facts = result["facts"]
    assert needle in facts["access_error"]
    assert (facts["license"], facts["gated"]) == ("llama3.1", "auto")
    assert facts["architecture"] is None  # config.json needs the token; file sizes are public


def test_gated_with_the_token_has_no_access_error(online: dict[str, Any]) -> None:
    facts = online["by_repo"]["meta-llama/Llama-3.1-8B-Instruct"]["facts"]
    assert facts["access_error"] is None and facts["architecture"] is not None


def test_online_pinned_sha_gguf_choice_declared_and_no_follow(online: dict[str, Any]) -> None:
    extra = online["extra"]
    pinned, q8 = extra[4]["facts"], extra[5]["facts"]
    declared, nofollow = extra[7]["facts"], extra[8]["facts"]
    assert pinned["sha"] == pinned["revision"] == get_repo("Qwen/Qwen2.5-7B-Instruct").sha
    assert [w["path"] for w in q8["weight_files"]] == ["Meta-Llama-3.1-8B-Instruct-Q8_0.gguf"]
    assert q8["architecture"]["quantization"]["bits"] == pytest.approx(8.5008)
    assert q8["weight_bytes"] / GiB == pytest.approx(7.95, rel=0.01)
    # The Hub's licence wins over a declared one; the missing parameter count is filled.
    assert (declared["license"], declared["parameters"], declared["declared"]) == (
        "llama3.1", 8_000_000_000, ["parameters"])
    assert [(b["repo"], b["resolved"]) for b in nofollow["base_models"]] == [
        ("meta-llama/Llama-3.1-8B", False)]


def test_online_reads_shard_headers_when_hub_omits_counts(online: dict[str, Any]) -> None:
    gptq, qwen = (r["facts"] for r in online["headers"])
    _check(gptq, "hugging-quants/Meta-Llama-3.1-8B-Instruct-GPTQ-INT4")
    _check(qwen, "Qwen/Qwen2.5-7B-Instruct")


# ---------------------------------------------------------------- Hub unavailable


@pytest.mark.parametrize("mode", ["500", "hang", "down"])
def test_hub_unavailable(tmp_path: Path, mode: str) -> None:
    with serve_hub(tokens={TOKEN}) as hub:
        endpoint = hub.endpoint
        if mode == "down":
            endpoint = f"http://127.0.0.1:{_free_port()}"
        hub.fail = None if mode == "down" else mode
        hub.hang_seconds = 3.0
        env = {"HF_ENDPOINT": endpoint, "HF_HOME": str(tmp_path),
               "KUBELLM_TEST_TIMEOUT": "0.5"}
        (result,) = run_resolve([{"repo": "Qwen/Qwen2.5-7B-Instruct"}], env)
    assert result.get("error") == "HubUnavailableError", result
    assert result["reason"] == "HubUnavailable"
    assert endpoint in result["message"]


def test_a_pushed_commit_becomes_main_and_the_earlier_one_stays_pinnable(tmp_path: Path) -> None:
    earlier = get_repo("Qwen/Qwen2.5-7B-Instruct")
    later = dataclasses.replace(earlier, commit="2")
    assert later.sha != earlier.sha
    with serve_hub(tokens={TOKEN}) as hub:
        hub.push(later)
        calls = [{"repo": earlier.repo_id}, {"repo": earlier.repo_id, "revision": earlier.sha},
                 {"repo": earlier.repo_id, "revision": later.sha}]
        head, pinned, pinned_later = run_resolve(
            calls, {"HF_ENDPOINT": hub.endpoint, "HF_HOME": str(tmp_path)})
    assert head["facts"]["sha"] == pinned_later["facts"]["sha"] == later.sha
    assert pinned["facts"]["sha"] == earlier.sha


def test_hub_down_falls_back_to_cache(tmp_path: Path) -> None:
    cache = build_offline_cache(tmp_path, ["Qwen/Qwen2.5-7B-Instruct", "Qwen/Qwen2.5-7B"])
    env = {"HF_ENDPOINT": f"http://127.0.0.1:{_free_port()}", "HF_HUB_CACHE": str(cache),
           "HF_HOME": str(tmp_path)}
    (result,) = run_resolve([{"repo": "Qwen/Qwen2.5-7B-Instruct"}], env)
    _check(result["facts"], "Qwen/Qwen2.5-7B-Instruct", offline=True)


# ---------------------------------------------------------------- offline (HF_HUB_OFFLINE=1)


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    root = tmp_path_factory.mktemp("offline")
    cache = build_offline_cache(root)
    calls: list[dict[str, Any]] = [
             *CALLS,
             {"repo": "nobody/missing"},
             {"repo": "nobody/missing",
              "declared": {"repo": "nobody/missing", "license": "apache-2.0",
                           "parameters": "7B", "base_model": "Qwen/Qwen2.5-7B"}},
             {"repo": "Qwen/Qwen2.5-7B-Instruct", "revision": get_repo("Qwen/Qwen2.5-7B").sha}]
    env = {"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "HF_HOME": str(root),
           "HF_ENDPOINT": "http://127.0.0.1:9"}  # would fail if anything were requested
    return run_resolve(calls, env)


@pytest.mark.parametrize("index", range(len(CALLS)))
def test_offline_facts_match_online(offline: list[dict[str, Any]], index: int) -> None:
    repo = CALLS[index]["repo"]
    assert "facts" in offline[index], offline[index]
    _check(offline[index]["facts"], repo, offline=True)


def test_offline_cache_miss(offline: list[dict[str, Any]]) -> None:
    miss, declared, wrong_sha = offline[len(CALLS):]
    assert miss["error"] == "ModelNotFoundError"
    assert "offline" in miss["message"] and "kubellm download" in miss["message"]
    facts = declared["facts"]
    assert (facts["source"], facts["license"], facts["parameters"]) == (
        "declared", "apache-2.0", 7_000_000_000)
    assert facts["declared"] == ["license", "parameters", "base_models"]
    assert [(b["repo"], b["license"], b["resolved"]) for b in facts["base_models"]] == [
        ("Qwen/Qwen2.5-7B", "apache-2.0", True)]
    assert wrong_sha["error"] == "ModelNotFoundError"  # a sha of another repo is a miss
