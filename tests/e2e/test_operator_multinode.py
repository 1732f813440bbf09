"""e2e: a replica that needs more GPUs than one node has (16 x H100 on 2 x 8 H100 nodes) is
served by a LeaderWorkerSet, never by one Pending pod asking for 16 GPUs.

(a) Without the LeaderWorkerSet CRD the LLMDeployment is ``Ready=False/KindNotServed`` and nothing
exists for it: no Pod, no Deployment, no Service, no cache PVC or download Job.
(b) With a minimal CRD of our own (``data/lws-crd.yaml``) the operator creates the LWS (2 pods of
8 GPUs per group) and its leader-only Service; no LWS controller runs in the sandbox, so the test
writes the LWS status by hand and the LLMDeployment becomes Available/Ready from it.
Same operator process and fixtures as ``test_operator.py``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from test_operator import get_llmd, hub, ns, operator, wait_ready  # noqa: F401 (fixtures)
from test_operator_helpers import apply_manifest, condition, get_json, items, llmd, wait_until

pytestmark = pytest.mark.e2e

LWS_CRD = Path(__file__).parent / "data" / "lws-crd.yaml"
CRD_NAME = "leaderworkersets.leaderworkerset.x-k8s.io"
LWS_RESOURCE = "leaderworkersets.leaderworkerset.x-k8s.io"
H100 = "NVIDIA-H100-80GB-HBM3"
WORKER_INDEX = "leaderworkerset.sigs.k8s.io/worker-index"


def h100_busy(cluster: Any) -> list[str]:
    nodes = get_json(cluster, "nodes", "-l", f"nvidia.com/gpu.product={H100}") or {}
    names = {n["metadata"]["name"] for n in nodes.get("items", [])}
    pods = (get_json(cluster, "pods", "-A") or {}).get("items", [])
    return [p["metadata"]["name"] for p in pods if p["spec"].get("nodeName") in names
            and p["status"].get("phase") not in ("Succeeded", "Failed")]


def gpus(template: dict[str, Any]) -> list[str]:
    return [c["resources"]["limits"]["nvidia.com/gpu"] for c in template["spec"]["containers"]]


def test_multi_node_needs_the_lws_crd_then_is_served_by_it(
        cluster: Any, ns: str, hub: Any) -> None:  # noqa: F811
    cluster.kubectl("delete", "crd", CRD_NAME, "--ignore-not-found", "--wait=true")
    wait_until(lambda: not h100_busy(cluster), 120, what="H100 nodes free")
    doc = llmd("big", ns, "meta-llama/Llama-3.3-70B-Instruct", quantization="none",
               gpu={"type": "h100", "count": 16}, context={"maxModelLen": 8192},
               hubTokenSecretRef={"name": "hf-token", "key": "HF_TOKEN"})
    try:
        apply_manifest(cluster, doc)

        # (a) no CRD: a clear condition, and nothing at all created
        def not_served() -> tuple[str, str, str] | None:
            ready = condition(get_llmd(cluster, ns, "big"), "Ready")
            return ready if ready and ready[1] == "KindNotServed" else None

        ready = wait_until(not_served, 90, what="Ready=False/KindNotServed")
        assert ready[0] == "False"
        assert "LeaderWorkerSet" in ready[2] and "leaderworkerset.x-k8s.io" in ready[2], ready
        wait_until(lambda: get_llmd(cluster, ns, "big")["status"].get("observedGeneration"), 10,
                   what="status written")
        time.sleep(4)  # at least one resync (3 s) later, still nothing
        for kind in ("pods", "deployments", "services", "jobs", "persistentvolumeclaims"):
            assert items(cluster, kind, ns) == [], f"{kind} exist without a LeaderWorkerSet"

        # (b) the CRD appears: the operator creates the LWS and its Service on its own
        cluster.kubectl("apply", "-f", str(LWS_CRD))
        cluster.kubectl("wait", "--for", "condition=Established", f"crd/{CRD_NAME}",
                        "--timeout=60s")
        lws = wait_until(lambda: get_json(cluster, LWS_RESOURCE, "big", "-n", ns), 180,
                         what="the LeaderWorkerSet")
        group = lws["spec"]["leaderWorkerTemplate"]
        assert lws["spec"]["replicas"] == 1
        assert group["size"] == 2 and group["restartPolicy"] == "RecreateGroupOnPodRestart"
        assert gpus(group["leaderTemplate"]) == ["8"] and gpus(group["workerTemplate"]) == ["8"]
        assert "--pipeline-parallel-size 2" in group["leaderTemplate"]["spec"]["containers"][0][
            "args"][0]
        owner = lws["metadata"]["ownerReferences"][0]
        assert (owner["kind"], owner["name"]) == ("LLMDeployment", "big")
        assert items(cluster, "deployments", ns) == []
        service = wait_until(lambda: get_json(cluster, "service", "big", "-n", ns), 60,
                             what="the Service")
        assert service["spec"]["selector"][WORKER_INDEX] == "0"
        available = condition(get_llmd(cluster, ns, "big"), "Available")
        assert available is not None and available[0] == "False", available

        # no LWS controller here: report one ready group by hand
        patch = {"status": {"replicas": 1, "readyReplicas": 1}}
        cluster.kubectl("patch", LWS_RESOURCE, "big", "-n", ns, "--subresource=status",
                        "--type=merge", "-p", json.dumps(patch))
        obj = wait_ready(cluster, ns, "big", timeout=60)
        assert obj["status"]["readyReplicas"] == 1
        assert f"{WORKER_INDEX}=0" in obj["status"]["selector"]
        assert obj["status"]["sizing"]["gpusPerReplica"] == 16
        available = condition(obj, "Available")
        assert available is not None and available[:2] == ("True", "MinimumReplicasAvailable")
    finally:
        cluster.kubectl("delete", "llmd", "big", "-n", ns, "--ignore-not-found", "--wait=true",
                        "--timeout=60s", check=False)
        cluster.kubectl("delete", "crd", CRD_NAME, "--ignore-not-found", check=False)
