"""The Argo CD health checks in deploy/argocd/ on a Lua 5.1 runtime (lupa): fast, no Argo CD.

Argo CD evaluates health scripts with gopher-lua (Lua 5.1) and opens only the base, table and
package libraries and a reduced ``os`` (util/lua/lua.go; ``string`` and ``math`` only with
``resource.customizations.useOpenLibs``). The runtime here is PUC Lua 5.1 cut down to the same
set (no ``string``/``math`` globals, no string metatable), with the object handed over as nested
tables in the global ``obj`` like Argo CD does. The same cases run through Argo CD's own code in
tests/tools/test_argocd_cli.py (``argocd admin settings resource-overrides health``); these
tests give the answer in a second without the Argo CD build, and cover every reason of
``kubellm.reasons`` against the script's tables.
The expected results live in deploy/argocd/health_test.yaml (Argo CD's own table format).
"""

from __future__ import annotations

import fnmatch
import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubellm import reasons
from kubellm.api.v1alpha1 import LLMDeployment
from kubellm.reasons import Category, Reason

lua51 = pytest.importorskip("lupa.lua51", reason="lupa (dev extra) provides the Lua 5.1 runtime")

ROOT = Path(__file__).resolve().parents[2]
ARGOCD = ROOT / "deploy" / "argocd"
HEALTH_LUA = ARGOCD / "health.lua"
POLICY_LUA = ARGOCD / "licensepolicy-health.lua"
APPLICATION_LUA = ARGOCD / "application-health.lua"
EXAMPLES = ROOT / "examples"
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
    # Argo CD's library set: base, table, package, a reduced os. No string/math, and so no
    # string methods either ("%d"):format(...) fails under Argo CD as string.format does).
    runtime.execute('debug.setmetatable("", nil)')
    for absent in ("string", "math", "io", "debug", "dofile", "loadfile", "load"):
        g[absent] = None
    g.os = runtime.table_from({})
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
        "healthy",
        "progressing-generation-lag",
        "progressing-downloading",
        "degraded-denied",
        "degraded-does-not-fit",
        "no-status",
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
                {
                    "type": "Ready",
                    "status": status,
                    "reason": reason,
                    "message": message,
                    "lastTransitionTime": "2026-11-27T09:00:00Z",
                    "observedGeneration": generation,
                },
            ],
        },
    }


def _lua_table(name: str) -> set[str]:
    """The keys of ``local NAME = { ... }`` in health.lua, evaluated by Lua itself."""
    text = HEALTH_LUA.read_text()
    match = re.search(rf"^local {name} = (\{{.*?^\}})$", text, re.MULTILINE | re.DOTALL)
    assert match, f"health.lua has no table literal {name}"
    table = dict(lua51.LuaRuntime(register_eval=False).execute("return " + match.group(1)).items())
    assert set(table.values()) == {True}, name
    return {str(key) for key in table}


def _healthy_when_false() -> set[str]:
    """The reasons health.lua special-cases as Healthy when Ready is False."""
    return set(re.findall(r'ready\.reason == "(\w+)"', HEALTH_LUA.read_text()))


HEALTH = {Category.REFUSED: "Degraded", Category.WAITING: "Progressing",
          Category.TEMPORARY: "Progressing"}


def test_lua_degraded_list_is_the_refused_reasons() -> None:
    """DEGRADED: retrying cannot help (REFUSED, and the download Job's own failure reasons)."""
    assert _lua_table("DEGRADED") == reasons.of(Category.REFUSED) | reasons.PASSED_THROUGH


def test_lua_progressing_list_is_the_waiting_and_temporary_reasons() -> None:
    assert _lua_table("PROGRESSING") == reasons.of(Category.WAITING, Category.TEMPORARY)


def test_lua_healthy_when_false_is_the_idle_reasons() -> None:
    assert _healthy_when_false() == reasons.of(Category.IDLE)


def _by_category() -> list[tuple[str, str, str]]:
    """(reason, Ready status, expected health) for every reason that can make Ready not True."""
    cases = [(r, "False", "Degraded") for r in sorted(reasons.PASSED_THROUGH)]
    for reason in sorted(r for r in Reason if r.category in HEALTH):
        statuses = ["False", "Unknown"]
        cases += [(reason, s, HEALTH[reason.category]) for s in statuses]
    return cases


@pytest.mark.parametrize(("reason", "status", "health"), _by_category())
def test_every_reason_gets_the_health_of_its_category(reason: str, status: str,
                                                      health: str) -> None:
    """REFUSED (the PermanentErrors among them) and the Job's failures: Degraded; WAITING and
    TEMPORARY (the TemporaryErrors): Progressing."""
    assert run_health(HEALTH_LUA, _ready(status, reason))["status"] == health


