"""e2e: `helm install` charts/kubellm into a real apiserver (the local sandbox, or any cluster
with USE_EXISTING_CLUSTER=true), check what it created, then `helm uninstall`.

kwok simulates the operator pod (no image is pulled): the test checks the objects and the RBAC
the apiserver enforces, not the operator's behaviour.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "kubellm"
CRDS = ("llmdeployments.kubellm.io", "licensepolicies.kubellm.io")


def _helm_path(cluster: Any) -> str:
    candidate = Path(cluster.bin_dir) / "helm"
    if candidate.is_file():
        return str(candidate)
    found = os.environ.get("KUBELLM_HELM") or shutil.which("helm")
    if not found:
        pytest.fail("helm not found: run `kubellm sandbox install` or put helm on PATH",
                    pytrace=False)
    return found


class Helm:
    def __init__(self, path: str, kubeconfig: str, tmp: Path) -> None:
        self.path, self.kubeconfig = path, kubeconfig
        self.env = {**os.environ, "HELM_CACHE_HOME": str(tmp / "cache"),
                    "HELM_CONFIG_HOME": str(tmp / "config"), "HELM_DATA_HOME": str(tmp / "data")}

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run([self.path, "--kubeconfig", self.kubeconfig, *args],
                              capture_output=True, text=True, timeout=300, env=self.env)
        if check:
            assert proc.returncode == 0, f"helm {' '.join(args)}: {proc.stderr}"
        return proc


def _get(cluster: Any, *args: str) -> dict[str, Any]:
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)


def _can_i(cluster: Any, subject: str, verb: str, resource: str) -> bool:
    proc = cluster.kubectl("auth", "can-i", verb, resource, f"--as={subject}", check=False)
    return proc.stdout.strip() == "yes"


def _wait(what: str, probe: Any, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(1)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what} (last: {last!r})")


def test_helm_install_upgrade_uninstall(cluster: Any, tmp_path: Path) -> None:
    helm = Helm(_helm_path(cluster), cluster.kubeconfig, tmp_path)
    suffix = uuid.uuid4().hex[:6]
    release, namespace = f"kubellm-{suffix}", f"kubellm-chart-{suffix}"
    fullname = release  # the release name contains the chart name
    subject = f"system:serviceaccount:{namespace}:{fullname}"
    installed = False
    try:
        helm("install", release, str(CHART), "--namespace", namespace, "--create-namespace",
             "--set", "licensePolicy.create=true", "--set", f"licensePolicy.name=e2e-{suffix}")
        installed = True

        # CRDs from crds/ are installed first and become Established.
        for crd in CRDS:
            cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
        # The optional LicensePolicy from values was admitted by the CRD's schema.
        policy = _get(cluster, "licensepolicy", f"e2e-{suffix}")
        assert policy["spec"]["mode"] == "Enforce"  # CRD default applied by the apiserver

        deployment = _get(cluster, "-n", namespace, "deployment", fullname)
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["args"][:2] == ["run", "-A"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        _get(cluster, "-n", namespace, "serviceaccount", fullname)
        _get(cluster, "-n", namespace, "service", f"{fullname}-metrics")
        _get(cluster, "clusterrole", fullname)
        _get(cluster, "clusterrolebinding", fullname)

        # The apiserver's RBAC grants what the operator needs and nothing it does not.
        assert _can_i(cluster, subject, "watch", "llmdeployments.kubellm.io")
        assert _can_i(cluster, subject, "patch", "llmdeployments.kubellm.io/status")
        assert _can_i(cluster, subject, "create", "jobs.batch")
        assert _can_i(cluster, subject, "list", "nodes")
        assert not _can_i(cluster, subject, "get", "secrets")
        assert not _can_i(cluster, subject, "create", "licensepolicies.kubellm.io")

        # kwok runs the pod: the Deployment becomes available.
        _wait("the operator Deployment to be available", lambda: _get(
            cluster, "-n", namespace, "deployment", fullname).get("status", {}).get(
            "availableReplicas") == 1)

        # The documented CRD upgrade path works against the installed CRDs, then helm upgrade.
        cluster.kubectl("apply", "--server-side", "-f", str(CHART / "crds"))
        helm("upgrade", release, str(CHART), "--namespace", namespace,
             "--reuse-values", "--set", "image.tag=0.0.0-e2e")
        upgraded = _get(cluster, "-n", namespace, "deployment", fullname)
        image = upgraded["spec"]["template"]["spec"]["containers"][0]["image"]
        assert image == "ghcr.io/kubellm/kubellm:0.0.0-e2e"
    finally:
        if installed:
            helm("uninstall", release, "--namespace", namespace, "--wait", "--timeout", "120s")
    gone = cluster.kubectl("get", "-n", namespace, "deployment", fullname, check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr
    assert cluster.kubectl("get", "clusterrole", fullname, check=False).returncode != 0
    # Helm keeps CRDs (and so every LLMDeployment) on uninstall.
    for crd in CRDS:
        _get(cluster, "crd", crd)
    cluster.kubectl("delete", "licensepolicy", f"e2e-{suffix}", "--ignore-not-found")
    cluster.kubectl("delete", "namespace", namespace, "--wait=false")
