"""The Helm chart charts/kubellm: CRD copies, RBAC, rendered objects, values schema.

Needs a ``helm`` binary for the rendering tests: the one the sandbox builds
(``${XDG_CACHE_HOME:-~/.cache}/kubellm/sandbox/*/bin/helm``), ``$KUBELLM_HELM``, or ``helm`` on
PATH. Without one these tests FAIL and say how to get it; set ``KUBELLM_SKIP_HELM=1`` to skip
them on purpose.
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from kubellm.api.v1alpha1 import LicensePolicySpec

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "kubellm"
REPO_CRDS = ROOT / "crds"
CHART_CRDS = CHART / "crds"
RULES_FILE = CHART / "files" / "clusterrole-rules.yaml"
ROLE_RULES_FILE = CHART / "files" / "role-rules.yaml"  # namespaced: the leader-election Lease
OPERATOR_RBAC = ROOT / "operator" / "kubellm" / "data" / "rbac.yaml"
RELEASE, NAMESPACE = "llm", "kubellm-system"
FULLNAME = "llm-kubellm"

HELM_HELP = (
    "helm is needed to test charts/kubellm. Get it with `kubellm sandbox install` (builds it into "
    "${XDG_CACHE_HOME:-~/.cache}/kubellm/sandbox/<versions>/bin/helm), or "
    "`go install helm.sh/helm/v4/cmd/helm@v4.3.1` (then put it on PATH or set KUBELLM_HELM), "
    "or set KUBELLM_SKIP_HELM=1 to skip the chart rendering tests on purpose."
)


# ---------------------------------------------------------------- helpers


def chart_meta() -> dict[str, Any]:
    return yaml.safe_load((CHART / "Chart.yaml").read_text())


def find_helm() -> str | None:
    explicit = os.environ.get("KUBELLM_HELM")
    if explicit:
        return explicit
    try:
        from kubellm.sandbox import versions

        pinned = versions.bin_dir() / "helm"
        if pinned.is_file():
            return str(pinned)
        built = sorted(versions.cache_root().glob("*/bin/helm"))
        if built:
            return str(built[-1])
    except ImportError:  # pragma: no cover - the sandbox package is part of kubellm
        pass
    return shutil.which("helm")


@pytest.fixture(scope="session")
def helm() -> str:
    if os.environ.get("KUBELLM_SKIP_HELM") == "1":
        pytest.skip("KUBELLM_SKIP_HELM=1: chart rendering tests skipped on purpose")
    found = find_helm()
    if found is None:
        pytest.fail(HELM_HELP, pytrace=False)
    return found


def run_helm(helm: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "HELM_CACHE_HOME": "/tmp/kubellm-helm/cache",
        "HELM_CONFIG_HOME": "/tmp/kubellm-helm/config",
        "HELM_DATA_HOME": "/tmp/kubellm-helm/data",
    }
    return subprocess.run([helm, *args], capture_output=True, text=True, timeout=120, env=env)


def _set_args(values: dict[str, Any] | None, tmp: Path) -> list[str]:
    if not values:
        return []
    path = tmp / "values.yaml"
    path.write_text(yaml.safe_dump(values))
    return ["--values", str(path)]


@pytest.fixture
def render(helm: str, tmp_path: Path) -> Callable[..., list[dict[str, Any]]]:
    def _render(values: dict[str, Any] | None = None, *extra: str) -> list[dict[str, Any]]:
        proc = run_helm(
            helm,
            "template",
            RELEASE,
            str(CHART),
            "--namespace",
            NAMESPACE,
            *_set_args(values, tmp_path),
            *extra,
        )
        assert proc.returncode == 0, proc.stderr
        return [d for d in yaml.safe_load_all(proc.stdout) if d]

    return _render


def by_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o["kind"] == kind]


def one(objs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = by_kind(objs, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def permissions(rules: list[dict[str, Any]]) -> set[tuple[str, str, str]]:
    """Expand RBAC rules into (apiGroup, resource, verb) triples: equal grants compare equal
    however the rules are grouped or ordered."""
    out: set[tuple[str, str, str]] = set()
    for rule in rules:
        assert not rule.get("resourceNames"), "resourceNames are not compared; extend the test"
        out.update(
            itertools.product(
                rule.get("apiGroups", []), rule.get("resources", []), rule.get("verbs", [])
            )
        )
    return out


def operator_rules(kind: str = "ClusterRole") -> list[dict[str, Any]]:
    """Rules of the ``kind`` (ClusterRole or Role) in operator/kubellm/data/rbac.yaml: that
    document, else (ClusterRole only) a {rules: [...]} mapping or a bare rule list."""
    docs = [d for d in yaml.safe_load_all(OPERATOR_RBAC.read_text()) if d is not None]
    for doc in docs:
        if isinstance(doc, dict) and doc.get("kind") == kind:
            return list(doc["rules"])
    if kind != "ClusterRole":
        return []
    for doc in docs:
        if isinstance(doc, list):
            return doc
    for doc in docs:
        if isinstance(doc, dict) and "rules" in doc:
            return list(doc["rules"])
    raise AssertionError(f"{OPERATOR_RBAC}: no ClusterRole or rules list found")


# ---------------------------------------------------------------- without helm


def test_chart_crds_are_copies_of_the_generated_crds() -> None:
    repo = {p.name: p.read_bytes() for p in REPO_CRDS.glob("*.yaml")}
    chart = {p.name: p.read_bytes() for p in CHART_CRDS.glob("*.yaml")}
    assert repo, "crds/ is empty: generate the CRDs first (kubellm crds)"
    stale = sorted(n for n in repo.keys() | chart.keys() if repo.get(n) != chart.get(n))
    assert not stale, (
        f"charts/kubellm/crds/ differs from crds/ ({', '.join(stale)}): "
        "run scripts/sync-chart-crds.sh"
    )
    names = {yaml.safe_load(b)["metadata"]["name"] for b in chart.values()}
    assert {"llmdeployments.kubellm.io", "licensepolicies.kubellm.io"} <= names


def test_sync_script_detects_and_repairs_drift(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "sync-chart-crds.sh", tmp_path / "scripts")
    shutil.copytree(REPO_CRDS, tmp_path / "crds")
    shutil.copytree(CHART_CRDS, tmp_path / "charts" / "kubellm" / "crds")
    script = tmp_path / "scripts" / "sync-chart-crds.sh"
    check = subprocess.run(["bash", str(script), "--check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    first = sorted((tmp_path / "crds").glob("*.yaml"))[0]
    first.write_text(first.read_text() + "# changed\n")
    (tmp_path / "charts" / "kubellm" / "crds" / "gone.yaml").write_text("kind: Old\n")
    check = subprocess.run(["bash", str(script), "--check"], capture_output=True, text=True)
    assert check.returncode == 1 and "scripts/sync-chart-crds.sh" in check.stderr
    subprocess.run(["bash", str(script)], check=True, capture_output=True)
    check = subprocess.run(["bash", str(script), "--check"], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert not (tmp_path / "charts" / "kubellm" / "crds" / "gone.yaml").exists()


def test_app_version_is_the_package_version() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert str(chart_meta()["appVersion"]) == project["version"], (
        "Chart.yaml appVersion must equal pyproject.toml's version: the image tag defaults to it"
    )


@pytest.mark.parametrize(("kind", "rules_file"), [("ClusterRole", RULES_FILE),
                                                  ("Role", ROLE_RULES_FILE)])
def test_chart_rbac_equals_what_the_operator_declares(kind: str, rules_file: Path) -> None:
    assert OPERATOR_RBAC.exists(), f"{OPERATOR_RBAC} is the operator's own RBAC declaration"
    chart = permissions(yaml.safe_load(rules_file.read_text()))
    operator = permissions(operator_rules(kind))
    assert chart and chart == operator, (
        f"charts/kubellm/files/{rules_file.name} must grant what the {kind} of "
        f"{OPERATOR_RBAC.name} grants; only in chart: {sorted(chart - operator)}; "
        f"only in operator: {sorted(operator - chart)}"
    )


def test_chart_rbac_has_no_wildcards_and_reads_secrets_by_name_only() -> None:
    rules = yaml.safe_load(RULES_FILE.read_text())
    for group, resource, verb in permissions(rules):
        assert "*" not in (group, resource, verb), (group, resource, verb)
        if resource == "secrets":
            assert verb == "get", "the operator reads spec.hubTokenSecretRef by name only"


def test_default_license_policy_in_values_is_a_valid_spec() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    LicensePolicySpec.model_validate(values["licensePolicy"]["spec"])


def test_dockerfile_runs_kubellm_as_non_root() -> None:
    """The image's user is the chart's runAsUser (pins and lint: tests/unit/test_image.py)."""
    text = (ROOT / "operator" / "Dockerfile").read_text()
    users = [line.split()[1] for line in text.splitlines() if line.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in {"0", "root"}
    assert 'ENTRYPOINT ["kubellm"]' in text
    uid = int(users[-1].split(":")[0])
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["podSecurityContext"]["runAsUser"] == uid


# ---------------------------------------------------------------- with helm


def test_helm_lint(helm: str) -> None:
    proc = run_helm(helm, "lint", "--strict", str(CHART))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_default_objects(render: Callable[..., list[dict[str, Any]]]) -> None:
    objs = render()
    assert sorted(o["kind"] for o in objs) == [
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Role",  # leader election (leaderElection.enabled defaults to true)
        "RoleBinding",
        "Service",
        "ServiceAccount",
    ]
    for obj in objs:
        if obj["kind"] not in {"ClusterRole", "ClusterRoleBinding"}:  # cluster-scoped
            assert obj["metadata"]["namespace"] == NAMESPACE, obj["kind"]
        assert obj["metadata"]["labels"]["app.kubernetes.io/part-of"] == "kubellm"


def test_rbac_objects(render: Callable[..., list[dict[str, Any]]]) -> None:
    objs = render()
    role = one(objs, "ClusterRole")
    assert role["rules"] == yaml.safe_load(RULES_FILE.read_text())
    binding = one(objs, "ClusterRoleBinding")
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": role["metadata"]["name"],
    }
    account = one(objs, "ServiceAccount")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": NAMESPACE}
    ]
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    assert not by_kind(render({"rbac": {"create": False}}), "ClusterRole")


def _container(objs: list[dict[str, Any]]) -> dict[str, Any]:
    containers = one(objs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def test_image_tag_defaults_to_app_version(render: Callable[..., list[dict[str, Any]]]) -> None:
    container = _container(render())
    assert container["image"] == f"ghcr.io/kubellm/kubellm:{chart_meta()['appVersion']}"
    pinned = _container(
        render({"image": {"repository": "mirror.example/kubellm", "tag": "0.2.0-rc.1"}})
    )
    assert pinned["image"] == "mirror.example/kubellm:0.2.0-rc.1"
    # the download Job uses the operator's own image, mirrors and pins included
    assert pinned["args"][pinned["args"].index("--image") + 1] == pinned["image"]


def test_operator_args_probe_and_ports(render: Callable[..., list[dict[str, Any]]]) -> None:
    container = _container(render())
    args = container["args"]
    assert args[:4] == ["run", "-A", "--metrics-port", "8080"]
    liveness = args[args.index("--liveness") + 1]
    probe = container["livenessProbe"]["httpGet"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert liveness == f"http://0.0.0.0:{ports['health']}{probe['path']}"
    assert probe["port"] == "health" and ports["metrics"] == 8080
    assert container["readinessProbe"]["httpGet"] == probe  # standbys answer it too
    no_health = _container(render({"health": {"enabled": False, "port": 8081, "path": "/healthz"}}))
    assert "--liveness" not in no_health["args"] and "livenessProbe" not in no_health
    assert "readinessProbe" not in no_health


def test_operator_args_parse_with_the_real_cli(render: Callable[..., list[dict[str, Any]]]) -> None:
    """The args the chart passes are accepted by `kubellm run` itself."""
    from kubellm.cli import build_parser

    args = _container(render({"operator": {"verbose": True}}))["args"]
    try:
        parsed = build_parser().parse_args(args)
    except SystemExit as exc:
        pytest.fail(
            f"`kubellm {' '.join(args)}` is refused by the CLI (exit {exc.code}); "
            "align charts/kubellm/templates/deployment.yaml with kubellm.commands.run",
            pytrace=False,
        )
    assert parsed.command == "run"


def test_security_context_and_resources(render: Callable[..., list[dict[str, Any]]]) -> None:
    objs = render()
    pod = one(objs, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = _container(objs)
    sc = container["securityContext"]
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert container["resources"]["requests"]["memory"] and container["resources"]["limits"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["HOME"] == "/tmp" and "/tmp" in mounts, "a read-only root needs a writable HOME"
    assert env["MALLOC_ARENA_MAX"] == "2", "per-thread malloc arenas inflate the operator's RSS"


def test_metrics_service_selects_the_operator(render: Callable[..., list[dict[str, Any]]]) -> None:
    objs = render()
    service = one(objs, "Service")
    labels = one(objs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"] == [
        {"name": "metrics", "port": 8080, "targetPort": "metrics", "protocol": "TCP"}
    ]
    assert not by_kind(objs, "ServiceMonitor")
    monitored = render(
        {
            "metrics": {
                "port": 8080,
                "serviceMonitor": {"enabled": True, "labels": {"release": "prom"}},
            }
        }
    )
    monitor = one(monitored, "ServiceMonitor")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"
    assert monitor["metadata"]["labels"]["release"] == "prom"


def test_optional_license_policy(render: Callable[..., list[dict[str, Any]]]) -> None:
    assert not by_kind(render(), "LicensePolicy")
    spec = {"mode": "Warn", "allowedClasses": ["permissive"], "jurisdiction": "EU"}
    objs = render({"licensePolicy": {"create": True, "name": "org", "spec": spec}})
    policy = one(objs, "LicensePolicy")
    assert policy["apiVersion"] == "kubellm.io/v1alpha1"
    assert policy["metadata"]["name"] == "org" and "namespace" not in policy["metadata"]
    assert policy["spec"] == spec, "values must not be merged into the user's policy"
    LicensePolicySpec.model_validate(policy["spec"])


def test_hub_settings_become_env(render: Callable[..., list[dict[str, Any]]]) -> None:
    env = _container(
        render(
            {
                "hub": {
                    "endpoint": "https://hf-mirror.example",
                    "offline": True,
                    "tokenSecretRef": {"name": "hf", "key": "token"},
                }
            }
        )
    )["env"]
    by_name = {e["name"]: e for e in env}
    assert by_name["HF_ENDPOINT"]["value"] == "https://hf-mirror.example"
    assert by_name["HF_HUB_OFFLINE"]["value"] == "1"
    assert by_name["HF_TOKEN"]["valueFrom"] == {"secretKeyRef": {"name": "hf", "key": "token"}}
    assert "HF_TOKEN" not in {e["name"] for e in _container(render())["env"]}


def test_crds_ship_with_the_chart(render: Callable[..., list[dict[str, Any]]]) -> None:
    crds = by_kind(render(None, "--include-crds"), "CustomResourceDefinition")
    assert sorted(c["metadata"]["name"] for c in crds) == [
        "licensepolicies.kubellm.io",
        "llmdeployments.kubellm.io",
    ]


@pytest.mark.parametrize(
    "bad",
    [
        {"replicaCount": "three"},
        {"image": {"repository": "x", "pullPolicy": "Sometimes"}},
        {"metrics": {"port": "eighty"}},
        {"metrics": {"port": 70000}},
        {"resources": "lots"},
        {"resources": {"limits": {"memory": "a lot"}}},
        {"health": {"enabled": True, "port": 8081, "path": "healthz"}},
        {"licensePolicy": {"create": True, "name": "Not_A_Name", "spec": {}}},
        {"hub": {"endpoint": "hf-mirror.example"}},
        {"serviceAccount": {"create": "yes"}},
    ],
    ids=lambda v: "-".join(str(k) for k in v),
)
def test_schema_rejects_bad_values(helm: str, tmp_path: Path, bad: dict[str, Any]) -> None:
    proc = run_helm(helm, "template", RELEASE, str(CHART), *_set_args(bad, tmp_path))
    assert proc.returncode != 0, f"values {bad} were accepted"
    assert "schema" in proc.stderr.lower(), proc.stderr


def test_service_monitor_without_service_fails(helm: str, tmp_path: Path) -> None:
    bad = {
        "metrics": {
            "port": 8080,
            "service": {"enabled": False},
            "serviceMonitor": {"enabled": True},
        }
    }
    proc = run_helm(helm, "template", RELEASE, str(CHART), *_set_args(bad, tmp_path))
    assert proc.returncode != 0 and "metrics.service.enabled" in proc.stderr
