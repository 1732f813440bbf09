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
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_operator_helpers import free_port, token_kubeconfig, wait_until

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
        pytest.fail(
            "helm not found: run `kubellm sandbox install` or put helm on PATH", pytrace=False
        )
    return found


class Helm:
    def __init__(self, path: str, kubeconfig: str, tmp: Path) -> None:
        self.path, self.kubeconfig = path, kubeconfig
        self.env = {
            **os.environ,
            "HELM_CACHE_HOME": str(tmp / "cache"),
            "HELM_CONFIG_HOME": str(tmp / "config"),
            "HELM_DATA_HOME": str(tmp / "data"),
        }

    def __call__(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [self.path, "--kubeconfig", self.kubeconfig, *args],
            capture_output=True,
            text=True,
            timeout=300,
            env=self.env,
        )
        if check:
            assert proc.returncode == 0, f"helm {' '.join(args)}: {proc.stderr}"
        return proc


def _get(cluster: Any, *args: str) -> dict[str, Any]:
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)


def _can_i(cluster: Any, subject: str, verb: str, resource: str) -> bool:
    proc = cluster.kubectl("auth", "can-i", verb, resource, f"--as={subject}", check=False)
    return proc.stdout.strip() == "yes"


#: Rules every authenticated user has (system:basic-user and friends); not the chart's doing.
EVERYONE = {
    ("authorization.k8s.io", "selfsubjectaccessreviews", "create"),
    ("authorization.k8s.io", "selfsubjectrulesreviews", "create"),
    ("authentication.k8s.io", "selfsubjectreviews", "create"),
}


def _expand(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """(apiGroup, resource, verb) triples of RBAC rules (resourceNames are not used)."""
    return {(group, resource, verb) for rule in rules for group in rule.get("apiGroups") or [""]
            for resource in rule["resources"] for verb in rule["verbs"]}


def _declared(name: str) -> set[tuple[str, str, str]]:
    return _expand(yaml.safe_load((CHART / "files" / name).read_text()))


def _granted(cluster: Any, subject: str, namespace: str) -> set[tuple[str, str, str]]:
    """What the apiserver's authorizer grants ``subject`` in ``namespace``, asked as it
    (a SelfSubjectRulesReview under impersonation). Wildcards are refused outright."""
    review = {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
              "spec": {"namespace": namespace}}
    out = cluster.kubectl("create", "-f", "-", "-o", "json", f"--as={subject}",
                          input=json.dumps(review)).stdout
    status = json.loads(out)["status"]
    assert not status.get("incomplete"), status.get("evaluationError")
    rules = status["resourceRules"]
    for rule in rules:
        assert not rule.get("resourceNames"), rule
        assert "*" not in rule["verbs"] + rule["resources"] + rule.get("apiGroups", []), rule
    return _expand(rules)


def test_helm_install_upgrade_uninstall(cluster: Any, tmp_path: Path) -> None:
    helm = Helm(_helm_path(cluster), cluster.kubeconfig, tmp_path)
    suffix = uuid.uuid4().hex[:6]
    release, namespace = f"kubellm-{suffix}", f"kubellm-chart-{suffix}"
    fullname = release  # the release name contains the chart name
    subject = f"system:serviceaccount:{namespace}:{fullname}"
    installed = False
    try:
        helm(
            "install",
            release,
            str(CHART),
            "--namespace",
            namespace,
            "--create-namespace",
            "--set",
            "licensePolicy.create=true",
            "--set",
            f"licensePolicy.name=e2e-{suffix}",
        )
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
        assert _can_i(cluster, subject, "get", "secrets")  # spec.hubTokenSecretRef, by name
        assert not _can_i(cluster, subject, "list", "secrets")
        assert not _can_i(cluster, subject, "create", "licensepolicies.kubellm.io")
        # Exhaustively: what the apiserver says the ServiceAccount may do, in the release
        # namespace (ClusterRole + the Lease Role) and in any other one (ClusterRole only), is
        # exactly the chart's declared rules plus what every authenticated user gets.
        cluster_rules = _declared("clusterrole-rules.yaml")
        assert _granted(cluster, subject, namespace) == (
            cluster_rules | _declared("role-rules.yaml") | EVERYONE)
        assert _granted(cluster, subject, "default") == cluster_rules | EVERYONE

        # kwok runs the pod: the Deployment becomes available.
        wait_until(
            lambda: (
                _get(cluster, "-n", namespace, "deployment", fullname)
                .get("status", {})
                .get("availableReplicas")
                == 1
            ),
            120,
            what="the operator Deployment to be available",
        )

        # The documented CRD upgrade path works against the installed CRDs, then helm upgrade.
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f",
                        str(CHART / "crds"))
        helm(
            "upgrade",
            release,
            str(CHART),
            "--namespace",
            namespace,
            "--reuse-values",
            "--set",
            "image.tag=0.0.0-e2e",
        )
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


def _local_args(args: list[str]) -> list[str]:
    """The chart's container args, run as a local process: its ports become free local ones."""
    out = list(args)
    for i, arg in enumerate(out[:-1]):
        if arg == "--metrics-port":
            out[i + 1] = str(free_port())
        elif arg == "--liveness":
            out[i + 1] = f"http://127.0.0.1:{free_port()}/healthz"
    return out


def _local_env(env: list[dict[str, Any]], namespace: str, tmp: Path) -> dict[str, str]:
    """The chart's container env as a local process sees it: the downward API filled in as the
    kubelet would, and the in-pod paths (HOME, HF_HOME on the /tmp emptyDir) moved to ``tmp``."""
    downward = {"metadata.namespace": namespace, "metadata.name": "kubellm-e2e-pod"}
    out: dict[str, str] = {}
    for var in env:
        if "value" in var:
            out[var["name"]] = str(var["value"])
        else:
            out[var["name"]] = downward[var["valueFrom"]["fieldRef"]["fieldPath"]]
    out.update(HOME=str(tmp), HF_HOME=str(tmp / "hf"))
    return out


