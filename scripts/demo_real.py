"""The real-node demo (``make demo-real``): one LLMDeployment served for real, ending in a chat
completion through its Service.

Starts a sandbox with its real worker node (root; ``scripts/demo-real.sh`` builds what is
missing first), serves a tiny random-weight Llama (built offline, tests/hubfixtures/realmodels)
from the fixture Hub on the node's bridge as a mirror (``HF_ENDPOINT``), runs the operator
(``kubellm run``) and applies a LicensePolicy and the LLMDeployment. Then it prints each
decision as status reports it (Licensed, Sized, CacheReady, Ready, with the time since apply),
the pods kubellm created (the download Job that ran ``kubellm download`` in the kubellm image,
the CPU vLLM server on the real node) and a real chat completion. The weights are random: the
answer is gibberish, the tokens are real. GPUs are simulated (the node advertises L4s; vLLM runs
on CPU). The operator stops at the end; the sandbox stays up for you to explore, as after
``make demo`` (``--down`` stops it too; ``make demo-down`` stops one left up).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "operator"), str(ROOT / "tests"), str(ROOT / "tests" / "e2e")]

NAMESPACE = "demo"
NAME = "tiny-llama"
CONDITIONS = ("Licensed", "Sized", "CacheReady", "Ready")


def step(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def follow(cluster: Any, started: float, timeout: float) -> None:
    """Print each condition transition until Ready=True (or the timeout)."""
    from test_operator_helpers import get_json

    seen: dict[str, tuple[str, str]] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        obj = get_json(cluster, "llmd", NAME, "-n", NAMESPACE) or {}
        for cond in (obj.get("status") or {}).get("conditions", []):
            now = (cond["status"], cond.get("reason", ""))
            if cond["type"] in CONDITIONS and seen.get(cond["type"]) != now:
                seen[cond["type"]] = now
                print(f"  {time.monotonic() - started:6.1f} s  {cond['type']}={now[0]} "
                      f"{now[1]}: {cond.get('message', '')}", flush=True)
        if seen.get("Ready", ("",))[0] == "True":
            return
        time.sleep(2)
    raise SystemExit(f"{NAMESPACE}/{NAME} not Ready after {timeout:.0f} s: see the pods below\n"
                     + cluster.kubectl("get", "pods", "-n", NAMESPACE, "-o", "wide",
                                       check=False).stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--down", action="store_true", help="stop the sandbox at the end")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for Ready")
    args = parser.parse_args()

    from real_support import chat, tiny
    from test_operator_helpers import CRDS, OperatorProcess, apply_manifest, policy

    from hubfixtures import realmodels
    from hubfixtures.server import serve_hub
    from kubellm.sandbox import engines, imagestore, nodeconfig
    from kubellm.sandbox.harness import sandbox_cluster

    work = Path(tempfile.mkdtemp(prefix="kubellm-demo-real-"))
    step("kubellm sandbox up --real-node")
    with sandbox_cluster(progress=lambda m: print(f"  {m}", flush=True), real_node=True,
                         reuse=True) as cluster:
        nodes = cluster.kubectl("get", "nodes", "-l", "kubellm.io/real-node=true",
                                "-o", "name").stdout.split()
        if not nodes:
            raise SystemExit("a sandbox without the real node is up (make demo?): stop it with "
                             "make demo-down, then run make demo-real again")
        ref = imagestore.vllm_ref()
        if ref is None:
            raise SystemExit("no CPU vLLM image on the real node: run scripts/demo-real.sh "
                             "(it builds it: kubellm sandbox install --engines --real-node)")
        step("a tiny random-weight Llama, served by a local Hub mirror on the node's bridge")
        model_dir = realmodels.build(engines.vllm().python)
        with serve_hub(realmodels.repos(model_dir), host=nodeconfig.NODE_IP) as hub:
            print(f"  HF_ENDPOINT={hub.endpoint}  repo {realmodels.LLAMA}")
            step("CRDs, the namespace (pinned to the real node) and a LicensePolicy")
            cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS))
            for crd in ("llmdeployments.kubellm.io", "licensepolicies.kubellm.io"):
                cluster.kubectl("wait", "--for", "condition=Established", f"crd/{crd}")
            apply_manifest(cluster, {"apiVersion": "v1", "kind": "Namespace",
                                     "metadata": {"name": NAMESPACE}})
            cluster.kubectl("delete", "llmd", "--all", "-n", NAMESPACE)  # a fresh start
            annotations = [f"{k}={v}"
                           for k, v in nodeconfig.real_node_namespace_annotations().items()]
            cluster.kubectl("annotate", "namespace", NAMESPACE, "--overwrite", *annotations)
            apply_manifest(cluster, policy("demo", [NAMESPACE]))
            step(f"kubellm run (the operator; vLLM image {ref})")
            operator = OperatorProcess(Path(cluster.kubeconfig), hub.endpoint,
                                       work / "operator.log", "-A",
                                       "--runtime-image", f"vllm={ref}").start()
            try:
                manifest = tiny(NAME, NAMESPACE, realmodels.LLAMA)
                step("kubectl apply: the LLMDeployment")
                print("  " + json.dumps(manifest["spec"]))
                started = time.monotonic()
                apply_manifest(cluster, manifest)
                follow(cluster, started, args.timeout)
                step("what kubellm created")
                print(cluster.kubectl("get", "llmd,deploy,svc,job,pvc,pods", "-n", NAMESPACE,
                                      "-o", "wide").stdout)
                step("a chat completion through the Service")
                answer = chat(cluster, NAMESPACE, NAME, realmodels.LLAMA,
                              content="Say hello to kubellm.", max_tokens=16)
                print(f"  {time.monotonic() - started:.1f} s after apply: "
                      f"{answer['usage']['completion_tokens']} tokens "
                      f"(random weights, so gibberish): "
                      f"{answer['choices'][0]['message']['content']!r}")
            finally:
                operator.stop()
                print(f"\noperator log: {work / 'operator.log'}")
        if args.down:
            step("--down: kubellm sandbox down")
            cluster.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)
            assert cluster.sandbox is not None
            cluster.sandbox.down(print)
        else:
            print(f"\nThe sandbox is still up: export KUBECONFIG={cluster.kubeconfig}\n"
                  "Stop it: make demo-down (= .venv/bin/kubellm sandbox down)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
