"""The facts the spec.args guard relies on are the pinned vLLM's own (marker ``engines``).

- ``data/vllm-serve.yaml`` equals what vLLM 0.32.0's parser says (a vLLM bump must regenerate it,
  and the diff shows every new flag for review against data/overrides.yaml);
- the bypasses the guard refuses are real in that parser (a refused flag that vLLM ignored would
  prove nothing): the last --tokenizer/--revision wins, abbreviations and underscores are taken,
  dotted keys reach the JSON flag, a second model crash-loops the pod;
- every VLLM_ variable overrides.yaml lets through exists in vLLM's envs.py;
- runtimes.yaml's vLLM capability table (what the sizer and the planner both use) equals vLLM's
  own QuantizationConfig.get_min_capability(), raised to the engine's floor.

One engine process answers everything (importing vLLM takes tens of seconds).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from kubellm.datafiles import load_mapping
from kubellm.runtimes import guard
from kubellm.sandbox import engines

pytestmark = pytest.mark.engines
SCRIPT = Path(__file__).with_name("vllm_flags.py")
DATA = Path(__file__).resolve().parents[2] / "operator" / "kubellm" / "data" / "vllm-serve.yaml"

BYPASSES: list[tuple[list[str], str, Any]] = [
    # args, the field they change, its value (or "error": the pod crash-loops)
    (["--tokenizer", "other/repo"], "tokenizer", "other/repo"),
    (["--revision", "a" * 40, "--revision", "b" * 40], "revision", "b" * 40),  # the last wins
    (["--revis", "c" * 40], "revision", "c" * 40),  # argparse takes the abbreviation
    (["--trust_remote_code"], "trust_remote_code", True),  # '_' == '-'
    (["--speculative-config.model", "org/draft"], "speculative_config", {"model": "org/draft"}),
    (["--model", "other/repo"], "error", "unrecognized arguments"),  # a second model
    (["--enforce-eager", "other/repo"], "error", "unrecognized arguments"),  # a stray value
]


@pytest.fixture(scope="module")
def report(vllm_engine: engines.Engine) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VLLM_", "PYTHON", "HF_"))}
    env.update(VLLM_TARGET_DEVICE="cpu", HF_HUB_OFFLINE="1")
    cases = json.dumps([args for args, _, _ in BYPASSES])
    proc = subprocess.run([str(vllm_engine.python), str(SCRIPT), "--report", cases], env=env,
                          text=True, capture_output=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return dict(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_flag_facts_equal_the_pinned_parser(report: dict[str, Any]) -> None:
    assert report["flags_yaml"] == DATA.read_text(encoding="utf-8"), (
        "operator/kubellm/data/vllm-serve.yaml is stale: regenerate it with "
        "tests/engines/vllm_flags.py --write and review new flags against overrides.yaml")


@pytest.mark.parametrize(("index", "case"), list(enumerate(BYPASSES)),
                         ids=[" ".join(a)[:40] for a, _, _ in BYPASSES])
def test_refused_flags_really_change_what_vllm_loads(report: dict[str, Any], index: int,
                                                      case: tuple[list[str], str, Any]) -> None:
    args, field, value = case
    got = report["parsed"][index]
    if field == "error":
        assert value in got.get("error", ""), got
    else:
        assert got[field] == value, got
    with pytest.raises(guard.OverrideRefusedError):
        guard.check_args("vllm", args)


def test_allowed_vllm_env_names_exist(report: dict[str, Any]) -> None:
    allowed = load_mapping("overrides.yaml")["runtimes"]["vllm"]["env"]["allowed"]
    assert set(allowed) <= set(report["envs"]), sorted(set(allowed) - set(report["envs"]))


#: kubellm's quantization -> the vLLM methods it may run as (on-the-fly fp8 is fp8_per_tensor).
VLLM_METHODS = {"fp8": ("fp8", "fp8_per_tensor"), "awq": ("awq",), "gptq": ("gptq",),
                "compressed-tensors": ("compressed-tensors",), "mxfp4": ("mxfp4",)}


def test_capability_table_is_vllms(report: dict[str, Any]) -> None:
    from kubellm.runtimes.catalog import runtime_info

    info = runtime_info("vllm")
    for method, names in VLLM_METHODS.items():
        vllm_min = max(report["min_capability"][n] for n in names)
        want = max(info.min_cc, divmod(vllm_min, 10))
        assert info.quantizations[method].min_cc == want, (method, vllm_min)
