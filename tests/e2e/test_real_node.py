"""e2e on the sandbox's real worker node (``kubellm sandbox up --real-node``): real containers.

A pod from the Debian base image serves HTTP with python3; it is reached on its pod IP, through
a ClusterIP Service (kube-proxy) and by its cluster DNS name (CoreDNS), and through
``kubectl logs``, ``exec`` and ``port-forward`` (apiserver -> kubelet -> containerd). A
dynamically provisioned PVC (local-path-provisioner) written by one pod is read by another, and
a pod reaches the apiserver through the in-cluster ``kubernetes`` Service with its
ServiceAccount token. Selecting any of these tests starts the session sandbox with its real node.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from kubellm.sandbox import images, nodeconfig
from kubellm.sandbox.harness import Cluster

pytestmark = [pytest.mark.e2e, pytest.mark.real]

INDEX = "hello from a real pod"


@pytest.fixture(scope="module")
def base_image() -> str:
    return images.debian_base(lambda _: None).ref


def eventually(check: Callable[[], Any], what: str, timeout: float = 120.0) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except Exception as exc:  # keep polling, report the last failure
            last = exc
        else:
            if last:
                return last
        time.sleep(0.5)
    pytest.fail(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")


def on_real_node(spec: dict[str, Any], node: str) -> dict[str, Any]:
    """A pod spec that runs on the real node (it tolerates the node's taint)."""
    return {
        **spec,
        "nodeSelector": {"kubernetes.io/hostname": node},
        "tolerations": [{**nodeconfig.TAINT, "operator": "Equal"}],
    }


def pod(name: str, image: str, node: str, command: list[str], **extra: Any) -> dict[str, Any]:
    container = {
        "name": "main",
        "image": image,
        "imagePullPolicy": "Never",
        "command": command,
        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}},
        **extra.pop("container", {}),
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": on_real_node(
            {"containers": [container], "restartPolicy": extra.pop("restart", "Always"),
             "terminationGracePeriodSeconds": 1, **extra},
            node,
        ),
    }


def apply(cluster: Cluster, namespace: str, *objects: dict[str, Any]) -> None:
    body = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)})
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=body)


def get(cluster: Cluster, namespace: str, *what: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(
        cluster.kubectl("get", "-n", namespace, *what, "-o", "json").stdout
    )
    return result


def phase(cluster: Cluster, namespace: str, name: str) -> str:
    return str(get(cluster, namespace, "pod", name).get("status", {}).get("phase", ""))


def ready(cluster: Cluster, namespace: str, name: str) -> bool:
    conditions = get(cluster, namespace, "pod", name).get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


FETCH = (
    "import sys, urllib.request\n"
    "for url in sys.argv[1:]:\n"
    "    try:\n"
    "        print(url, urllib.request.urlopen(url, timeout=5).read().decode().strip())\n"
    "    except OSError as exc:\n"
    "        print(url, 'FAILED', exc)\n"
)


@pytest.fixture
def web(cluster: Cluster, namespace: str, real_node: str, base_image: str) -> Iterator[str]:
    """A python3 http.server pod ``web`` behind Service ``site`` (port 80 -> 8080)."""
    server = pod(
        "web",
        base_image,
        real_node,
        ["sh", "-c", f"mkdir -p /srv && echo '{INDEX}' > /srv/index.html && "
         "exec python3 -u -m http.server 8080 --directory /srv"],
        container={
            "ports": [{"containerPort": 8080, "name": "http"}],
            "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
        },
    )
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "site"},  # not "web": /etc/hosts maps the pod's own name
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    apply(cluster, namespace, server, service)
    eventually(lambda: ready(cluster, namespace, "web"), "pod web Ready on the real node")
    yield "web"


