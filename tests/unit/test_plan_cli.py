"""`kubellm plan` end to end, as a user runs it: a fresh process, an offline HF cache or a
local server speaking the Hub API, the examples, and the exit codes (0 ok, 1 refused, 2 bad input).

huggingface_hub reads HF_HUB_OFFLINE / HF_ENDPOINT once at import, so every run is a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hubfixtures.cache import build_offline_cache
from hubfixtures.server import serve_hub

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
POLICY = str(EXAMPLES / "licensepolicy.yaml")
INVENTORY = str(EXAMPLES / "cluster" / "inventory.yaml")


@pytest.fixture(scope="module")
def offline_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("hf")
    hub = build_offline_cache(root)
    return _env(HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(hub), HF_HOME=str(root / "home"))


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(extra, HF_HUB_DISABLE_TELEMETRY="1", PYTHONPATH=str(ROOT / "operator"))
    return env


def plan(env: dict[str, str], *args: str, stdin: str | None = None) -> tuple[int, str, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "kubellm", "plan", *args],
        env=env,
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
    )
    return proc.returncode, proc.stdout, proc.stderr


def plan_json(env: dict[str, str], *args: str) -> tuple[int, Any]:
    code, out, err = plan(env, *args, "-o", "json")
    assert code in (0, 1), err
    return code, json.loads(out)


EXPECTED = {
    # example: (exit code, gpu type, gpus per replica, tp, runtime, refusal reason)
    "qwen2.5-7b-l4.yaml": (0, "NVIDIA-L4", 1, 1, "vllm", None),
    "qwen2.5-7b-tgi.yaml": (0, "NVIDIA-L4", 1, 1, "tgi", None),
    "llama-3.1-70b-awq-h100.yaml": (0, "NVIDIA-H100-80GB-HBM3", 1, 1, "vllm", None),
    "llama-3.3-70b-bf16-tp.yaml": (0, "NVIDIA-A100-SXM4-80GB", 4, 4, "vllm", None),
    "mistral-large-denied.yaml": (1, None, None, None, "vllm", "LicenseDenied"),
    "llama-3.3-70b-l4-does-not-fit.yaml": (1, None, None, None, "vllm", "DoesNotFit"),
}


def test_every_example_is_covered() -> None:
    names = {p.name for p in EXAMPLES.glob("*.yaml")} - {"licensepolicy.yaml"}
    assert names == set(EXPECTED)


@pytest.fixture(scope="module")
def all_examples(offline_env: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """One run over the whole examples/ directory (as a user would), indexed by file."""
    code, docs = plan_json(
        offline_env, "-f", str(EXAMPLES), "--policy", POLICY, "--inventory", INVENTORY
    )
    by_name = {d["name"]: d for d in docs}
    return code, by_name


NAMES = {
    "qwen2.5-7b-l4.yaml": "qwen-7b",
    "qwen2.5-7b-tgi.yaml": "qwen-7b-tgi",
    "llama-3.1-70b-awq-h100.yaml": "llama-70b-awq",
    "llama-3.3-70b-bf16-tp.yaml": "llama-70b",
    "mistral-large-denied.yaml": "mistral-large",
    "llama-3.3-70b-l4-does-not-fit.yaml": "llama-70b-on-l4",
}


@pytest.mark.parametrize("example", sorted(EXPECTED))
def test_examples_offline(all_examples: tuple[int, dict[str, Any]], example: str) -> None:
    doc = all_examples[1][NAMES[example]]
    want_code, gpu, count, tp, runtime, refusal = EXPECTED[example]
    assert doc["deployable"] is (want_code == 0), doc
    assert doc["model"]["source"] == "cache"
    assert len(doc["model"]["sha"]) == 40
    lic, sizing = doc["license"], doc["sizing"]
    for key in ("id", "class", "allowed", "reasons", "obligations", "openness"):
        assert key in lic
    for key in (
        "fits",
        "gpuType",
        "gpusPerReplica",
        "tensorParallelSize",
        "pipelineParallelSize",
        "maxModelLen",
        "weightsGiB",
        "kvCacheGiB",
        "overheadGiB",
        "perGpuGiB",
    ):
        assert key in sizing
    assert doc["runtime"] == runtime
    if refusal is None:
        assert doc["refusal"] is None and lic["allowed"] is True
        assert sizing["gpuType"] == gpu
        assert sizing["gpusPerReplica"] == count
        assert sizing["tensorParallelSize"] == tp
        assert sizing["perGpuGiB"] <= sizing["gpuMemoryGiB"]
        kinds = [o["kind"] for o in doc["objects"]]
        assert kinds == ["PersistentVolumeClaim", "Job", "Deployment", "Service"]
        deploy = doc["objects"][2]
        pod = deploy["spec"]["template"]["spec"]
        limits = pod["containers"][0]["resources"]["limits"]
        assert limits["nvidia.com/gpu"] in (count, str(count))
        assert gpu in json.dumps(pod["affinity"])
    else:
        assert doc["refusal"]["reason"] == refusal
        assert doc["objects"] == []
        if refusal == "LicenseDenied":
            assert lic["allowed"] is False
            assert any(r["effect"] == "deny" for r in lic["reasons"])
        else:  # DoesNotFit: the licence is fine, the GPUs are too small
            assert lic["allowed"] is True and sizing["fits"] is False


def test_one_example_alone_exits_by_its_own_verdict(offline_env: dict[str, str]) -> None:
    code, doc = plan_json(offline_env, "-f", str(EXAMPLES / "qwen2.5-7b-l4.yaml"))
    assert code == 0 and isinstance(doc, dict) and doc["name"] == "qwen-7b"


def test_several_deployments_give_a_list_and_worst_exit(
    all_examples: tuple[int, dict[str, Any]],
) -> None:
    code, by_name = all_examples
    assert code == 1  # the denied and the does-not-fit examples
    assert sorted(by_name) == sorted(NAMES.values())


def test_output_is_deterministic(offline_env: dict[str, str]) -> None:
    args = ("-f", str(EXAMPLES / "llama-3.3-70b-bf16-tp.yaml"), "-o", "yaml")
    first, second = plan(offline_env, *args), plan(offline_env, *args)
    assert first == second and first[0] == 0


def test_text_output_explains_the_decision(offline_env: dict[str, str]) -> None:
    code, out, _ = plan(
        offline_env, "-f", str(EXAMPLES / "mistral-large-denied.yaml"), "--policy", POLICY
    )
    assert code == 1
    assert "REFUSED (LicenseDenied)" in out
    assert "research-only" in out and "commercialUse" in out


def test_stdin_and_default_inventory(offline_env: dict[str, str]) -> None:
    text = (EXAMPLES / "qwen2.5-7b-l4.yaml").read_text()
    code, out, err = plan(offline_env, "-f", "-", "-o", "json", stdin=text)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["sizing"]["gpuType"] == "NVIDIA-L4"
    assert doc["license"]["policy"] is None  # no policy given: the documented defaults


def test_does_not_fit_refuses_with_numbers(offline_env: dict[str, str], tmp_path: Path) -> None:
    f = tmp_path / "big.yaml"
    f.write_text(
        "apiVersion: kubellm.io/v1alpha1\nkind: LLMDeployment\nmetadata: {name: big}\n"
        "spec:\n  model: {repo: meta-llama/Llama-3.3-70B-Instruct}\n  quantization: none\n"
        "  gpu: {type: NVIDIA-L4}\n  context: {maxModelLen: 8192}\n"
    )
    code, doc = plan_json(offline_env, "-f", str(f), "--inventory", INVENTORY)
    assert code == 1
    assert doc["refusal"]["reason"] == "DoesNotFit"
    assert doc["sizing"]["fits"] is False
    assert "GiB" in doc["refusal"]["message"]
    assert doc["objects"] == []


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (
            "apiVersion: kubellm.io/v1alpha1\nkind: LLMDeployment\nmetadata: {name: x}\n"
            "spec: {model: {repo: a/b}, gpu: {count: 0}}\n",
            "spec.gpu.count",
        ),
        ("a: [\n", "not valid YAML"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n", "no LLMDeployment"),
    ],
)
def test_bad_input_exits_2_without_traceback(
    offline_env: dict[str, str], tmp_path: Path, content: str, words: str
) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(content)
    code, _, err = plan(offline_env, "-f", str(f))
    assert code == 2
    assert words in err
    assert "Traceback" not in err


def test_bad_inventory_names_the_entry(offline_env: dict[str, str], tmp_path: Path) -> None:
    inv = tmp_path / "inv.yaml"
    inv.write_text("- gpuProduct: NVIDIA-L4\n  gpusPerNode: zero\n  nodes: 1\n")
    code, _, err = plan(
        offline_env, "-f", str(EXAMPLES / "qwen2.5-7b-l4.yaml"), "--inventory", str(inv)
    )
    assert code == 2
    assert "gpusPerNode" in err and "Traceback" not in err


def test_missing_file_exits_2(offline_env: dict[str, str]) -> None:
    code, _, err = plan(offline_env, "-f", "/nonexistent.yaml")
    assert code == 2 and "no such file" in err


def test_offline_cache_miss_is_explained(offline_env: dict[str, str], tmp_path: Path) -> None:
    f = tmp_path / "unknown.yaml"
    f.write_text(
        "apiVersion: kubellm.io/v1alpha1\nkind: LLMDeployment\nmetadata: {name: u}\n"
        "spec: {model: {repo: nobody/nothing}}\n"
    )
    code, doc = plan_json(offline_env, "-f", str(f))
    assert code == 1
    assert doc["refusal"]["reason"] == "ModelNotFound"
    assert "nobody/nothing" in doc["refusal"]["message"]


def test_declared_facts_plan_without_any_hub(tmp_path: Path) -> None:
    env = _env(HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(tmp_path / "empty"), HF_HOME=str(tmp_path))
    f = tmp_path / "declared.yaml"
    f.write_text(
        "apiVersion: kubellm.io/v1alpha1\nkind: LLMDeployment\nmetadata: {name: d}\n"
        "spec:\n  model: {repo: acme/private-7b, license: apache-2.0, parameters: 7B}\n"
        "  gpu: {type: l4}\n  context: {maxModelLen: 4096}\n  cache: {enabled: false}\n"
    )
    code, doc = plan_json(env, "-f", str(f))
    assert doc["model"]["source"] == "declared"
    assert "license" in doc["model"]["declared"]
    assert doc["license"]["class"] == "permissive"
    assert code == 0, doc


@pytest.fixture(scope="module")
def hub() -> Iterator[str]:
    with serve_hub() as server:
        yield server.endpoint


def test_online_against_a_local_hub(hub: str, tmp_path: Path) -> None:
    env = _env(HF_ENDPOINT=hub, HF_HOME=str(tmp_path), HF_TOKEN="hf_good")
    code, doc = plan_json(
        env, "-f", str(EXAMPLES / "llama-3.3-70b-bf16-tp.yaml"), "--inventory", INVENTORY
    )
    assert code == 0, doc
    assert doc["model"]["source"] == "hub"
    assert doc["license"]["id"] == "llama3.3"
    assert doc["sizing"]["gpusPerReplica"] == 4


def test_gated_without_token_is_refused_clearly(hub: str, tmp_path: Path) -> None:
    env = _env(HF_ENDPOINT=hub, HF_HOME=str(tmp_path))
    code, doc = plan_json(env, "-f", str(EXAMPLES / "llama-3.3-70b-bf16-tp.yaml"))
    assert code == 1
    assert doc["refusal"]["reason"] == "GatedModel"
    assert "token" in doc["refusal"]["message"]


def test_gated_research_model_without_token_is_denied_for_its_licence(
    hub: str, tmp_path: Path
) -> None:
    """The card of a gated repo is public: the licence decides before the missing token."""
    env = _env(HF_ENDPOINT=hub, HF_HOME=str(tmp_path))
    code, doc = plan_json(
        env, "-f", str(EXAMPLES / "mistral-large-denied.yaml"), "--policy", POLICY
    )
    assert code == 1
    assert doc["refusal"]["reason"] == "LicenseDenied"
    assert doc["license"]["class"] == "research-only"