@pytest.mark.parametrize("reason", sorted(reasons.of(Category.IDLE)))
def test_idle_reasons_are_healthy_but_unknown_is_not(reason: str) -> None:
    assert run_health(HEALTH_LUA, _ready("False", reason))["status"] == "Healthy"
    assert run_health(HEALTH_LUA, _ready("Unknown", reason))["status"] == "Progressing"


@pytest.mark.parametrize(
    ("obj", "status", "message"),
    [
        (
            {"metadata": {"generation": 1}, "status": {"observedGeneration": 1, "conditions": []}},
            "Progressing",
            "Waiting for the Ready condition",
        ),
        (
            {
                "metadata": {},
                "status": {
                    "observedGeneration": 1,
                    "conditions": [{"type": "Ready", "status": "True"}],
                },
            },
            "Healthy",
            "Ready is True",
        ),
        (
            {
                "metadata": {"generation": 5},
                "status": {
                    "observedGeneration": 5,
                    "conditions": [{"type": "Ready", "status": "True", "reason": "Ready"}],
                },
            },
            "Healthy",
            "Ready",
        ),
        (
            {
                "metadata": {"generation": 5},
                "status": {
                    "observedGeneration": 6,
                    "conditions": [
                        {"type": "Ready", "status": "False", "reason": "", "message": "boom"}
                    ],
                },
            },
            "Degraded",
            "boom",
        ),
        (_ready("Unknown", "SomethingNew", "thinking"), "Progressing", "SomethingNew: thinking"),
    ],
    ids=["no-conditions", "no-generation", "reason-only", "message-only", "unknown-new-reason"],
)
def test_edge_cases(obj: dict[str, Any], status: str, message: str) -> None:
    assert run_health(HEALTH_LUA, obj) == {"status": status, "message": message}


def test_licensepolicy_is_always_healthy() -> None:
    policy = {
        "apiVersion": "kubellm.io/v1alpha1",
        "kind": "LicensePolicy",
        "metadata": {"name": "default", "generation": 7},
        "spec": {"mode": "Enforce"},
    }
    assert run_health(POLICY_LUA, policy)["status"] == "Healthy"
    assert run_health(POLICY_LUA, {"metadata": {}})["status"] == "Healthy"


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("gen_cm_patch", ARGOCD / "gen_cm_patch.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("patch_name", "expected"), [
    ("argocd-cm-patch.yaml", {
        "resource.customizations.health.kubellm.io_LLMDeployment": HEALTH_LUA,
        "resource.customizations.health.kubellm.io_LicensePolicy": POLICY_LUA,
    }),
    ("argocd-cm-app-of-apps-patch.yaml", {
        "resource.customizations.health.argoproj.io_Application": APPLICATION_LUA,
    }),
])
def test_argocd_cm_patches_are_generated_from_the_lua_files(patch_name: str,
                                                            expected: dict[str, Path]) -> None:
    gen = _generator()
    assert set(gen.PATCHES) == {"argocd-cm-patch.yaml", "argocd-cm-app-of-apps-patch.yaml"}
    on_disk = (ARGOCD / patch_name).read_text()
    assert on_disk == gen.render(patch_name), (
        f"deploy/argocd/{patch_name} is stale: run .venv/bin/python deploy/argocd/gen_cm_patch.py"
    )
    patch = yaml.safe_load(on_disk)
    assert patch["kind"] == "ConfigMap" and patch["metadata"]["name"] == "argocd-cm"
    assert patch["data"] == {key: lua.read_text() for key, lua in expected.items()}


WAITING = {"status": "Progressing",
           "message": "Waiting for the Application's health to be reported"}


