"""Shared by the real-node e2e tests and the real-node demo (scripts/demo_real.py): the tiny
LLMDeployment sized for the real node's CPU, waiting for Ready, and a chat completion through the
Service's ClusterIP (kube-proxy on this host)."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

from test_operator_helpers import condition, get_json, llmd, wait_until

from kubellm.sandbox import nodeconfig
from kubellm.sandbox.harness import Cluster

READY_TIMEOUT = 900.0


def tiny(name: str, ns: str, repo: str, **spec: Any) -> dict[str, Any]:
    """An LLMDeployment of a tiny model on one (simulated) L4 of the real node, sized for CPU,
    its cache on the node's local-path volumes (the sandbox's default class is kwok's)."""
    return llmd(name, ns, repo, runtime="vllm", gpu={"type": nodeconfig.GPU.product},
                context={"maxModelLen": 512},
                cache={"storageClassName": nodeconfig.STORAGE_CLASS},
                env=[{"name": "VLLM_CPU_KVCACHE_SPACE", "value": "1"}], **spec)


def wait_ready(cluster: Cluster, ns: str, name: str, timeout: float = READY_TIMEOUT) -> None:
    def ready() -> bool:
        cond = condition(get_json(cluster, "llmd", name, "-n", ns), "Ready")
        return bool(cond and cond[0] == "True")

    try:
        wait_until(ready, timeout, interval=2, what=f"{ns}/{name} Ready")
    except AssertionError:
        status = (get_json(cluster, "llmd", name, "-n", ns) or {}).get("status")
        pods = cluster.kubectl("get", "pods", "-n", ns, "-o", "wide", check=False).stdout
        logs = cluster.kubectl("logs", "-n", ns, "-l", "app.kubernetes.io/component=server",
                               "--tail=40", check=False).stdout
        raise AssertionError(f"{ns}/{name} not Ready: {status}\n{pods}\n{logs}") from None


def chat(cluster: Cluster, ns: str, service: str, model: str, content: str = "hello world",
         max_tokens: int = 8) -> dict[str, Any]:
    """A chat completion through the Service's ClusterIP (kube-proxy from the host)."""
    svc = get_json(cluster, "service", service, "-n", ns)
    ip, port = svc["spec"]["clusterIP"], svc["spec"]["ports"][0]["port"]
    body = json.dumps({"model": model, "max_tokens": max_tokens, "ignore_eos": True,
                       "messages": [{"role": "user", "content": content}]}).encode()
    req = urllib.request.Request(f"http://{ip}:{port}/v1/chat/completions", data=body,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        answer: dict[str, Any] = json.load(resp)
    return answer
