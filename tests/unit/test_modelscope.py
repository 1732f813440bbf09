"""ModelScope as a model source: facts and download through the real modelscope 1.40.2 client
against the fixture ModelScope (``hubfixtures.modelscope_server``), in this process; and the
same licence gate, sizing and cache as the same model from the Hugging Face Hub."""

from __future__ import annotations

import dataclasses
import json
import platform
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hubfixtures import build_offline_cache, get_repo
from hubfixtures.modelscope_server import ModelScopeServer, serve_modelscope
from kubellm.api.v1alpha1 import LicensePolicy, LLMDeployment, ModelSpec
from kubellm.errors import HubUnavailableError, ModelNotFoundError
from kubellm.facts import ModelFacts
from kubellm.modelinfo import FactsResolver, sources
from kubellm.modelinfo.download import DownloadRequest, download
from kubellm.modelinfo.modelscope import normalise_licence, prepare_environment
from kubellm.planner import plan_deployment
from kubellm.sizing import inventory_from_file

# The client's user agent reads platform.processor(), which runs `uname -p` once per process
# (then cached): run it at import, so the fast set's no-subprocess guard sees only HTTP.
platform.processor()

QWEN = "Qwen/Qwen2.5-7B-Instruct"
TINY = get_repo("kubellm-test/tiny-llama")
L4 = inventory_from_file([{"gpuProduct": "NVIDIA-L4", "gpusPerNode": 1, "nodes": 2}], "t")


@pytest.fixture
def ms(monkeypatch: pytest.MonkeyPatch) -> Iterator[ModelScopeServer]:
    prepare_environment(10.0)  # as the adapter does before the client's first import
    from modelscope_hub.config import set_default_config

    with serve_modelscope([QWEN, "Qwen/Qwen2.5-7B", "kubellm-test/tiny-llama",
                           "kubellm-test/tiny-gated", "meta-llama/Llama-3.1-8B-Instruct"],
                          revisions=["v1.0"]) as server:
        monkeypatch.setenv("MODELSCOPE_ENDPOINT", server.endpoint)
        monkeypatch.delenv("MODELSCOPE_API_TOKEN", raising=False)
        set_default_config(None)  # the client reads MODELSCOPE_ENDPOINT once per process
        yield server
    set_default_config(None)


def ms_facts(repo: str, revision: str = "master", token: str | None = None) -> ModelFacts:
    spec = ModelSpec.model_validate({"repo": repo, "source": "modelscope",
                                     **({"revision": revision} if revision else {})})
    return FactsResolver().resolve(repo, spec.revision, declared=spec, token=token)


def hf_facts(tmp_path: Path, repo: str) -> ModelFacts:
    """The same repo's facts from an HF cache (in this process; the Hub client reads
    HF_ENDPOINT once per process), with its base model's licence as the resolver adds it."""
    cache = build_offline_cache(tmp_path / "hf", [repo, "Qwen/Qwen2.5-7B"])
    found = sources.from_cache(repo, "main", gguf_file=None, cache=cache)
    base = sources.from_cache("Qwen/Qwen2.5-7B", "main", gguf_file=None, cache=cache)
    assert found is not None and base is not None
    return dataclasses.replace(found, base_models=tuple(
        dataclasses.replace(b, license=base.license, resolved=True) for b in found.base_models))


def test_facts_through_the_real_client(ms: ModelScopeServer, tmp_path: Path) -> None:
    facts = ms_facts(QWEN)
    hf = hf_facts(tmp_path, QWEN)
    assert facts.license == "apache-2.0"  # "Apache License 2.0" on ModelScope
    assert facts.sha is None and facts.revision == "master"
    assert facts.weight_files == hf.weight_files and facts.weight_bytes == hf.weight_bytes
    assert facts.architecture == hf.architecture
    assert [b.repo for b in facts.base_models] == ["Qwen/Qwen2.5-7B"]
    assert facts.base_models[0].license == "apache-2.0" and facts.base_models[0].resolved
    paths = {p.split("?")[0] for _, p, _ in ms.requests}
    assert paths >= {f"/openapi/v1/models/{QWEN}", f"/api/v1/models/{QWEN}/repo/files",
                     f"/api/v1/models/{QWEN}/repo"}
    fetched = sorted(p.split("FilePath=")[1] for _, p, _ in ms.requests if "FilePath=" in p
                     and QWEN in p)
    assert fetched == ["README.md", "config.json", "model.safetensors.index.json"]


