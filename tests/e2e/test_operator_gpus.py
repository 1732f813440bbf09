"""e2e: GPUs are committed first come, first served — never a Pending serving pod.

On the default sandbox nodes (2 x 8 H100, 2 x 4 A100-80GB, 4 x 1 L4), three LLMDeployments that
each need a whole 8 x H100 node are applied at once: exactly two become Ready, the third is
``Sized=False/GpusBusy`` with the numbers and gets no Deployment and no pods; deleting one of the
Ready ones lets the third in. Same operator process and fixtures as ``test_operator.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_operator import get_llmd, hub, ns, operator, wait_ready  # noqa: F401 (fixtures)
from test_operator_helpers import (
    apply_manifest,
    condition,
    get_json,
    items,
    llmd,
    policy,
    wait_until,
)

pytestmark = pytest.mark.e2e

H100 = "NVIDIA-H100-80GB-HBM3"
NAMES = ("big-a", "big-b", "big-c")


def h100_nodes(cluster: Any) -> set[str]:
    nodes = get_json(cluster, "nodes", "-l", f"nvidia.com/gpu.product={H100}")
    return {n["metadata"]["name"] for n in (nodes or {}).get("items", [])}


def gpu_pods_on(cluster: Any, nodes: set[str]) -> list[dict[str, Any]]:
    found = get_json(cluster, "pods", "-A") or {}
    return [p for p in found.get("items", []) if p["spec"].get("nodeName") in nodes
            and p["status"].get("phase") not in ("Succeeded", "Failed")]


def states(cluster: Any, namespace: str) -> dict[str, tuple[str, str] | None]:
    out: dict[str, tuple[str, str] | None] = {}
    for name in NAMES:
        obj = get_llmd(cluster, namespace, name)
        ready, sized = condition(obj, "Ready"), condition(obj, "Sized")
        if ready and ready[0] == "True":
            out[name] = ("Ready", "")
        elif sized and sized[0] == "False":
            out[name] = ("Sized=False", sized[1])
        else:
            out[name] = None
    return out


def plan(cluster: Any, hub_endpoint: str, namespace: str, doc: dict[str, Any],
         tmp: Path) -> dict[str, Any]:
    """``kubellm plan --kubeconfig`` of ``doc``: it must count GPUs as the operator does."""
    path = tmp / f"{doc['metadata']['name']}.yaml"
    path.write_text(yaml.safe_dump_all([policy(f"pol-{namespace}", [namespace]), doc]))
    done = subprocess.run(
        [sys.executable, "-m", "kubellm", "plan", "-f", str(path), "--kubeconfig",
         cluster.kubeconfig, "-o", "json"], capture_output=True, text=True, check=False,
        env={**os.environ, "HF_ENDPOINT": hub_endpoint, "HF_TOKEN": "hf_good"})
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def test_three_whole_node_deployments_on_two_nodes(cluster: Any, ns: str,  # noqa: F811
                                                   hub: Any, tmp_path: Path) -> None:  # noqa: F811
    nodes = h100_nodes(cluster)
    assert len(nodes) == 2, nodes
    # earlier tests' namespaces are deleted asynchronously: start from empty H100 nodes
    wait_until(lambda: not gpu_pods_on(cluster, nodes), 120, what="H100 nodes free")
    docs = [llmd(name, ns, "meta-llama/Llama-3.3-70B-Instruct", quantization="none",
                 gpu={"type": "h100", "count": 8}, context={"maxModelLen": 8192},
                 hubTokenSecretRef={"name": "hf-token", "key": "HF_TOKEN"}) for name in NAMES]
    apply_manifest(cluster, docs)  # one kubectl apply: all three at once

    def settled() -> dict[str, tuple[str, str] | None] | None:
        st = states(cluster, ns)
        ready = [n for n, s in st.items() if s == ("Ready", "")]
        busy = [n for n, s in st.items() if s == ("Sized=False", "GpusBusy")]
        return st if len(ready) == 2 and len(busy) == 1 else None

    try:
        st = wait_until(settled, 180, what="two Ready and one GpusBusy")
    except AssertionError:
        pending = [p["metadata"]["name"] for p in items(cluster, "pods", ns)
                   if not p["spec"].get("nodeName")]
        raise AssertionError(f"states {states(cluster, ns)}; Pending pods {pending}") from None
    waiting = next(n for n, s in st.items() if s and s[0] == "Sized=False")
    ready = [n for n in NAMES if n != waiting]
    sized = condition(get_llmd(cluster, ns, waiting), "Sized")
    assert sized is not None and "only 0 of those GPUs are free" in sized[2], sized
    assert "8 x NVIDIA-H100" in sized[2], sized  # the numbers: what it needs
    ready_cond = condition(get_llmd(cluster, ns, waiting), "Ready")
    assert ready_cond is not None and ready_cond[:2] == ("False", "GpusBusy"), ready_cond

    def check_no_pending() -> None:
        deployments = sorted(d["metadata"]["name"] for d in items(cluster, "deployments", ns))
        assert deployments == sorted(ready), deployments
        pods = items(cluster, "pods", ns, "-l", "app.kubernetes.io/component=server")
        assert all(p["spec"].get("nodeName") for p in pods), "a serving pod is Pending"
        assert sorted(p["metadata"]["labels"]["app.kubernetes.io/instance"] for p in pods) == (
            sorted(ready))
        assert sorted(p["spec"]["nodeName"] for p in pods) == sorted(nodes)

    check_no_pending()
    # `kubellm plan` against the cluster says the same: the waiting one does not fit now, a
    # running one still fits (its own GPUs do not count against it)
    by_name = {d["metadata"]["name"]: d for d in docs}
    refused = plan(cluster, hub.endpoint, ns, by_name[waiting], tmp_path)
    assert (refused["refusal"] or {}).get("reason") == "GpusBusy", refused.get("refusal")
    kept = plan(cluster, hub.endpoint, ns, by_name[ready[0]], tmp_path)
    assert kept["deployable"] and kept["sizing"]["gpuType"] == H100, kept.get("refusal")
    time.sleep(7)  # two resyncs (3 s): whoever was first keeps its GPUs, the third still waits
    assert states(cluster, ns) == st
    check_no_pending()

    # GPUs freed: the waiting one is deployed on the node that was released
    cluster.kubectl("delete", "llmd", ready[0], "-n", ns, "--wait=true", "--timeout=60s")
    obj = wait_ready(cluster, ns, waiting, timeout=180)
    assert obj["status"]["sizing"]["gpuType"] == H100
    assert obj["status"]["sizing"]["gpusPerReplica"] == 8
    wait_until(lambda: sorted(d["metadata"]["name"] for d in items(cluster, "deployments", ns))
               == sorted([ready[1], waiting]), 60, what="the deleted one's Deployment collected")
    pods = items(cluster, "pods", ns, "-l", "app.kubernetes.io/component=server")
    assert pods and all(p["spec"].get("nodeName") for p in pods), "a serving pod is Pending"
    still = condition(get_llmd(cluster, ns, ready[1]), "Ready")
    assert still is not None and still[0] == "True", "the other one kept its GPUs"
