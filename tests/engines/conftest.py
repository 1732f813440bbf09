"""One run of the real vLLM over everything kubellm renders for it (session-scoped: importing
vLLM takes tens of seconds, so every case goes through one checker process).

The engine environment comes from ``kubellm sandbox install --engines`` (scripts/setup.sh runs
it); when it is missing the engine tests fail and say so, they do not skip.
"""

from __future__ import annotations

import pytest
from vllm_cases import (
    BOGUS_FLAG,
    KV_VARIANTS,
    EngineRun,
    example_renderings,
    fixture_configs,
    golden_renderings,
    kv_case_name,
    link_snapshots,
    quantization_renderings,
    run_checker,
    seed_golden,
    witness_cases,
)

from kubellm.sandbox import engines
from kubellm.sandbox.errors import SandboxError


@pytest.fixture(scope="session")
def vllm_engine() -> engines.Engine:
    try:
        return engines.vllm()
    except SandboxError as exc:
        pytest.fail(str(exc))


@pytest.fixture(scope="session")
def engine_run(vllm_engine: engines.Engine, tmp_path_factory: pytest.TempPathFactory
               ) -> EngineRun:  # fmt: skip
    work = tmp_path_factory.mktemp("vllm")
    hub_root = work / "all"
    quant_hub, quants = quantization_renderings(hub_root)  # writes hub_root/hub
    example_hub, examples = example_renderings(work / "examples")
    link_snapshots(example_hub, quant_hub)
    goldens = golden_renderings()
    for rendered in goldens:
        if rendered.args is not None:
            seed_golden(quant_hub, rendered)
    renderings = {r.name: r for r in [*goldens, *examples, *quants]}
    fixtures = fixture_configs(work / "fixtures")

    cases = [r.case(quant_hub) for r in renderings.values() if r.args is not None]
    # The check always runs offline on the seeded cache (a pod without the shared cache would
    # download instead); the rest of the serving containers' env is applied as it is.
    offline = ("HF_HUB_CACHE", "HF_HUB_OFFLINE")
    envs = {tuple(sorted((k, v) for k, v in r.env.items() if k not in offline))
            for r in renderings.values() if r.args is not None}  # fmt: skip
    assert len(envs) == 1, f"serving containers differ in env: {envs}"
    pod_env = dict(next(iter(envs)))
    probe = next(c for c in cases if c["name"] == "vllm-bf16")
    cases.append({"name": "bogus-flag", "args": [*probe["args"], BOGUS_FLAG, "1"]})
    cases += witness_cases(quant_hub, probe["args"])
    for fixture, (snapshot, _config) in fixtures.items():
        for kv, tp, pp in KV_VARIANTS:
            cases.append({
                "name": kv_case_name(fixture, kv, tp, pp),
                "args": ["model", "--kv-cache-dtype", kv, "--tensor-parallel-size", str(tp),
                         "--pipeline-parallel-size", str(pp), "--skip-tokenizer-init"],
                "model_dir": str(snapshot),
                "engine_config": False,
            })  # fmt: skip
    result = run_checker(vllm_engine.python, cases, quant_hub, work, pod_env)
    return EngineRun(result["vllm"], renderings, fixtures, result["cases"],
                     work / "vllm-check.log")  # fmt: skip