def test_unset_revision_is_master_and_a_tag_works(ms: ModelScopeServer) -> None:
    assert ms_facts(QWEN, revision="").revision == "master"
    assert ms_facts(QWEN, revision="v1.0").revision == "v1.0"


@pytest.mark.parametrize(("text", "expected"), [
    ("Apache License 2.0", "apache-2.0"), ("apache-2.0", "apache-2.0"), ("MIT License", "mit"),
    ("llama3.1", "llama3.1"), ("Some Own Licence", "some-own-licence"), ("", None), (None, None),
])
def test_licence_strings_are_normalised_to_the_catalogue(text: str | None,
                                                         expected: str | None) -> None:
    assert normalise_licence(text) == expected


def test_errors_are_kubellms(ms: ModelScopeServer) -> None:
    with pytest.raises(ModelNotFoundError, match="not found on ModelScope"):
        ms_facts("nobody/nothing")
    with pytest.raises(ModelNotFoundError, match=r"spec\.model\.revision"):
        ms_facts(QWEN, revision="no-such-branch")
    ms.fail = "500"
    with pytest.raises(HubUnavailableError, match="temporary"):
        ms_facts(QWEN)


def test_gated_without_token_keeps_the_public_facts(ms: ModelScopeServer) -> None:
    public = ms_facts("kubellm-test/tiny-gated")
    assert public.access_error is not None and "MODELSCOPE_API_TOKEN" in public.access_error
    assert public.license == "llama3.1" and public.gated == "manual"
    full = ms_facts("kubellm-test/tiny-gated", token="ms_good")
    assert full.access_error is None and full.architecture is not None
    assert any(t == "ms_good" for _, _, t in ms.requests)


def llmd(source: str | None, **spec: Any) -> LLMDeployment:
    model = {"repo": QWEN, **({"source": source} if source else {})}
    return LLMDeployment.model_validate(
        {"metadata": {"name": "qwen", "namespace": "team-a"}, "spec": {"model": model, **spec}})


def test_same_licence_gate_sizing_and_cache_as_the_hub(ms: ModelScopeServer,
                                                       tmp_path: Path) -> None:
    facts, hf = ms_facts(QWEN), hf_facts(tmp_path, QWEN)
    plan = plan_deployment(llmd("modelscope"), facts, [], L4)
    ref = plan_deployment(llmd(None), hf, [], L4)
    assert plan.deployable and ref.deployable
    assert (plan.license.decision, plan.license.license, plan.license.obligations) == \
        (ref.license.decision, ref.license.license, ref.license.obligations)
    assert plan.sizing is not None and ref.sizing is not None
    assert (plan.sizing.gpu_type, plan.sizing.gpus_per_replica, plan.sizing.max_model_len) == \
        (ref.sizing.gpu_type, ref.sizing.gpus_per_replica, ref.sizing.max_model_len)
    assert plan.cache is not None and ref.cache is not None
    assert plan.cache.size == ref.cache.size and plan.cache.files == ref.cache.files
    assert plan.cache.key != ref.cache.key  # never shared with the Hub's repo of that name
    snap = f"/models/models/{QWEN.replace('/', '--')}/snapshots/master"
    assert plan.cache.model_path == snap
    job = next(o for o in plan.objects if o["kind"] == "Job")
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"][-2:] == ["--source", "modelscope"]
    assert all(not e["name"].startswith("HF_") for e in container["env"])
    # the Job downloads from the endpoint the facts were read from (a mirror)
    assert {"name": "MODELSCOPE_ENDPOINT", "value": ms.endpoint} in container["env"]
    serving = next(o for o in plan.serving_objects if o["kind"] == "Deployment")
    assert serving["spec"]["template"]["spec"]["containers"][0]["args"][0] == snap

    deny = LicensePolicy.model_validate({"metadata": {"name": "corp"},
                                         "spec": {"deniedLicenses": ["apache-2.0"]}})
    denied = plan_deployment(llmd("modelscope"), facts, [deny], L4)
    assert denied.refusal_reason == "LicenseDenied" and denied.objects == ()
    assert plan_deployment(llmd(None), hf, [deny], L4).refusal_reason == "LicenseDenied"


