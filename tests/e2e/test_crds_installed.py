"""e2e: the generated CRDs in a real apiserver: Established, explained, validating, scalable.

Runs on the local sandbox (the session ``cluster`` fixture) or any cluster with
USE_EXISTING_CLUSTER=true. The CRDs are applied server-side and left installed (other e2e
tests use them; applying them again is a no-op).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
CRD_FILES = sorted((ROOT / "crds").glob("kubellm.io_*.yaml"))
CRDS = ("llmdeployments.kubellm.io", "licensepolicies.kubellm.io")


def _retry(fn: Any, timeout: float = 60.0) -> Any:
    """Call ``fn`` until it returns a truthy value (discovery and OpenAPI publish lag a bit)."""
    deadline = time.monotonic() + timeout
    while True:
        result = fn()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


@pytest.fixture(scope="module")
def crds(cluster: Any) -> Iterator[Any]:
    assert CRD_FILES, "crds/ is empty: run .venv/bin/python -m kubellm crds --write crds"
    for path in CRD_FILES:
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
    for name in CRDS:
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{name}", "--timeout=60s")
    yield cluster


def _llmd(name: str, **spec: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"model": {"repo": "Qwen/Qwen3-8B"}}
    body.update(spec)
    return {
        "apiVersion": "kubellm.io/v1alpha1",
        "kind": "LLMDeployment",
        "metadata": {"name": name},
        "spec": body,
    }


def _create(cluster: Any, namespace: str | None, obj: dict[str, Any]) -> Any:
    args = ["create", "-f", "-"]
    if namespace:
        args += ["-n", namespace]
    return cluster.kubectl(*args, input=yaml.safe_dump(obj), check=False)


def test_crds_established_with_names(crds: Any) -> None:
    out = crds.kubectl("get", "crd", *CRDS, "-o", "json").stdout
    items = {item["metadata"]["name"]: item for item in json.loads(out)["items"]}
    llmd = items["llmdeployments.kubellm.io"]
    assert llmd["spec"]["names"]["shortNames"] == ["llmd"]
    assert llmd["spec"]["scope"] == "Namespaced"
    assert items["licensepolicies.kubellm.io"]["spec"]["scope"] == "Cluster"
    for item in items.values():
        conditions = {c["type"]: c["status"] for c in item["status"]["conditions"]}
        assert conditions.get("Established") == "True"
        assert conditions.get("NonStructuralSchema") is None, "apiserver says: not structural"


def test_kubectl_explain_shows_descriptions(crds: Any) -> None:
    def explain() -> str:
        proc = crds.kubectl("explain", "llmd.spec.gpu", check=False)
        return proc.stdout if proc.returncode == 0 else ""

    text = _retry(explain)
    assert "GPU type, count and utilization" in text
    assert "memoryUtilization" in text
    count = crds.kubectl("explain", "llmd.spec.gpu.count").stdout
    assert "auto" in count


def test_valid_example_is_accepted_and_defaulted(crds: Any, namespace: str) -> None:
    obj = _llmd("ok", quantization="awq", context={"maxModelLen": 8192}, gpu={"count": 2})
    proc = _create(crds, namespace, obj)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(crds.kubectl("get", "llmd/ok", "-n", namespace, "-o", "json").stdout)
    spec = got["spec"]
    # No schema default for the revision: it depends on spec.model.source (main on the Hugging
    # Face Hub, master on ModelScope), so kubellm applies it (ModelSpec) and the object keeps
    # what the user wrote.
    assert "revision" not in spec["model"]
    from kubellm.api.v1alpha1 import LLMDeployment

    assert LLMDeployment.model_validate(got).spec.model.revision == "main"
    assert spec["runtime"] == "auto"
    assert spec["replicas"] == 1
    assert spec["gpu"] == {"count": 2, "type": "auto", "memoryUtilization": 0.9}
    assert spec["context"]["maxModelLen"] == 8192
    assert spec["cache"]["enabled"] is True


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"quantization": "int3"}, 'Unsupported value: "int3"'),
        ({"quantization": "gguf", "runtime": "tgi"}, "runtime tgi cannot serve quantization gguf"),
        ({"replicas": -1}, "spec.replicas"),
        ({"context": {"maxModelLen": "big"}}, "maxModelLen must be an integer"),
        ({"context": {"maxModelLen": 4}}, "maxModelLen must be an integer"),
        ({"gpu": {"count": "many"}}, "gpu.count must be an integer"),
        ({"gpu": {"memoryUtilization": 1.5}}, "spec.gpu.memoryUtilization"),
        ({"model": {"repo": "not a repo"}}, "spec.model.repo"),
        (
            {"model": {"repo": "a/b", "file": "m.gguf"}, "quantization": "awq"},
            "model.file selects a GGUF file",
        ),
    ],
)
def test_invalid_objects_are_rejected(
    crds: Any, namespace: str, spec: dict[str, Any], message: str
) -> None:
    proc = _create(crds, namespace, _llmd("bad", **spec))
    assert proc.returncode != 0, "the apiserver accepted an invalid LLMDeployment"
    assert message in proc.stderr, proc.stderr


def test_scale_subresource(crds: Any, namespace: str) -> None:
    assert _create(crds, namespace, _llmd("scaled")).returncode == 0
    crds.kubectl("scale", "llmd/scaled", "--replicas=3", "-n", namespace)
    replicas = crds.kubectl(
        "get", "llmd/scaled", "-n", namespace, "-o", "jsonpath={.spec.replicas}"
    ).stdout
    assert replicas == "3"
    scale = json.loads(
        crds.kubectl(
            "get",
            "--raw",
            f"/apis/kubellm.io/v1alpha1/namespaces/{namespace}/llmdeployments/scaled/scale",
        ).stdout
    )
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 3


def test_printer_columns(crds: Any, namespace: str) -> None:
    assert _create(crds, namespace, _llmd("cols")).returncode == 0
    header = crds.kubectl("get", "llmd", "-n", namespace).stdout.splitlines()[0].split()
    assert header == ["NAME", "MODEL", "RUNTIME", "GPUS", "READY", "REASON", "AGE"]


def test_licensepolicy_cluster_scoped_and_validated(crds: Any) -> None:
    name = f"e2e-policy-{int(time.time() * 1000) % 10**8}"
    policy = {
        "apiVersion": "kubellm.io/v1alpha1",
        "kind": "LicensePolicy",
        "metadata": {"name": name},
        "spec": {"namespaces": ["team-*"], "jurisdiction": "DE"},
    }
    proc = _create(crds, None, policy)
    assert proc.returncode == 0, proc.stderr
    try:
        got = json.loads(crds.kubectl("get", f"licensepolicy/{name}", "-o", "json").stdout)
        assert got["spec"]["mode"] == "Enforce"
        assert got["spec"]["allowedClasses"] == ["permissive", "restrictive-community"]
        header = crds.kubectl("get", "licensepolicies").stdout.splitlines()[0].split()
        assert header == ["NAME", "MODE", "CLASSES", "AGE"]
    finally:
        crds.kubectl("delete", f"licensepolicy/{name}", check=False)
    bad = {**policy, "metadata": {"name": name + "-bad"}}
    bad["spec"] = {"allowedLicenses": ["gemma"], "deniedLicenses": ["gemma"]}
    proc = _create(crds, None, bad)
    assert proc.returncode != 0
    assert "both in allowedLicenses and in deniedLicenses" in proc.stderr
