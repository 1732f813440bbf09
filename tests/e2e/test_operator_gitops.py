"""e2e: a GitOps sync stays clean — the operator writes an LLMDeployment's status, never its spec.

Argo CD applies what is in Git (server-side apply with field manager ``argocd-controller`` when
``ServerSideApply=true``, client-side apply otherwise) and calls the Application OutOfSync when
the live object differs from Git in the fields Git sets. So after the operator has taken an
LLMDeployment all the way to Ready (and through a denial, which is where a careless operator
"fixes" a spec), these must hold on the real apiserver:

- ``metadata.generation`` is still the one the apply produced (any spec write bumps it);
- no field manager other than the applier owns anything under ``spec``; the operator's managed
  fields are on the ``status`` subresource (plus kopf's bookkeeping annotations);
- ``kubectl diff`` of the same manifest, with the same field manager, finds nothing to change.

Same operator process and fixtures as ``test_operator.py``.
"""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
import yaml
from test_operator import get_llmd, hub, ns, operator, wait_condition, wait_ready  # noqa: F401
from test_operator_helpers import apply_manifest, example, llmd

pytestmark = pytest.mark.e2e

ARGOCD_MANAGER = "argocd-controller"  # the field manager Argo CD's server-side apply uses


def managed_fields(cluster: Any, namespace: str, name: str) -> list[dict[str, Any]]:
    out = cluster.kubectl("get", "llmd", name, "-n", namespace, "-o", "json",
                          "--show-managed-fields").stdout
    return list(json.loads(out)["metadata"].get("managedFields") or [])


def spec_owners(entries: list[dict[str, Any]]) -> set[str]:
    """Managers owning any field under ``spec`` (of the main resource, not a subresource)."""
    return {e["manager"] for e in entries
            if not e.get("subresource") and "f:spec" in (e.get("fieldsV1") or {})}


def server_side_apply(cluster: Any, doc: dict[str, Any], *extra: str) -> dict[str, Any]:
    out = cluster.kubectl("apply", "--server-side", f"--field-manager={ARGOCD_MANAGER}",
                          "-o", "json", *extra, "-f", "-", input=yaml.safe_dump(doc)).stdout
    applied: dict[str, Any] = json.loads(out)
    return applied


def kubectl_diff(cluster: Any, doc: dict[str, Any],
                 *extra: str) -> subprocess.CompletedProcess[str]:
    """``kubectl diff``: exit 0 = in sync, 1 = differs, > 1 = error."""
    result: subprocess.CompletedProcess[str] = cluster.kubectl(
        "diff", *extra, "-f", "-", input=yaml.safe_dump(doc), check=False)
    assert result.returncode in (0, 1), result.stderr
    return result


def assert_git_clean(cluster: Any, namespace: str, doc: dict[str, Any], generation: int,
                     applied_spec: dict[str, Any]) -> None:
    name = doc["metadata"]["name"]
    live = get_llmd(cluster, namespace, name)
    assert live is not None
    assert live["metadata"]["generation"] == generation, "the spec was written after the apply"
    assert live["spec"] == applied_spec
    entries = managed_fields(cluster, namespace, name)
    assert spec_owners(entries) == {ARGOCD_MANAGER}, entries
    # the operator (field manager kubellm) writes through the status subresource only
    ours = [e for e in entries if e["manager"] == "kubellm"]
    assert ours and all(e.get("subresource") == "status" for e in ours), ours
    diff = kubectl_diff(cluster, doc, "--server-side", f"--field-manager={ARGOCD_MANAGER}")
    assert diff.returncode == 0, f"live object differs from Git:\n{diff.stdout}"


def test_operator_never_writes_the_spec(cluster: Any, ns: str) -> None:  # noqa: F811
    doc = example("qwen2.5-7b-l4.yaml", ns)
    name = doc["metadata"]["name"]
    applied = server_side_apply(cluster, doc)
    generation, spec = applied["metadata"]["generation"], applied["spec"]

    obj = wait_ready(cluster, ns, name, timeout=120)
    assert obj["status"]["observedGeneration"] == generation
    assert_git_clean(cluster, ns, doc, generation, spec)

    # Re-syncing the unchanged manifest is a no-op: same generation, still clean.
    again = server_side_apply(cluster, doc)
    assert again["metadata"]["generation"] == generation
    assert_git_clean(cluster, ns, doc, generation, spec)


def test_denied_deployment_keeps_its_spec(cluster: Any, ns: str) -> None:  # noqa: F811
    """A refusal (scale to zero, LicenseDenied) is reported in status, not forced into the spec."""
    doc = llmd("mistral", ns, "mistralai/Mistral-Large-Instruct-2407", replicas=2,
               hubTokenSecretRef={"name": "hf-token", "key": "HF_TOKEN"})
    applied = server_side_apply(cluster, doc)
    generation, spec = applied["metadata"]["generation"], applied["spec"]
    wait_condition(cluster, ns, "mistral", "Ready", "False", "LicenseDenied")
    live = get_llmd(cluster, ns, "mistral")
    assert live and live["spec"]["replicas"] == 2  # not "corrected" to 0
    assert_git_clean(cluster, ns, doc, generation, spec)


def test_client_side_apply_stays_in_sync(cluster: Any, ns: str) -> None:  # noqa: F811
    """Argo CD without ServerSideApply: a client-side apply followed by the operator's work
    still diffs clean (kopf's annotations and status are not in the manifest's fields)."""
    doc = example("qwen2.5-7b-tgi.yaml", ns)
    name = doc["metadata"]["name"]
    apply_manifest(cluster, doc)
    created = get_llmd(cluster, ns, name)
    assert created is not None
    generation = created["metadata"]["generation"]
    wait_ready(cluster, ns, name, timeout=120)
    live = get_llmd(cluster, ns, name)
    assert live and live["metadata"]["generation"] == generation
    diff = kubectl_diff(cluster, doc)
    assert diff.returncode == 0, f"live object differs from Git:\n{diff.stdout}"
