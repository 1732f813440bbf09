"""The shipped Argo CD health checks through Argo CD's own code (``-m tools``; no cluster).

Every case runs as a user would try it: ``argocd admin settings resource-overrides health OBJ
--argocd-cm-path deploy/argocd/argocd-cm-patch.yaml``, with the Argo CD the sandbox installer
builds (``kubellm sandbox install --argocd``, version pinned in ``kubellm.sandbox.versions``).
That command loads the patch as ``argocd-cm``, picks the script by group/kind, and runs it in
Argo CD's Lua VM with its default library set (base, table, package, a reduced os: no
``string``/``math``, the patch sets no ``useOpenLibs``), exactly as the application controller
does. The cases: every entry of deploy/argocd/health_test.yaml (status AND message), every
reason of ``kubellm.reasons`` by category, and the LicensePolicy and Application checks.
When Argo CD is not built the tests fail and say how to build it; they never skip.
"""

from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubellm import reasons
from kubellm.reasons import Category, Reason
from kubellm.sandbox import argocd, versions
from kubellm.sandbox.errors import SandboxError

pytestmark = pytest.mark.tools

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "argocd"
PATCH = DEPLOY / "argocd-cm-patch.yaml"
APP_PATCH = DEPLOY / "argocd-cm-app-of-apps-patch.yaml"
TABLE = yaml.safe_load((DEPLOY / "health_test.yaml").read_text())["tests"]
HEALTH = {Category.REFUSED: "Degraded", Category.WAITING: "Progressing",
          Category.TEMPORARY: "Progressing"}


@pytest.fixture(scope="module")
def argocd_cli() -> argocd.ArgoCD:
    try:
        return argocd.require()
    except SandboxError as exc:
        pytest.fail(str(exc), pytrace=False)


def assess(cli: argocd.ArgoCD, obj: Path, patch: Path = PATCH) -> dict[str, str]:
    """``argocd admin settings resource-overrides health``: its STATUS and MESSAGE lines."""
    proc = subprocess.run(
        [str(cli.binary), "admin", "settings", "resource-overrides", "health", str(obj),
         "--argocd-cm-path", str(patch)],
        capture_output=True, text=True, timeout=60, env={**os.environ, **cli.env("argocd")},
        check=False,
    )
    assert proc.returncode == 0, f"argocd failed on {obj.name}: {proc.stderr or proc.stdout}"
    out: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        key, sep, value = line.partition(": ")
        if sep and key in ("STATUS", "MESSAGE"):
            out[key.lower()] = value
    assert "status" in out, f"no health from argocd for {obj.name}: {proc.stdout!r}"
    return out


def assess_all(cli: argocd.ArgoCD, objs: list[Path], patch: Path = PATCH) -> list[dict[str, str]]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda p: assess(cli, p, patch), objs))


def test_argocd_is_the_pinned_version(argocd_cli: argocd.ArgoCD) -> None:
    proc = subprocess.run([str(argocd_cli.binary), "version", "--client", "--short"],
                          capture_output=True, text=True, timeout=60, check=True,
                          env={**os.environ, **argocd_cli.env("argocd")})
    assert versions.ARGOCD in proc.stdout, proc.stdout


def test_shipped_health_cases_through_argocd(argocd_cli: argocd.ArgoCD) -> None:
    """Every case of health_test.yaml: Argo CD's answer is the expected status and message."""
    keys = yaml.safe_load(PATCH.read_text())["data"]
    assert not [k for k in keys if "useOpenLibs" in k], keys  # Argo CD's default libraries
    got = assess_all(argocd_cli, [DEPLOY / c["inputPath"] for c in TABLE])
    wrong = {c["inputPath"]: (g, c["healthStatus"]) for c, g in zip(TABLE, got, strict=True)
             if g != c["healthStatus"]}
    assert not wrong, wrong


def _ready(status: str, reason: str) -> dict[str, Any]:
    condition = {"type": "Ready", "status": status, "reason": reason, "message": "m",
                 "lastTransitionTime": "2026-11-27T09:00:00Z", "observedGeneration": 2}
    return {"apiVersion": "kubellm.io/v1alpha1", "kind": "LLMDeployment",
            "metadata": {"name": "x", "namespace": "ns", "generation": 2},
            "status": {"observedGeneration": 2, "conditions": [condition]}}


def _reason_cases() -> list[tuple[str, str, str]]:
    cases = [(r, "False", "Degraded") for r in sorted(reasons.PASSED_THROUGH)]
    for reason in sorted(Reason):
        if reason.category in HEALTH:
            cases += [(reason, s, HEALTH[reason.category]) for s in ("False", "Unknown")]
        elif reason.category is Category.IDLE:
            cases += [(reason, "False", "Healthy"), (reason, "Unknown", "Progressing")]
    cases.append(("Unheard", "False", "Degraded"))
    return cases


def test_every_reason_through_argocd(argocd_cli: argocd.ArgoCD, tmp_path: Path) -> None:
    """Each reason the operator can write gets the health of its category in Argo CD."""
    cases = _reason_cases()
    files = []
    for i, (reason, status, _) in enumerate(cases):
        path = tmp_path / f"{i:03d}-{reason}-{status}.yaml"
        path.write_text(yaml.safe_dump(_ready(status, str(reason))))
        files.append(path)
    got = assess_all(argocd_cli, files)
    wrong = [(str(r), s, want, g) for (r, s, want), g in zip(cases, got, strict=True)
             if g != {"status": want, "message": f"{r}: m"}]
    assert not wrong, wrong


def test_licensepolicy_and_application_checks_through_argocd(argocd_cli: argocd.ArgoCD,
                                                             tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump({"apiVersion": "kubellm.io/v1alpha1",
                                      "kind": "LicensePolicy", "metadata": {"name": "p"},
                                      "spec": {"mode": "Enforce"}}))
    assert assess(argocd_cli, policy)["status"] == "Healthy"
    app: dict[str, Any] = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
                           "metadata": {"name": "kubellm", "namespace": "argocd"}}
    waiting = tmp_path / "app-waiting.yaml"
    waiting.write_text(yaml.safe_dump(app))
    degraded = tmp_path / "app-degraded.yaml"
    degraded.write_text(yaml.safe_dump({**app, "status": {"health": {
        "status": "Degraded", "message": "LicenseDenied: no"}}}))
    assert assess(argocd_cli, waiting, APP_PATCH) == {
        "status": "Progressing", "message": "Waiting for the Application's health to be reported"}
    assert assess(argocd_cli, degraded, APP_PATCH) == {
        "status": "Degraded", "message": "LicenseDenied: no"}
    unsynced = tmp_path / "app-unsynced.yaml"
    unsynced.write_text(yaml.safe_dump({**app, "status": {"health": {"status": "Healthy"},
                                                          "sync": {"status": "OutOfSync"}}}))
    assert assess(argocd_cli, unsynced, APP_PATCH) == {
        "status": "Progressing", "message": "Waiting for the Application to sync (it is OutOfSync)"}
    synced = tmp_path / "app-synced.yaml"
    synced.write_text(yaml.safe_dump({**app, "status": {"health": {"status": "Healthy"},
                                                        "sync": {"status": "Synced"}}}))
    assert assess(argocd_cli, synced, APP_PATCH) == {"status": "Healthy", "message": ""}