def test_the_operator_runs_with_the_charts_rbac(
    cluster: Any, namespace: str, tmp_path: Path
) -> None:
    """Run the real operator with the installed chart's own args and env (leader election
    included) as the chart's ServiceAccount, with a local fake Hub: it must take the Lease and a
    gated model to Ready (token Secret read, facts, sizing on the kwok GPU nodes, cache PVC +
    download Job, serving Deployment, status) without a single 403 from the apiserver, and the
    Argo CD health check must call the result Healthy."""
    from hubfixtures.server import serve_hub

    helm = Helm(_helm_path(cluster), cluster.kubeconfig, tmp_path)
    suffix = uuid.uuid4().hex[:6]
    release, system = f"kubellm-{suffix}", f"kubellm-rbac-{suffix}"
    helm("install", release, str(CHART), "--namespace", system, "--create-namespace")
    log = tmp_path / "operator.log"
    operator: subprocess.Popen[bytes] | None = None
    try:
        for crd in CRDS:
            cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
        kubeconfig = token_kubeconfig(cluster, system, release, tmp_path / "sa.yaml", "15m")
        cluster.kubectl(
            "create",
            "secret",
            "generic",
            "hf-token",
            "-n",
            namespace,
            "--from-literal=HF_TOKEN=hf_good",
        )
        llmd = {
            "apiVersion": "kubellm.io/v1alpha1",
            "kind": "LLMDeployment",
            "metadata": {"name": "rbac-probe"},
            "spec": {
                "model": {"repo": "meta-llama/Llama-3.1-8B-Instruct"},
                "hubTokenSecretRef": {"name": "hf-token"},
                "context": {"maxModelLen": 8192},
            },
        }
        cluster.kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump(llmd))
        with serve_hub(["meta-llama/Llama-3.1-8B-Instruct"]) as hub, log.open("wb") as out:
            container = _get(cluster, "-n", system, "deployment", release)["spec"]["template"][
                "spec"]["containers"][0]
            args = _local_args(container["args"])
            assert "--leader-elect" in args  # the chart's default: the Lease Role is exercised
            env = {
                **os.environ,
                **_local_env(container["env"], system, tmp_path),
                "KUBECONFIG": str(kubeconfig),
                "HF_ENDPOINT": hub.endpoint,
            }
            env.pop("HF_HUB_OFFLINE", None)
            operator = subprocess.Popen(
                [sys.executable, "-m", "kubellm", *args],
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=tmp_path,
            )

            def ready() -> dict[str, Any] | None:
                assert operator is not None and operator.poll() is None, log.read_text()
                denied = _forbidden(log.read_text())
                assert not denied, "the operator hit RBAC denials:\n" + "\n".join(denied[:20])
                obj = _get(cluster, "-n", namespace, "llmdeployment", "rbac-probe")
                status = obj.get("status") or {}
                conditions = {c["type"]: c for c in status.get("conditions") or []}
                if conditions.get("Ready", {}).get("status") == "True":
                    return obj
                seen.append(_argocd_health(obj))
                return None

            seen: list[dict[str, Any]] = []

            live = wait_until(ready, 150,
                              what="the LLMDeployment to be Ready under the chart's RBAC")
            lease = _get(cluster, "-n", system, "lease",
                         args[args.index("--leader-election-id") + 1])
            assert lease["spec"]["holderIdentity"].startswith("kubellm-e2e-pod_"), lease
            time.sleep(2)  # let events and the resync settle
    finally:
        if operator is not None:
            operator.terminate()
            try:
                operator.wait(timeout=30)
            except subprocess.TimeoutExpired:
                operator.kill()
        helm("uninstall", release, "--namespace", system, "--wait", "--timeout", "120s")
        cluster.kubectl("delete", "namespace", system, "--wait=false", check=False)
    denied = _forbidden(log.read_text())
    assert not denied, "the operator hit RBAC denials:\n" + "\n".join(denied[:20])
    if os.environ.get("KUBELLM_E2E_SHOW_LOG"):
        print(log.read_text())
    # The shipped Argo CD health check on statuses the real operator wrote: Progressing on the
    # way (never Degraded on this happy path), Healthy at the end.
    assert all(h["status"] == "Progressing" for h in seen), seen
    assert _argocd_health(live)["status"] == "Healthy", live["status"]


def _argocd_health(obj: dict[str, Any]) -> dict[str, Any]:
    """deploy/argocd/health.lua on Lua 5.1 (tests/unit/test_argocd_health.py tests it fully)."""
    from lupa import lua51

    runtime = lua51.LuaRuntime(register_eval=False)

    def to_lua(value: Any) -> Any:
        if isinstance(value, dict):
            return runtime.table_from({k: to_lua(v) for k, v in value.items()})
        if isinstance(value, list):
            return runtime.table_from([to_lua(v) for v in value])
        return value

    runtime.globals().obj = to_lua(obj)
    result = runtime.execute((ROOT / "deploy" / "argocd" / "health.lua").read_text())
    return dict(result.items())


def _forbidden(text: str) -> list[str]:
    """RBAC denials in the operator log. The apiserver also answers 403 to any create in a
    namespace being deleted (an earlier test's namespace, seen by the -A operator): that is not
    a missing permission, so it is left out."""
    return [
        line
        for line in text.splitlines()
        if ("403" in line or "orbidden" in line) and "being terminated" not in line
    ]
