"""Helpers for the operator e2e tests and the benchmark: run ``kubellm run`` as a process with a
ServiceAccount kubeconfig bound to ``kubellm/data/rbac.yaml``, read its metrics, wait for states.

(Named test_operator_helpers so it stays within the operator's test files; it holds no tests.)
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

import kubellm

RBAC = Path(kubellm.__file__).parent / "data" / "rbac.yaml"
ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "crds"
EXAMPLES = ROOT / "examples"
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_until(check: Callable[[], T], timeout: float = 60.0, interval: float = 0.5,
               what: str = "condition") -> T:
    """Poll ``check`` until it returns something truthy; fail with the last value."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = check()
        except Exception as exc:  # transient read errors while things start
            last = exc
        if last and not isinstance(last, Exception):
            return last  # type: ignore[no-any-return]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
        time.sleep(interval)


def service_account_kubeconfig(cluster: Any, path: Path) -> Path:
    """Apply the operator's RBAC and write a kubeconfig that authenticates as its ServiceAccount."""
    cluster.kubectl("apply", "-f", str(RBAC))
    return token_kubeconfig(cluster, "kubellm-system", "kubellm-operator", path)


def token_kubeconfig(cluster: Any, namespace: str, account: str, path: Path,
                     duration: str = "24h") -> Path:
    """A kubeconfig that authenticates as ServiceAccount ``namespace/account`` (a bound token)."""
    token = cluster.kubectl("create", "token", account, "-n", namespace,
                            "--duration", duration).stdout.strip()
    admin = yaml.safe_load(Path(cluster.kubeconfig).read_text())
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])
    cl = next(c for c in admin["clusters"] if c["name"] == context["context"]["cluster"])
    server = dict(cl["cluster"])
    ca = server.get("certificate-authority")
    if ca and not os.path.isabs(ca):
        server["certificate-authority"] = str(Path(cluster.kubeconfig).parent / ca)
    config = {
        "apiVersion": "v1", "kind": "Config", "current-context": "operator",
        "clusters": [{"name": "c", "cluster": server}],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": "c", "user": account}}],
    }
    path.write_text(yaml.safe_dump(config))
    return path


class OperatorProcess:
    """``python -m kubellm run`` in a subprocess; logs go to ``log_path``."""

    def __init__(self, kubeconfig: Path, hub_endpoint: str, log_path: Path,
                 *args: str, env: dict[str, str] | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.hub_endpoint = hub_endpoint
        self.log_path = log_path
        self.args = args
        self.env = env or {}
        self.metrics_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "HF_ENDPOINT": self.hub_endpoint,
               "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_ETAG_TIMEOUT": "5",
               "MALLOC_ARENA_MAX": "2",  # as the image and the chart set it
               **self.env}
        env.pop("HF_HUB_OFFLINE", None)
        cmd = [sys.executable, "-m", "kubellm", "run", "--kubeconfig", str(self.kubeconfig),
               "--metrics-port", str(self.metrics_port), *self.args]
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                     cwd=str(ROOT))
        wait_until(self._metrics_up, 60, what="operator metrics endpoint")
        return self

    def _metrics_up(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"operator exited with {self.proc.returncode}:\n{self.tail()}")
        try:
            self.metrics_text()
        except OSError:
            return False
        return True

    def metrics_text(self) -> str:
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            text: str = response.read().decode()
            return text

    def samples(self, name: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for line in self.metrics_text().splitlines():
            if line.startswith(name):
                key, _, value = line.rpartition(" ")
                out[key] = float(value)
        return out

    def writes(self) -> float:
        return sum(self.samples("kubellm_api_writes_total").values())

    def reconciles(self) -> float:
        return sum(self.samples("kubellm_reconciles_total").values())

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def get_json(cluster: Any, *args: str) -> Any:
    result = cluster.kubectl("get", *args, "-o", "json", check=False)
    if result.returncode:
        return None
    return json.loads(result.stdout)


def items(cluster: Any, kind: str, namespace: str, *selector: str) -> list[dict[str, Any]]:
    found = get_json(cluster, kind, "-n", namespace, *selector)
    return list(found["items"]) if found else []


def apply_manifest(cluster: Any, manifest: dict[str, Any] | list[dict[str, Any]]) -> None:
    docs = manifest if isinstance(manifest, list) else [manifest]
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(docs))


def condition(obj: dict[str, Any] | None, type_: str) -> tuple[str, str, str] | None:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c["type"] == type_:
            return c["status"], c["reason"], c.get("message", "")
    return None


def example(name: str, namespace: str, **changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((EXAMPLES / name).read_text())
    doc["metadata"]["namespace"] = namespace
    doc["spec"].update(changes)
    return doc


def llmd(name: str, namespace: str, repo: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "kubellm.io/v1alpha1", "kind": "LLMDeployment",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"model": {"repo": repo, **spec.pop("model", {})}, **spec}}


def policy(name: str, namespaces: list[str], **spec: Any) -> dict[str, Any]:
    base = {"mode": "Enforce", "namespaces": namespaces, "commercialUse": True,
            "allowedClasses": ["permissive", "restrictive-community"]}
    return {"apiVersion": "kubellm.io/v1alpha1", "kind": "LicensePolicy",
            "metadata": {"name": name}, "spec": {**base, **spec}}


def token_secret(namespace: str, token: str = "hf_good") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "hf-token", "namespace": namespace},
            "stringData": {"HF_TOKEN": token}}
