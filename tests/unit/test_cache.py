"""kubellm.cache: the file set, the content address, sizes, and the PVC / download Job."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from test_render_cases import (
    AWQ,
    BF16,
    GGUF_Q4,
    IMAGE,
    llama_8b,
    llama_8b_gguf,
    llama_70b,
    llama_70b_awq,
)

from kubellm.api.v1alpha1 import LLMDeploymentSpec
from kubellm.cache import (
    CacheRef,
    auto_size,
    cache_files,
    default_image,
    download_deadline_seconds,
    parse_quantity,
    plan_cache,
    render_download_job,
    render_pvc,
)
from kubellm.errors import SpecError, UnsupportedError
from kubellm.facts import ModelFacts, WeightFile
from kubellm.naming import cache_key
from kubellm.sizing.types import Quant

GIB = 1024**3


def spec(repo: str = "org/m", **kw: Any) -> LLMDeploymentSpec:
    return LLMDeploymentSpec.model_validate({"model": {"repo": repo}, **kw})


def facts_with(*files: tuple[str, int | None], **kw: Any) -> ModelFacts:
    return ModelFacts(
        repo="org/m", sha="a" * 40, weight_files=tuple(WeightFile(p, s) for p, s in files), **kw
    )


TEXT = ("*.jinja", "*.json", "*.model", "*.tiktoken", "*.txt")


@pytest.mark.parametrize(
    ("facts", "quant", "file", "expected"),
    [
        # Meta layout: original/*.pth is a duplicate, never cached
        (llama_8b(), BF16, None,
         tuple(sorted([*(f"model-0000{i}-of-00004.safetensors" for i in range(1, 5)), *TEXT]))),
        # Mistral layout: consolidated.safetensors duplicates the sharded weights
        (facts_with(("consolidated.safetensors", 14), ("model-00001-of-00002.safetensors", 9),
                    ("model-00002-of-00002.safetensors", 5)), BF16, None,
         tuple(sorted(["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors",
                       *TEXT]))),
        # file list unknown: the transformers naming convention
        (facts_with(), BF16, None, tuple(sorted(["model*.safetensors", *TEXT]))),
        # GGUF: the quant type picks the one file
        (llama_8b_gguf(), GGUF_Q4, None, ("Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf",)),
        (llama_8b_gguf(), GGUF_Q4, "Meta-Llama-3.1-8B-Instruct-Q8_0.gguf",
         ("Meta-Llama-3.1-8B-Instruct-Q8_0.gguf",)),
        # a split GGUF: every part
        (facts_with(("big/m-Q4_K_M-00002-of-00002.gguf", 1),
                    ("big/m-Q4_K_M-00001-of-00002.gguf", 1), ("m-Q8_0.gguf", 1)), GGUF_Q4, None,
         ("big/m-Q4_K_M-00001-of-00002.gguf", "big/m-Q4_K_M-00002-of-00002.gguf")),
        # a single GGUF needs no quant type
        (facts_with(("only.gguf", 1)), Quant("gguf", 5.0, True), None, ("only.gguf",)),
    ],
)  # fmt: skip
def test_cache_files(
    facts: ModelFacts, quant: Quant, file: str | None, expected: tuple[str, ...]
) -> None:
    assert cache_files(facts, quant, file=file) == expected


@pytest.mark.parametrize(
    ("facts", "quant", "file", "error", "fragment"),
    [
        (llama_8b_gguf(), GGUF_Q4, "nope.gguf", SpecError, "spec.model.file"),
        (llama_8b_gguf(), Quant("gguf", 5.0, True), None, SpecError, "set spec.model.file"),
        (facts_with(("pytorch_model.bin", 1)), BF16, None, UnsupportedError, "no safetensors"),
    ],
)
def test_cache_files_refusals(
    facts: ModelFacts, quant: Quant, file: str | None, error: type[Exception], fragment: str
) -> None:
    with pytest.raises(error) as info:
        cache_files(facts, quant, file=file)
    assert fragment in str(info.value)


def test_same_content_same_cache_whatever_the_deployment() -> None:
    a = plan_cache("team-a", llama_8b(), BF16, spec(llama_8b().repo), image=IMAGE)
    b = plan_cache("team-b", llama_8b(), BF16, spec(llama_8b().repo, replicas=3), image="x:2")
    assert a == b
    assert a.key == cache_key(llama_8b().repo, str(llama_8b().sha), a.files)
    other_rev = plan_cache(
        "team-a", replace(llama_8b(), sha="b" * 40), BF16, spec(llama_8b().repo), image=IMAGE
    )
    assert other_rev.key != a.key and other_rev.pvc_name != a.pvc_name


def test_plan_cache_paths() -> None:
    ref = plan_cache("ai", llama_8b(), BF16, spec(llama_8b().repo), image=IMAGE)
    assert ref.model_path == (
        "/models/models--meta-llama--Llama-3.1-8B-Instruct/snapshots/" + str(llama_8b().sha)
    )
    assert ref.complete_marker == f"/models/.kubellm/{ref.key}.complete"
    assert ref.weight_bytes == 16060556376  # the four shards, not the .pth duplicate
    assert ref.gguf_file is None
    g = plan_cache("ai", llama_8b_gguf(), GGUF_Q4, spec(llama_8b_gguf().repo), image=IMAGE)
    assert g.gguf_file == f"{g.model_path}/Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf"
    assert g.weight_bytes == 4920734016  # the chosen file only


@pytest.mark.parametrize(
    ("weight_bytes", "size"),
    [
        (16_060_556_376, "20Gi"),  # 8B bf16: 14.96 GiB x 1.2 + 2 = 19.95
        (4_920_734_016, "8Gi"),  # Q4_K_M: 4.58 x 1.2 + 2 = 7.50
        (141_000_000_000, "160Gi"),  # 70B bf16: 131.3 x 1.2 + 2 = 159.6
        (1, "3Gi"),  # just over 2 GiB
    ],
)
def test_auto_size(weight_bytes: int, size: str) -> None:
    assert auto_size(weight_bytes) == size
    assert parse_quantity(auto_size(weight_bytes)) >= weight_bytes * 1.2 + 2 * GIB


def test_explicit_size_and_unknown_bytes() -> None:
    facts = replace(llama_8b(), weight_files=(), weight_bytes=None)
    with pytest.raises(SpecError, match=r"spec\.cache\.size"):
        plan_cache("ai", facts, BF16, spec(facts.repo), image=IMAGE)
    ref = plan_cache("ai", facts, BF16, spec(facts.repo, cache={"size": "40Gi"}), image=IMAGE)
    assert ref.size == "40Gi" and ref.weight_bytes is None
    assert download_deadline_seconds(ref) == 1800 + -(-int(40 * GIB / 1.2) // (20 * 1024**2))


@pytest.mark.parametrize(
    ("text", "value"),
    [("200Gi", 200 * GIB), ("1.5Ti", int(1.5 * 1024**4)), ("500G", 500 * 10**9), ("10", 10)],
)
def test_parse_quantity(text: str, value: int) -> None:
    assert parse_quantity(text) == value


def test_pvc() -> None:
    ref = plan_cache("ai", llama_70b(), BF16, spec(llama_70b().repo), image=IMAGE)
    pvc = render_pvc(ref, "ai", spec(llama_70b().repo))
    assert pvc["spec"] == {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": ref.size}},
        "volumeMode": "Filesystem",
    }
    s = spec(llama_70b().repo, cache={"storageClassName": "nfs", "accessMode": "ReadWriteMany"})
    pvc = render_pvc(ref, "ai", s)
    assert pvc["spec"]["storageClassName"] == "nfs"
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pvc["metadata"]["labels"]["kubellm.io/cache-key"] == ref.key
    assert "kubellm.io/deployment" not in pvc["metadata"]["labels"]  # shared, not per deployment


def _job(facts: ModelFacts, quant: Quant, **kw: Any) -> tuple[CacheRef, dict[str, Any]]:
    s = spec(facts.repo, **kw)
    ref = plan_cache("ai", facts, quant, s, image=IMAGE)
    return ref, render_download_job(ref, "ai", facts, s, image=IMAGE)


def test_download_job_command() -> None:
    ref, job = _job(llama_70b_awq(), AWQ, hubTokenSecretRef={"name": "hf", "key": "tok"})
    c = job["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == IMAGE and c["command"] == ["kubellm"]
    args = c["args"]
    assert args[:5] == ["download", "--repo", llama_70b_awq().repo, "--revision", ref.revision]
    includes = [args[i + 1] for i, a in enumerate(args) if a == "--include"]
    assert tuple(includes) == ref.files
    assert args[args.index("--cache-dir") + 1] == "/models"
    assert args[args.index("--marker") + 1] == ref.key
    assert 10 <= int(args[args.index("--timeout") + 1]) <= 300  # per request, not the whole run
    assert int(args[args.index("--retries") + 1]) >= 1
    assert {
        "name": "HF_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": "hf", "key": "tok"}},
    } in c["env"]
    assert c["volumeMounts"][0] == {"name": "model-cache", "mountPath": "/models"}  # read-write
    vol = job["spec"]["template"]["spec"]["volumes"][0]
    assert vol == {"name": "model-cache", "persistentVolumeClaim": {"claimName": ref.pvc_name}}


@pytest.mark.parametrize(
    ("facts", "quant", "low", "high"),
    [
        (llama_8b_gguf(), GGUF_Q4, 1800 + 200, 1800 + 300),  # 4.9 GB at 20 MiB/s ~ 235 s
        (llama_70b(), BF16, 1800 + 6500, 1800 + 6800),  # 141 GB ~ 6724 s
    ],
)
def test_download_deadline_scales_with_bytes(
    facts: ModelFacts, quant: Quant, low: int, high: int
) -> None:
    _, job = _job(facts, quant)
    assert low <= job["spec"]["activeDeadlineSeconds"] <= high
    assert job["spec"]["backoffLimit"] >= 1
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def test_download_job_without_token_and_non_root() -> None:
    _, job = _job(llama_8b(), BF16)
    pod = job["spec"]["template"]["spec"]
    assert not any(e["name"] == "HF_TOKEN" for e in pod["containers"][0]["env"])
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["containers"][0]["securityContext"]["allowPrivilegeEscalation"] is False
    names = [e["name"] for e in pod["containers"][0]["env"]]
    assert names == sorted(names)


def test_download_job_uses_the_operators_hub_mirror() -> None:
    """A mirror (HF_ENDPOINT) the operator reads facts from is where the Job downloads from."""
    facts, s = llama_8b(), spec(llama_8b().repo)
    ref = plan_cache("ai", facts, BF16, s, image=IMAGE)
    plain = render_download_job(ref, "ai", facts, s, image=IMAGE)
    assert not any(e["name"] == "HF_ENDPOINT" for e in plain["spec"]["template"]["spec"]
                   ["containers"][0]["env"])
    mirrored = render_download_job(ref, "ai", facts, s, image=IMAGE,
                                   hub_endpoint="https://hf-mirror.internal")
    env = mirrored["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "HF_ENDPOINT", "value": "https://hf-mirror.internal"} in env
    assert [e["name"] for e in env] == sorted(e["name"] for e in env)


def test_default_image_is_the_kubellm_image_at_its_version() -> None:
    from kubellm import __version__

    assert default_image() == f"ghcr.io/kubellm/kubellm:{__version__}"