def test_a_real_pod_is_reached_by_ip_service_dns_exec_logs_and_port_forward(
    cluster: Cluster, namespace: str, web: str
) -> None:
    status = get(cluster, namespace, "pod", web)["status"]
    pod_ip = status["podIP"]
    assert pod_ip.startswith(nodeconfig.POD_CIDR.rsplit(".", 1)[0] + ".")
    cluster_ip = get(cluster, namespace, "service", "site")["spec"]["clusterIP"]
    dns = f"http://site.{namespace}.svc.cluster.local/"
    urls = [f"http://{pod_ip}:8080/", f"http://{cluster_ip}/", dns, "http://site/"]

    def fetched() -> str:
        out = cluster.kubectl("exec", "-n", namespace, web, "--", "python3", "-c", FETCH, *urls)
        if "FAILED" in out.stdout:
            raise AssertionError(out.stdout)
        return out.stdout

    out = eventually(fetched, "the pod, its Service and DNS name answering", timeout=60)
    for url in urls:
        assert f"{url} {INDEX}" in out

    # Names outside the cluster zone do not resolve: no upstream forwarder.
    probe = cluster.kubectl(
        "exec", "-n", namespace, web, "--", "python3", "-c",
        "import socket\ntry:\n    socket.getaddrinfo('example.com', 80)\n    print('resolved')\n"
        "except OSError as e:\n    print('no such name', e)\n",
    ).stdout
    assert "no such name" in probe

    logs = cluster.kubectl("logs", "-n", namespace, web).stdout
    assert re.search(r'"GET / HTTP/1\.1" 200', logs), logs

    forward = subprocess.Popen(
        [cluster.kubectl_path, f"--kubeconfig={cluster.kubeconfig}", "port-forward", "-n",
         namespace, f"pod/{web}", ":8080", "--address=127.0.0.1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert forward.stdout is not None
        line = forward.stdout.readline()
        match = re.search(r"127\.0\.0\.1:(\d+) -> 8080", line)
        assert match, line
        url = f"http://127.0.0.1:{match.group(1)}/"
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert resp.read().decode().strip() == INDEX
    finally:
        forward.terminate()
        forward.wait(10)


def test_a_dynamic_pvc_written_by_one_pod_is_read_by_another(
    cluster: Cluster, namespace: str, real_node: str, base_image: str
) -> None:
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data"},
        "spec": {
            "storageClassName": nodeconfig.STORAGE_CLASS,
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": "16Mi"}},
        },
    }
    volume = {"volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]}
    mount = {"volumeMounts": [{"name": "data", "mountPath": "/data"}]}
    writer = pod("writer", base_image, real_node,
                 ["sh", "-c", "echo written-by-writer > /data/note"],
                 container=mount, restart="Never", **volume)
    apply(cluster, namespace, claim, writer)
    eventually(lambda: phase(cluster, namespace, "writer") == "Succeeded", "writer Succeeded",
               timeout=180)
    pv = get(cluster, namespace, "pvc", "data")["spec"]["volumeName"]
    assert pv
    reader = pod("reader", base_image, real_node, ["cat", "/data/note"],
                 container=mount, restart="Never", **volume)
    apply(cluster, namespace, reader)
    eventually(lambda: phase(cluster, namespace, "reader") == "Succeeded", "reader Succeeded")
    assert cluster.kubectl("logs", "-n", namespace, "reader").stdout.strip() == "written-by-writer"


def test_a_pod_reaches_the_apiserver_through_the_kubernetes_service_with_its_token(
    cluster: Cluster, namespace: str, real_node: str, base_image: str
) -> None:
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": "read-pods"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}],
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "read-pods"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "read-pods"},
        "subjects": [{"kind": "ServiceAccount", "name": "default", "namespace": namespace}],
    }
    script = (
        "import json, os, ssl, urllib.request\n"
        "sa = '/var/run/secrets/kubernetes.io/serviceaccount'\n"
        "token = open(sa + '/token').read()\n"
        "ctx = ssl.create_default_context(cafile=sa + '/ca.crt')\n"
        "host = os.environ['KUBERNETES_SERVICE_HOST']\n"
        f"for base in ('https://' + host, 'https://kubernetes.default.svc'):\n"
        f"    req = urllib.request.Request(base + '/api/v1/namespaces/{namespace}/pods',\n"
        "        headers={'Authorization': 'Bearer ' + token})\n"
        "    items = json.load(urllib.request.urlopen(req, context=ctx, timeout=10))['items']\n"
        "    print(base, sorted(p['metadata']['name'] for p in items))\n"
    )
    client = pod("client", base_image, real_node, ["python3", "-c", script], restart="Never")
    apply(cluster, namespace, role, binding, client)
    eventually(lambda: phase(cluster, namespace, "client") in ("Succeeded", "Failed"),
               "the in-cluster client to finish")
    logs = cluster.kubectl("logs", "-n", namespace, "client").stdout
    assert phase(cluster, namespace, "client") == "Succeeded", logs
    assert "https://10.96.0.1 ['client']" in logs
    assert "https://kubernetes.default.svc ['client']" in logs
