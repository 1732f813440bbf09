"""The Argo CD health checks in deploy/argocd/ run on a real Lua 5.1 runtime (lupa).

Argo CD evaluates health scripts with gopher-lua, a Lua 5.1 implementation, with only the
base/table/string/math libraries; the runtime here is PUC Lua 5.1 with the same libraries, and
the object is handed over as nested tables like Argo CD does (global ``obj``).
The expected results live in deploy/argocd/health_test.yaml (Argo CD's own table format).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubellm import errors
from kubellm.api.v1alpha1 import LLMDeployment

lua51 = pytest.importorskip("lupa.lua51", reason="lupa (dev extra) provides the Lua 5.1 runtime")

ROOT = Path(__file__).resolve().parents[2]
ARGOCD = ROOT / "deploy" / "argocd"
HEALTH_LUA = ARGOCD / "health.lua"
POLICY_LUA = ARGOCD / "licensepolicy-health.lua"
TABLE = yaml.safe_load((ARGOCD / "health_test.yaml").read_text())["tests"]
STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}


def _to_lua(runtime: Any, value: Any) -> Any:
    if isinstance(value, dict):
        return runtime.table_from({k: _to_lua(runtime, v) for k, v in value.items()})
    if isinstance(value, list):
        return runtime.table_from([_to_lua(runtime, v) for v in value])
    return value


def run_health(script: Path, obj: dict[str, Any]) -> dict[str, Any]:
    """Run a health script the way Argo CD does: global ``obj``, a returned table."""
    runtime = lua51.LuaRuntime(register_eval=False, register_builtins=False)
    g = runtime.globals()
    for unsafe in ("os", "io", "debug", "package", "require", "dofile", "loadfile", "load"):
        g[unsafe] = None
    g.obj = _to_lua(runtime, obj)
    result = runtime.execute(script.read_text())
    assert result is not None, f"{script.name} returned nothing"
    out = dict(result.items())
    assert set(out) <= {"status", "message"}, out
    assert out.get("status") in STATUSES, out
    return out


@pytest.mark.parametrize("case", TABLE, ids=[Path(c["inputPath"]).stem for c in TABLE])
def test_llmdeployment_health_table(case: dict[str, Any]) -> None:
    obj = yaml.safe_load((ARGOCD / case["inputPath"]).read_text())
    got = run_health(HEALTH_LUA, obj)
    assert got == case["healthStatus"]


def test_every_testdata_file_is_in_the_table() -> None:
    listed = {Path(c["inputPath"]).name for c in TABLE}
    on_disk = {p.name for p in (ARGOCD / "testdata").glob("*.yaml")}
    assert on_disk == listed
    required = {
        "healthy", "progressing-generation-lag", "progressing-downloading", "degraded-denied",
        "degraded-does-not-fit", "no-status",
    }
    assert required <= {Path(n).stem for n in listed}


@pytest.mark.parametrize("case", TABLE, ids=[Path(c["inputPath"]).stem for c in TABLE])
def test_testdata_is_a_valid_llmdeployment(case: dict[str, Any]) -> None:
    """The fixtures use the real status shape (conditions, observedGeneration) of the API."""
    LLMDeployment.model_validate(yaml.safe_load((ARGOCD / case["inputPath"]).read_text()))


def _ready(status: str, reason: str, message: str = "m", generation: int = 2) -> dict[str, Any]:
    return {
        "apiVersion": "kubellm.io/v1alpha1",
        "kind": "LLMDeployment",
        "metadata": {"name": "x", "namespace": "ns", "generation": generation},
        "status": {
            "observedGeneration": generation,
            "conditions": [
                {"type": "Ready", "status": status, "reason": reason, "message": message,
                 "lastTransitionTime": "2026-11-27T09:00:00Z", "observedGeneration": generation},
            ],
        },
    }


def _reasons(base: type[errors.KubellmError]) -> set[str]:
    found: set[str] = set()
    todo: list[type[errors.KubellmError]] = [base]
    while todo:
        cls = todo.pop()
        found.add(cls.reason)
        todo.extend(cls.__subclasses__())
    return found


@pytest.mark.parametrize("reason", sorted(_reasons(errors.PermanentError) | {"DownloadFailed"}))
def test_every_permanent_error_reason_is_degraded(reason: str) -> None:
    """Reasons from kubellm.errors' permanent branch: retrying cannot help, so Degraded."""
    assert run_health(HEALTH_LUA, _ready("False", reason))["status"] == "Degraded"
    assert run_health(HEALTH_LUA, _ready("Unknown", reason))["status"] == "Degraded"


@pytest.mark.parametrize(
    "reason",
    sorted(_reasons(errors.TemporaryError) | {"CacheDownloading", "RollingOut", "Pending"}),
)
def test_every_temporary_error_reason_is_progressing(reason: str) -> None:
    assert run_health(HEALTH_LUA, _ready("False", reason))["status"] == "Progressing"


@pytest.mark.parametrize(
    ("obj", "status", "message"),
    [
        ({"metadata": {"generation": 1}, "status": {"observedGeneration": 1, "conditions": []}},
         "Progressing", "Waiting for the Ready condition"),
        ({"metadata": {}, "status": {"observedGeneration": 1, "conditions": [
            {"type": "Ready", "status": "True"}]}}, "Healthy", "Ready is True"),
        ({"metadata": {"generation": 5}, "status": {"observedGeneration": 5, "conditions": [
            {"type": "Ready", "status": "True", "reason": "Ready"}]}}, "Healthy", "Ready"),
        ({"metadata": {"generation": 5}, "status": {"observedGeneration": 6, "conditions": [
            {"type": "Ready", "status": "False", "reason": "", "message": "boom"}]}},
         "Degraded", "boom"),
        (_ready("Unknown", "SomethingNew", "thinking"), "Progressing", "SomethingNew: thinking"),
    ],
    ids=["no-conditions", "no-generation", "reason-only", "message-only", "unknown-new-reason"],
)
def test_edge_cases(obj: dict[str, Any], status: str, message: str) -> None:
    assert run_health(HEALTH_LUA, obj) == {"status": status, "message": message}


def test_licensepolicy_is_always_healthy() -> None:
    policy = {"apiVersion": "kubellm.io/v1alpha1", "kind": "LicensePolicy",
              "metadata": {"name": "default", "generation": 7}, "spec": {"mode": "Enforce"}}
    assert run_health(POLICY_LUA, policy)["status"] == "Healthy"
    assert run_health(POLICY_LUA, {"metadata": {}})["status"] == "Healthy"


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("gen_cm_patch", ARGOCD / "gen_cm_patch.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_argocd_cm_patch_is_generated_from_the_lua_files() -> None:
    gen = _generator()
    on_disk = (ARGOCD / "argocd-cm-patch.yaml").read_text()
    assert on_disk == gen.render(), (
        "deploy/argocd/argocd-cm-patch.yaml is stale: run "
        ".venv/bin/python deploy/argocd/gen_cm_patch.py"
    )
    patch = yaml.safe_load(on_disk)
    assert patch["kind"] == "ConfigMap" and patch["metadata"]["name"] == "argocd-cm"
    assert patch["data"] == {
        "resource.customizations.health.kubellm.io_LLMDeployment": HEALTH_LUA.read_text(),
        "resource.customizations.health.kubellm.io_LicensePolicy": POLICY_LUA.read_text(),
    }
