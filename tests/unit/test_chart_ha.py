"""The chart's high-availability and catalogue-override values: replicaCount, leaderElection,
podDisruptionBudget, gpuCatalog.extra, runtimes.*.image (helm template; helm as in test_chart)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_chart import (  # noqa: F401 (helm and render are fixtures)
    CHART,
    FULLNAME,
    NAMESPACE,
    RELEASE,
    ROLE_RULES_FILE,
    _set_args,
    by_kind,
    helm,
    one,
    render,
    run_helm,
)

from kubellm.cli import build_parser
from kubellm.runtimes.catalog import parse_image_overrides
from kubellm.sizing.catalog import read_gpu_catalog_file

Render = Callable[..., list[dict[str, Any]]]
GPU = {"product": "NVIDIA-RTX-PRO-6000-Blackwell", "aliases": ["rtx-pro-6000"],
       "memory_mib": 97887, "compute_capability": "12.0", "relative_cost": 1.8,
       "source": "NVIDIA RTX PRO 6000 data sheet"}


def deployment(objs: list[dict[str, Any]]) -> dict[str, Any]:
    return one(objs, "Deployment")


def container(objs: list[dict[str, Any]]) -> dict[str, Any]:
    return dict(deployment(objs)["spec"]["template"]["spec"]["containers"][0])


def arg(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args else None


def fails(helm: str, tmp_path: Path, values: dict[str, Any]) -> str:  # noqa: F811
    proc = run_helm(helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE,
                    *_set_args(values, tmp_path))
    assert proc.returncode != 0, f"values {values} were accepted"
    return proc.stderr


def test_default_is_one_replica_electing_a_leader(render: Render) -> None:  # noqa: F811
    objs = render()
    spec = deployment(objs)["spec"]
    assert spec["replicas"] == 1
    assert spec["strategy"] == {"type": "RollingUpdate",
                                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    args = container(objs)["args"]
    assert "--leader-elect" in args
    assert arg(args, "--leader-election-namespace") == NAMESPACE
    assert arg(args, "--leader-election-id") == FULLNAME
    env = {e["name"]: e for e in container(objs)["env"]}
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    parsed = build_parser().parse_args(args)
    assert parsed.leader_elect and parsed.leader_election_id == FULLNAME
    assert not by_kind(objs, "PodDisruptionBudget") and not by_kind(objs, "ConfigMap")


def test_the_lease_role_is_namespaced_and_bound(render: Render) -> None:  # noqa: F811
    objs = render()
    role, binding = one(objs, "Role"), one(objs, "RoleBinding")
    assert role["metadata"]["namespace"] == NAMESPACE == binding["metadata"]["namespace"]
    assert role["rules"] == yaml.safe_load(ROLE_RULES_FILE.read_text())
    assert role["rules"] == [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                              "verbs": ["get", "create", "update"]}]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}
    account = one(objs, "ServiceAccount")["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account,
                                    "namespace": NAMESPACE}]
    cluster_rules = one(objs, "ClusterRole")["rules"]
    assert all("leases" not in r["resources"] for r in cluster_rules), "leases: namespaced only"
    assert not by_kind(render({"rbac": {"create": False}}), "Role")


def test_without_leader_election_one_pod_recreated(render: Render) -> None:  # noqa: F811
    objs = render({"leaderElection": {"enabled": False}})
    assert deployment(objs)["spec"]["strategy"] == {"type": "Recreate"}
    args = container(objs)["args"]
    assert not [a for a in args if a.startswith("--leader-elect")]
    assert not by_kind(objs, "Role") and not by_kind(objs, "RoleBinding")


def test_several_replicas_need_leader_election(render: Render, helm: str,  # noqa: F811
                                               tmp_path: Path) -> None:
    assert deployment(render({"replicaCount": 3}))["spec"]["replicas"] == 3
    err = fails(helm, tmp_path, {"replicaCount": 3, "leaderElection": {"enabled": False}})
    assert "replicaCount > 1 needs leaderElection.enabled=true" in err, err


def test_pod_disruption_budget(render: Render, helm: str, tmp_path: Path) -> None:  # noqa: F811
    objs = render({"replicaCount": 2, "podDisruptionBudget": {"enabled": True}})
    pdb = one(objs, "PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1" and pdb["spec"]["minAvailable"] == 1
    labels = deployment(objs)["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pdb["metadata"]["namespace"] == NAMESPACE
    err = fails(helm, tmp_path, {"podDisruptionBudget": {"enabled": True}})
    assert "podDisruptionBudget.enabled needs replicaCount > 1" in err, err


def test_gpu_catalog_extra_is_mounted_and_passed(render: Render,  # noqa: F811
                                                 tmp_path: Path) -> None:
    objs = render({"gpuCatalog": {"extra": [GPU]}})
    config = one(objs, "ConfigMap")
    assert config["metadata"]["name"] == f"{FULLNAME}-gpu-catalog"
    c = container(objs)
    path = arg(c["args"], "--gpu-catalog")
    mount = next(m for m in c["volumeMounts"] if m["name"] == "gpu-catalog")
    assert mount["readOnly"] is True and path == f"{mount['mountPath']}/gpus.yaml"
    volumes = deployment(objs)["spec"]["template"]["spec"]["volumes"]
    assert {"name": "gpu-catalog", "configMap": {"name": config["metadata"]["name"]}} in volumes
    # the file the operator reads passes its own validation and says what the values said
    written = tmp_path / "gpus.yaml"
    written.write_text(config["data"]["gpus.yaml"])
    (gpu,) = read_gpu_catalog_file(str(written))
    assert gpu.product == GPU["product"] and gpu.aliases == ("rtx-pro-6000",)
    assert gpu.compute_capability == (12, 0)
    # a catalogue change rolls the pods
    other = render({"gpuCatalog": {"extra": [{**GPU, "memory_mib": 98000}]}})
    annotations = deployment(objs)["spec"]["template"]["metadata"]["annotations"]
    assert annotations["checksum/gpu-catalog"] != deployment(other)["spec"]["template"][
        "metadata"]["annotations"]["checksum/gpu-catalog"]


def test_runtime_images(render: Render) -> None:  # noqa: F811
    assert "--runtime-image" not in container(render())["args"]
    args = container(render({"runtimes": {"vllm": {"image": "mirror.example/vllm:v0.29.0"},
                                          "tgi": {"image": "mirror.example/tgi:3.3.7"}}}))["args"]
    pairs = [args[i + 1] for i, a in enumerate(args) if a == "--runtime-image"]
    assert pairs == ["tgi=mirror.example/tgi:3.3.7", "vllm=mirror.example/vllm:v0.29.0"]
    assert parse_image_overrides(pairs) == {"tgi": "mirror.example/tgi:3.3.7",
                                            "vllm": "mirror.example/vllm:v0.29.0"}
    assert build_parser().parse_args(args).runtime_image == pairs


@pytest.mark.parametrize("bad", [
    {"replicaCount": -1},
    {"leaderElection": {"enabled": "yes"}},
    {"leaderElection": {"enabled": True, "leaseName": "x"}},
    {"podDisruptionBudget": {"enabled": True, "minAvailable": 2}},
    {"gpuCatalog": {"extra": [{k: v for k, v in GPU.items() if k != "memory_mib"}]}},
    {"gpuCatalog": {"extra": [{**GPU, "memory": 1}]}},
    {"gpuCatalog": {"extra": [{**GPU, "compute_capability": "Blackwell"}]}},
    {"runtimes": {"tensorrt": {"image": "x/y:1"}}},
    {"runtimes": {"vllm": {"image": "has spaces"}}},
], ids=lambda v: "-".join(str(k) for k in v))
def test_schema_rejects_bad_ha_and_catalogue_values(helm: str, tmp_path: Path,  # noqa: F811
                                                    bad: dict[str, Any]) -> None:
    err = fails(helm, tmp_path, bad)
    assert "schema" in err.lower(), err
