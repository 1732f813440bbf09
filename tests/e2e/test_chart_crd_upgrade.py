"""e2e: upgrading the chart's CRDs, as charts/kubellm/README.md "Upgrading the CRDs" documents.

The "previous chart version" is simulated: a copy of charts/kubellm whose crds/ hold an older
LLMDeployment CRD, derived here from the current one (no ``spec.servedModelName``, no ``Reason``
printer column). The test shows, against a real apiserver:

(a) ``helm upgrade`` to the current chart leaves the CRD as it was (Helm installs crds/ only on
    install), so a field only the new schema knows is still refused;
(b) ``kubectl apply --server-side --force-conflicts -f <chart>/crds/`` brings the new schema
    (without ``--force-conflicts`` it fails: Helm created the CRDs by server-side apply and its
    field manager owns ``.spec.versions``); the existing LLMDeployment is untouched (same
    resourceVersion and spec), the new field is accepted and kept, the new printer column shows;
(c) removing a field from the schema hides its stored values at once (the apiserver prunes on
    read), and the first write afterwards, even a status patch, deletes them from etcd for good:
    schema changes within v1alpha1 must be additive.

CRDs are cluster-wide and other e2e tests use the real kubellm.io ones, so both charts carry the
same CRDs under a group and kind of this test's own (``crd-upgrade-<id>.kubellm.test``,
``LLMDeploymentUpgrade``); only the names differ, the schemas are kubellm's. Nothing of kubellm's
installed CRDs is touched, also with USE_EXISTING_CLUSTER=true.
"""

from __future__ import annotations

import copy
import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_chart_install import CHART, Helm, _helm_path
from test_operator_helpers import wait_until

pytestmark = pytest.mark.e2e

NEW_FIELD = "servedModelName"  # a spec field the simulated previous version does not have
NEW_COLUMN = "Reason"


def _crds() -> dict[str, dict[str, Any]]:
    return {p.name: yaml.safe_load(p.read_text()) for p in sorted((CHART / "crds").glob("*.yaml"))}


def _renamed(crd: dict[str, Any], group: str) -> dict[str, Any]:
    """The CRD under the test's own group and kind (no short names or categories either, so
    `kubectl get llmd` elsewhere never resolves to it)."""
    out = copy.deepcopy(crd)
    names = out["spec"]["names"]
    kind = f"{names['kind']}Upgrade"
    out["spec"]["names"] = {
        "kind": kind,
        "listKind": f"{kind}List",
        "plural": kind.lower() + "s",
        "singular": kind.lower(),
    }
    out["spec"]["group"] = group
    out["metadata"]["name"] = f"{kind.lower()}s.{group}"
    return out


def _previous(crd: dict[str, Any]) -> dict[str, Any]:
    """The LLMDeployment CRD as a previous chart version had it: without NEW_FIELD and
    NEW_COLUMN."""
    out = copy.deepcopy(crd)
    (version,) = out["spec"]["versions"]
    spec = version["schema"]["openAPIV3Schema"]["properties"]["spec"]
    del spec["properties"][NEW_FIELD]
    assert NEW_FIELD not in spec.get("required", [])
    assert NEW_FIELD not in json.dumps(spec.get("x-kubernetes-validations", []))
    columns = version["additionalPrinterColumns"]
    version["additionalPrinterColumns"] = [c for c in columns if c["name"] != NEW_COLUMN]
    assert len(version["additionalPrinterColumns"]) == len(columns) - 1
    return out


def _chart_with_crds(dest: Path, crds: dict[str, dict[str, Any]]) -> Path:
    shutil.copytree(CHART, dest)
    shutil.rmtree(dest / "crds")
    (dest / "crds").mkdir()
    for name, crd in crds.items():
        (dest / "crds" / name).write_text(yaml.safe_dump(crd, sort_keys=False))
    return dest


