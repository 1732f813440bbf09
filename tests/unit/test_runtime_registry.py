"""One registry of runtimes: data/runtimes.yaml names them, and the code, the override guard,
the API enum, the CRD, the chart's values and schema all follow it (issue 13, item 1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from kubellm.api.v1alpha1 import LLMDeploymentSpec, runtime_names
from kubellm.crdgen import llmdeployment_crd
from kubellm.datafiles import load_mapping
from kubellm.runtimes import AUTO_ORDER, RUNTIMES
from kubellm.runtimes.base import Runtime
from kubellm.runtimes.catalog import runtime_infos

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "kubellm"


def catalogue() -> list[str]:
    return list(load_mapping("runtimes.yaml")["runtimes"])


def test_every_catalogue_runtime_has_a_module_and_an_override_policy() -> None:
    assert set(RUNTIMES) == set(catalogue()) == set(runtime_infos())
    assert set(load_mapping("overrides.yaml")["runtimes"]) == set(catalogue())


def test_auto_keeps_its_order_and_names_known_runtimes() -> None:
    assert AUTO_ORDER[:2] == ("vllm", "tgi")
    assert set(AUTO_ORDER) <= set(catalogue())


def test_api_enum_and_crd_enum_are_the_catalogue() -> None:
    assert runtime_names() == ("auto", *catalogue())
    spec = llmdeployment_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    runtime = spec["properties"]["spec"]["properties"]["runtime"]
    assert runtime["enum"] == list(runtime_names())
    for name in catalogue():
        assert name in runtime["description"]


def test_api_refuses_an_unknown_runtime_naming_the_known_ones() -> None:
    with pytest.raises(ValidationError, match="use one of auto, vllm, tgi"):
        LLMDeploymentSpec.model_validate({"model": {"repo": "a/b"}, "runtime": "tensorrt"})


def test_chart_values_and_schema_list_every_runtime() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert list(values["runtimes"]) == catalogue()
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert list(schema["properties"]["runtimes"]["properties"]) == catalogue()


def test_multi_node_runtimes_have_leader_and_worker_commands() -> None:
    for name, runtime in RUNTIMES.items():
        overrides = {h for h in ("leader_command", "worker_command")
                     if getattr(type(runtime), h) is not getattr(Runtime, h)}
        assert overrides == ({"leader_command", "worker_command"} if runtime.multi_node
                             else set()), name