@pytest.mark.parametrize(("status", "want"), [
    (None, WAITING),
    ({"sync": {"status": "Synced"}}, WAITING),
    ({"health": {"status": "Healthy"}, "sync": {"status": "Synced"}},
     {"status": "Healthy", "message": ""}),
    # a child reports Healthy before its first sync: not yet a reason to start the next wave
    ({"health": {"status": "Healthy"}},
     {"status": "Progressing", "message": "Waiting for the Application to sync (it is Unknown)"}),
    ({"health": {"status": "Healthy"}, "sync": {"status": "OutOfSync"}},
     {"status": "Progressing", "message": "Waiting for the Application to sync (it is OutOfSync)"}),
    ({"health": {"status": "Healthy"}, "sync": {"status": "Synced"},
      "operationState": {"phase": "Running"}},
     {"status": "Progressing",
      "message": "Waiting for the Application's sync operation to finish"}),
    ({"health": {"status": "Healthy"}, "sync": {"status": "Synced"},
      "operationState": {"phase": "Succeeded"}}, {"status": "Healthy", "message": ""}),
    ({"health": {"status": "Progressing", "message": "llmd/qwen-7b: Downloading"}},
     {"status": "Progressing", "message": "llmd/qwen-7b: Downloading"}),
    ({"health": {"status": "Degraded", "message": "LicenseDenied"}},
     {"status": "Degraded", "message": "LicenseDenied"}),
    ({"health": {"status": "Missing"}}, {"status": "Missing", "message": ""}),
])
def test_application_health_passes_the_childs_health_through(
        status: dict[str, Any] | None, want: dict[str, str]) -> None:
    app: dict[str, Any] = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                           "metadata": {"name": "kubellm"}}
    if status is not None:
        app["status"] = status
    assert run_health(APPLICATION_LUA, app) == want


def _argocd_example(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((EXAMPLES / "argocd" / name).read_text())
    assert doc["kind"] == "Application", name
    return doc


def _wave(obj: dict[str, Any]) -> int:
    annotations = obj["metadata"].get("annotations") or {}
    return int(annotations.get("argocd.argoproj.io/sync-wave", "0"))


def _brace_globs(pattern: str) -> list[str]:
    """Argo CD's directory include/exclude: a glob, or ``{a,b}`` alternatives of globs."""
    if pattern.startswith("{") and pattern.endswith("}"):
        return pattern[1:-1].split(",")
    return [pattern]


def _selected(directory: Path, source: dict[str, Any]) -> list[Path]:
    """The files an Argo CD directory source (recurse: false) would apply."""
    spec = source.get("directory") or {}
    assert spec.get("recurse") is False
    include = _brace_globs(spec.get("include") or "*")
    exclude = _brace_globs(spec["exclude"]) if spec.get("exclude") else []
    return sorted(
        p for p in directory.iterdir()
        if p.is_file() and p.suffix in (".yaml", ".yml", ".json")
        and any(fnmatch.fnmatch(p.name, g) for g in include)
        and not any(fnmatch.fnmatch(p.name, g) for g in exclude)
    )


def test_root_application_syncs_the_operator_before_the_models() -> None:
    root = _argocd_example("root.yaml")
    children = _selected(ROOT / root["spec"]["source"]["path"], root["spec"]["source"])
    assert [p.name for p in children] == ["models.yaml", "operator.yaml"]  # not itself
    operator, models = _argocd_example("operator.yaml"), _argocd_example("models.yaml")
    assert _wave(operator) < _wave(models)
    chart = operator["spec"]["source"]
    assert (ROOT / chart["path"] / "Chart.yaml").is_file() and chart["helm"]["skipCrds"] is False
    assert "SkipDryRunOnMissingResource=true" in models["spec"]["syncPolicy"]["syncOptions"]
    for app in (root, operator, models):
        assert app["spec"]["source"]["repoURL"] == operator["spec"]["source"]["repoURL"]


def test_models_application_applies_policies_first_and_only_deployments_that_succeed() -> None:
    models = _argocd_example("models.yaml")
    source = models["spec"]["source"]
    files = _selected(ROOT / source["path"], source)
    docs = [d for f in files for d in yaml.safe_load_all(f.read_text()) if d]
    kinds = {d["kind"] for d in docs}
    assert kinds == {"LicensePolicy", "LLMDeployment"}, kinds
    policies = [d for d in docs if d["kind"] == "LicensePolicy"]
    deployments = [d for d in docs if d["kind"] == "LLMDeployment"]
    assert policies and deployments
    assert max(_wave(p) for p in policies) < min(_wave(d) for d in deployments)
    # every exclude pattern matches a file: no stale exclusions
    for glob in _brace_globs(source["directory"]["exclude"]):
        assert any(fnmatch.fnmatch(p.name, glob) for p in (ROOT / source["path"]).iterdir()), glob


def test_readme_gitops_commands_name_shipped_files() -> None:
    """The README's GitOps block patches argocd-cm with the generated files, applies root.yaml."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = text.split("### GitOps with Argo CD", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    paths = set(re.findall(r"((?:deploy|examples)/[\w./-]+\.yaml)", block))
    assert {"deploy/argocd/argocd-cm-patch.yaml", "deploy/argocd/argocd-cm-app-of-apps-patch.yaml",
            "examples/argocd/root.yaml"} <= paths
    assert all((ROOT / p).is_file() for p in paths), paths