class Crd:
    """The test CRD in the cluster, and objects of its kind in one namespace."""

    def __init__(self, cluster: Any, crd: dict[str, Any], namespace: str) -> None:
        self.cluster, self.namespace = cluster, namespace
        self.name = crd["metadata"]["name"]
        self.kind = crd["spec"]["names"]["kind"]
        self.resource = self.name  # plural.group: unambiguous for kubectl
        self.api_version = f"{crd['spec']['group']}/v1alpha1"

    def live(self) -> dict[str, Any]:
        return json.loads(self.cluster.kubectl("get", "crd", self.name, "-o", "json").stdout)

    def spec_fields(self) -> set[str]:
        (version,) = self.live()["spec"]["versions"]
        return set(version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"])

    def columns(self) -> list[str]:
        (version,) = self.live()["spec"]["versions"]
        return [c["name"] for c in version["additionalPrinterColumns"]]

    def body(self, name: str, **spec: Any) -> dict[str, Any]:
        return {
            "apiVersion": self.api_version,
            "kind": self.kind,
            "metadata": {"name": name, "namespace": self.namespace},
            "spec": {"model": {"repo": "Qwen/Qwen2.5-7B-Instruct"}, **spec},
        }

    def accepts(self, **spec: Any) -> tuple[bool, str]:
        """A server-side dry-run create with strict field validation (kubectl's default)."""
        proc = self.cluster.kubectl(
            "create",
            "--dry-run=server",
            "--validate=strict",
            "-f",
            "-",
            input=yaml.safe_dump(self.body(f"probe-{uuid.uuid4().hex[:6]}", **spec)),
            check=False,
        )
        return proc.returncode == 0, proc.stderr

    def get(self, name: str) -> dict[str, Any]:
        out = self.cluster.kubectl("get", self.resource, name, "-n", self.namespace, "-o", "json")
        return json.loads(out.stdout)

    def apply_crds(self, directory: Path, *flags: str) -> Any:
        return self.cluster.kubectl(
            "apply", "--server-side", *flags, "-f", str(directory), check=False
        )

    def wait_established(self) -> None:
        self.cluster.kubectl(
            "wait", "--for=condition=Established", f"crd/{self.name}", "--timeout=60s"
        )


def test_helm_keeps_old_crds_and_the_documented_apply_upgrades_them(
    cluster: Any, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:6]
    group = f"crd-upgrade-{suffix}.kubellm.test"
    current = {name: _renamed(crd, group) for name, crd in _crds().items()}
    llmd_file = "kubellm.io_llmdeployments.yaml"
    previous = {**current, llmd_file: _previous(current[llmd_file])}
    old_chart = _chart_with_crds(tmp_path / "old" / "kubellm", previous)
    new_chart = _chart_with_crds(tmp_path / "new" / "kubellm", current)

    helm = Helm(_helm_path(cluster), cluster.kubeconfig, tmp_path)
    release, namespace = f"kubellm-{suffix}", f"kubellm-crd-upgrade-{suffix}"
    crd = Crd(cluster, current[llmd_file], namespace)
    installed = False
    try:
        helm("install", release, str(old_chart), "--namespace", namespace, "--create-namespace")
        installed = True
        crd.wait_established()
        assert NEW_FIELD not in crd.spec_fields() and NEW_COLUMN not in crd.columns()
        ok, err = crd.accepts(**{NEW_FIELD: "qwen"})
        assert not ok and NEW_FIELD in err, "the previous schema must not know the new field"

        # An LLMDeployment created under the previous schema.
        survivor = crd.body("survivor", replicas=2, context={"maxModelLen": 8192})
        cluster.kubectl("create", "-f", "-", input=yaml.safe_dump(survivor))
        before = crd.get("survivor")
        crd_generation = crd.live()["metadata"]["generation"]

        # (a) helm upgrade to the current chart: the CRD is not changed.
        helm("upgrade", release, str(new_chart), "--namespace", namespace)
        assert crd.live()["metadata"]["generation"] == crd_generation
        assert NEW_FIELD not in crd.spec_fields() and NEW_COLUMN not in crd.columns()
        assert not crd.accepts(**{NEW_FIELD: "qwen"})[0]

        # (b) the documented command brings the new schema. --force-conflicts is needed: Helm
        # created the CRDs by server-side apply, so its field manager owns .spec.versions.
        plain = crd.apply_crds(new_chart / "crds")
        assert plain.returncode != 0 and 'conflict with "helm"' in plain.stderr, plain.stderr
        applied = crd.apply_crds(new_chart / "crds", "--force-conflicts")
        assert applied.returncode == 0, applied.stderr
        crd.wait_established()
        assert NEW_FIELD in crd.spec_fields() and NEW_COLUMN in crd.columns()
        wait_until(lambda: crd.accepts(**{NEW_FIELD: "qwen"})[0],
                   what="the new field to be accepted")
        after = crd.get("survivor")
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
        assert after["spec"] == before["spec"]
        cluster.kubectl(
            "patch", crd.resource, "survivor", "-n", namespace, "--type=merge",
            "-p", json.dumps({"spec": {NEW_FIELD: "qwen-7b"}}),
        )  # fmt: skip
        assert crd.get("survivor")["spec"][NEW_FIELD] == "qwen-7b"
        table = cluster.kubectl("get", crd.resource, "-n", namespace).stdout
        assert NEW_COLUMN.upper() in table.splitlines()[0], table

        # (c) a schema without the field: stored values are hidden at once (pruned on read) ...
        old_dir = tmp_path / "old" / "kubellm" / "crds"
        applied = crd.apply_crds(old_dir, "--force-conflicts")
        assert applied.returncode == 0, applied.stderr
        wait_until(lambda: NEW_FIELD not in crd.get("survivor")["spec"],
                   what="the field to be dropped")
        # ... and come back if the field returns before any write ...
        crd.apply_crds(new_chart / "crds", "--force-conflicts")
        wait_until(lambda: NEW_FIELD in crd.get("survivor")["spec"], what="the field to come back")
        # ... but the first write under the narrower schema deletes them for good.
        crd.apply_crds(old_dir, "--force-conflicts")
        wait_until(lambda: NEW_FIELD not in crd.get("survivor")["spec"],
                   what="the field to be dropped")
        # (a status patch, as the operator makes, is such a write)
        status = {"status": {"reason": "Touched"}}
        cluster.kubectl(
            "patch", crd.resource, "survivor", "-n", namespace, "--subresource=status",
            "--type=merge", "-p", json.dumps(status),
        )  # fmt: skip
        crd.apply_crds(new_chart / "crds", "--force-conflicts")
        wait_until(lambda: crd.accepts(**{NEW_FIELD: "qwen"})[0], what="the new schema")
        assert NEW_FIELD not in crd.get("survivor")["spec"]
    finally:
        if installed:
            helm("uninstall", release, "--namespace", namespace, "--wait", "--timeout", "120s")
        for doc in current.values():
            cluster.kubectl("delete", "crd", doc["metadata"]["name"], "--ignore-not-found")
        cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
