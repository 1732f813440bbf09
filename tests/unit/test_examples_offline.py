"""The examples decide on real metadata: examples/hub-metadata holds every model the examples use
(and every base model their base_model chains reach), SOURCES.yaml accounts for every file, and
`kubellm plan -f examples/` over the cache seeded from it (HF_HUB_OFFLINE=1) gives each example
its intended decision: allowed and sized, LicenseDenied, or DoesNotFit with numbers.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from hubfixtures.cache import build_cache_from_metadata, metadata_sha, metadata_sources

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
META = EXAMPLES / "hub-metadata"
SHA = re.compile(r"^[0-9a-f]{40}$")

# example name -> (gpu type, gpus per replica, runtime) when deployable, else the refusal reason
EXPECTED: dict[str, tuple[str, int, str] | str] = {
    "qwen-7b": ("NVIDIA-L4", 1, "vllm"),
    "qwen-7b-tgi": ("NVIDIA-L4", 1, "tgi"),
    "llama-70b": ("NVIDIA-A100-SXM4-80GB", 4, "vllm"),
    "llama-70b-awq": ("NVIDIA-H100-80GB-HBM3", 1, "vllm"),
    "mistral-large": "LicenseDenied",
    "llama-70b-on-l4": "DoesNotFit",
}


def deployments() -> list[dict[str, Any]]:
    docs = []
    for path in sorted(EXAMPLES.glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d and d["kind"] ==
                 "LLMDeployment"]
    return docs


def front_matter(readme: Path) -> dict[str, Any]:
    text = readme.read_text(encoding="utf-8")
    assert text.startswith("---\n"), readme
    return dict(yaml.safe_load(text.split("---\n", 2)[1]))


def bases(card: dict[str, Any]) -> list[str]:
    value = card.get("base_model")
    return [value] if isinstance(value, str) else list(value or [])


def test_every_example_is_expected() -> None:
    assert sorted(d["metadata"]["name"] for d in deployments()) == sorted(EXPECTED)


def test_every_example_model_and_its_base_chain_is_present() -> None:
    sources = metadata_sources(META)
    todo = [d["spec"]["model"]["repo"] for d in deployments()]
    seen: set[str] = set()
    while todo:
        repo = todo.pop()
        if repo in seen:
            continue
        seen.add(repo)
        assert (META / repo / "README.md").is_file(), f"{repo}: no README.md in {META}"
        assert repo in sources, f"{repo}: missing from SOURCES.yaml"
        todo += bases(front_matter(META / repo / "README.md"))
    assert seen == set(sources), "SOURCES.yaml lists repos no example reaches"
    # the chains the licence engine walks
    assert bases(front_matter(META / "Qwen/Qwen2.5-7B-Instruct/README.md")) == ["Qwen/Qwen2.5-7B"]
    assert bases(front_matter(META / "meta-llama/Llama-3.3-70B-Instruct/README.md")) == [
        "meta-llama/Llama-3.1-70B"]


def test_sources_list_every_file_with_its_upstream() -> None:
    sources = metadata_sources(META)
    on_disk = {p.relative_to(META).as_posix() for p in META.rglob("*") if p.is_file()}
    listed = {f"{repo}/{name}" for repo, e in sources.items() for name in e["files"]}
    assert on_disk - {"SOURCES.yaml"} == listed
    for repo, entry in sources.items():
        assert entry["commit"] is None or SHA.match(entry["commit"]), repo
        for name, f in entry["files"].items():
            assert f["upstream"].startswith(f"https://huggingface.co/{repo}/blob/"), (repo, name)
            assert f["upstream"].endswith(f"/{name}"), (repo, name)
            assert f["verified"].strip(), (repo, name)


@pytest.mark.parametrize("repo", sorted(r for r in metadata_sources(META)
                                        if (META / r / "model.safetensors.index.json").is_file()))
def test_index_shards_are_consistent(repo: str) -> None:
    index = json.loads((META / repo / "model.safetensors.index.json").read_text())
    assert isinstance(index["metadata"]["total_size"], int)
    shards = set(index["weight_map"].values())
    n = len(shards)
    assert shards == {f"model-{i:05d}-of-{n:05d}.safetensors" for i in range(1, n + 1)}
    config = json.loads((META / repo / "config.json").read_text())
    layers = {int(k.split(".")[2]) for k in index["weight_map"] if k.startswith("model.layers.")}
    assert layers == set(range(config["num_hidden_layers"]))


def test_seeded_cache_layout(tmp_path: Path) -> None:
    hub = build_cache_from_metadata(tmp_path / "a", META)
    again = build_cache_from_metadata(tmp_path / "b", META)
    for repo, entry in metadata_sources(META).items():
        base = hub / ("models--" + repo.replace("/", "--"))
        sha = (base / "refs" / "main").read_text()
        assert SHA.match(sha), repr(sha)  # no trailing newline (hub-api.md §6)
        assert sha == (again / base.name / "refs" / "main").read_text()  # deterministic
        if entry["commit"]:
            assert sha == entry["commit"]
        for name in entry["files"]:
            assert (base / "snapshots" / sha / name).read_bytes() == (META / repo /
                                                                     name).read_bytes()


def test_derived_sha_changes_with_the_files(tmp_path: Path) -> None:
    repo = "x/y"
    (tmp_path / repo).mkdir(parents=True)
    (tmp_path / repo / "README.md").write_text("---\nlicense: mit\n---\n")
    first = metadata_sha(tmp_path, repo, {"commit": None})
    assert SHA.match(first) and first == metadata_sha(tmp_path, repo, {"commit": None})
    (tmp_path / repo / "README.md").write_text("---\nlicense: apache-2.0\n---\n")
    assert metadata_sha(tmp_path, repo, {"commit": None}) != first


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict[str, Any]]:
    home = tmp_path_factory.mktemp("hf")
    hub = build_cache_from_metadata(home, META)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(home), HF_HUB_CACHE=str(hub),
               HF_HUB_DISABLE_TELEMETRY="1", PYTHONPATH=str(ROOT / "operator"))
    proc = subprocess.run(
        [sys.executable, "-m", "kubellm", "plan", "-f", str(EXAMPLES), "--policy",
         str(EXAMPLES / "licensepolicy.yaml"), "--inventory",
         str(EXAMPLES / "cluster" / "inventory.yaml"), "-o", "json"],
        env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, {d["name"]: d for d in json.loads(proc.stdout)}


def test_plan_exits_1_for_the_refused_examples(planned: tuple[int, dict[str, Any]]) -> None:
    assert planned[0] == 1
    assert sorted(planned[1]) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_example_decision_on_real_metadata(planned: tuple[int, dict[str, Any]],
                                           name: str) -> None:
    doc = planned[1][name]
    repo = doc["model"]["repo"]
    entry = metadata_sources(META)[repo]
    assert doc["model"]["source"] == "cache"
    assert doc["model"]["sha"] == metadata_sha(META, repo, entry)
    want, sizing = EXPECTED[name], doc["sizing"]
    # weights per GPU come from the index's real total_size (x 1.02, split over tp x pp)
    total = json.loads((META / repo / "model.safetensors.index.json").read_text())
    gib = total["metadata"]["total_size"] / 2**30 * 1.02
    if isinstance(want, tuple):
        count = want[1]
        assert doc["refusal"] is None and doc["license"]["allowed"] is True
        assert (sizing["gpuType"], sizing["gpusPerReplica"], doc["runtime"]) == want
        assert sizing["tensorParallelSize"] * sizing["pipelineParallelSize"] == count
        assert sizing["weightsGiB"] == pytest.approx(gib / count, abs=0.01)
        assert [o["kind"] for o in doc["objects"]] == [
            "PersistentVolumeClaim", "Job", "Deployment", "Service"]
    elif want == "LicenseDenied":
        assert doc["refusal"]["reason"] == want and doc["objects"] == []
        assert doc["license"]["allowed"] is False
        assert doc["license"]["class"] == "research-only"
    else:
        assert doc["refusal"]["reason"] == "DoesNotFit" and doc["objects"] == []
        assert doc["license"]["allowed"] is True and sizing["fits"] is False
        message = doc["refusal"]["message"]
        assert f"{gib:.1f} weights" in message and "NVIDIA-L4" in message, message