def test_served_by_path_needs_the_cache(ms: ModelScopeServer) -> None:
    plan = plan_deployment(llmd("modelscope", cache={"enabled": False}), ms_facts(QWEN), [], L4)
    assert plan.refusal_reason == "InvalidSpec" and "spec.cache.enabled" in (plan.refusal or "")


def test_download_through_the_real_client(ms: ModelScopeServer, tmp_path: Path) -> None:
    cache = tmp_path / "models"
    req = DownloadRequest(repo=TINY.repo_id, revision="master", source="modelscope",
                          cache_dir=cache, marker="k1", retries=0, progress_interval=0)
    lines: list[str] = []
    done = download(req, log=lines.append)
    snap = cache / "models" / "kubellm-test--tiny-llama" / "snapshots" / "master"
    assert done.snapshot == snap and not done.skipped
    assert sorted(p for p, _ in done.files) == sorted(f.path for f in TINY.all_files())
    for f in TINY.all_files():
        assert (snap / f.path).read_bytes() == f.read()
    body = json.loads((cache / ".kubellm" / "k1.complete").read_text())
    assert body["source"] == "modelscope" and body["revision"] == "master"
    before = len(ms.requests)
    again = download(req, log=lines.append)
    assert again.skipped and len(ms.requests) == before  # complete: no request at all


def test_download_include_and_failures(ms: ModelScopeServer, tmp_path: Path) -> None:
    cache = tmp_path / "models"
    req = DownloadRequest(repo=TINY.repo_id, source="modelscope", revision="master",
                          include=("*.json",), cache_dir=cache, retries=1, backoff=0.01,
                          progress_interval=0)
    done = download(req, log=lambda _: None)
    assert done.files and all(p.endswith(".json") for p, _ in done.files)
    with pytest.raises(ModelNotFoundError):
        download(DownloadRequest(repo="nobody/nothing", source="modelscope", revision="master",
                                 cache_dir=cache, retries=0), log=lambda _: None)
    ms.fail = "500"
    waits: list[float] = []
    with pytest.raises(HubUnavailableError, match="giving up after 2 attempts"):
        download(DownloadRequest(repo=TINY.repo_id, source="modelscope", revision="master",
                                 cache_dir=tmp_path / "other", retries=1, backoff=0.01),
                 log=lambda _: None, sleep=waits.append)
    assert waits == [0.01]


def test_kubellm_download_cli(ms: ModelScopeServer, tmp_path: Path) -> None:
    """``kubellm download --source modelscope`` as the download Job runs it (its own process)."""
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "MODELSCOPE_ENDPOINT": ms.endpoint,
           "PYTHONPATH": str(root / "operator")}
    cache = tmp_path / "models"
    args = [sys.executable, "-m", "kubellm", "download", "--source", "modelscope", "--repo",
            TINY.repo_id, "--cache-dir", str(cache), "--marker", "key1", "--retries", "0"]
    first = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120,
                           check=False)
    assert first.returncode == 0, first.stderr
    assert "complete" in first.stdout
    snap = cache / "models" / "kubellm-test--tiny-llama" / "snapshots" / "master"
    assert (snap / "model.safetensors").read_bytes() == \
        TINY.file("model.safetensors").read()  # type: ignore[union-attr]
    missing = subprocess.run([*args[:7], "nobody/nothing", *args[8:]], capture_output=True,
                             text=True, env=env, timeout=120, check=False)
    assert missing.returncode == 2 and "not found on ModelScope" in missing.stderr
