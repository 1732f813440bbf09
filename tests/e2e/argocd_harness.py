"""Argo CD on the sandbox, as local processes: what tests/e2e/test_argocd_sync.py drives.

- :func:`install_control_plane`: the ``argocd`` namespace with Argo CD's CRDs (from the pinned
  module's ``manifests/crds``), ``argocd-cm`` (+ kubellm's health checks from
  ``deploy/argocd/*patch.yaml``), ``argocd-rbac-cm``, ``argocd-secret`` and the ``default``
  AppProject: what Argo CD's install manifest creates that the two components below read.
- :class:`ArgoCDProcesses`: Redis (Debian's ``redis-server``), ``argocd-repo-server`` and
  ``argocd-application-controller`` (the one multi-call binary, ``ARGOCD_BINARY_NAME``) on free
  loopback ports. The controller runs with ``ARGOCD_FAKE_IN_CLUSTER=true`` and the sandbox's
  admin kubeconfig, so ``https://kubernetes.default.svc`` is the sandbox, and with
  ``--persist-resource-health`` so each resource's health is in the Application's status.
  ``ARGOCD_RECONCILIATION_TIMEOUT`` (argocd-cm ``timeout.reconciliation`` in a real install) is
  short so a commit is seen within seconds, as a Git webhook would make it.
- :class:`GitRepo`: a bare repository served over ``file://`` and a work tree to commit from.

Not a test module (no tests); the sandbox fixtures come from tests/e2e/conftest.py.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from test_operator_helpers import free_port, wait_until

from kubellm.sandbox.argocd import ArgoCD

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "argocd"
NAMESPACE = "argocd"
PART_OF = {"app.kubernetes.io/part-of": "argocd"}
RECONCILIATION = "5s"
ESTABLISHED = 'jsonpath={.status.conditions[?(@.type=="Established")].status}'


def _cm_patch_data() -> dict[str, str]:
    data: dict[str, str] = {}
    for patch in ("argocd-cm-patch.yaml", "argocd-cm-app-of-apps-patch.yaml"):
        data.update(yaml.safe_load((DEPLOY / patch).read_text())["data"])
    return data


def control_plane_objects() -> list[dict[str, Any]]:
    """argocd-cm (with kubellm's shipped checks), argocd-rbac-cm, argocd-secret, AppProject."""
    meta = {"namespace": NAMESPACE, "labels": PART_OF}
    secret_key = base64.b64encode(secrets.token_bytes(32)).decode()
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "argocd-cm", **meta},
         "data": {"timeout.reconciliation": RECONCILIATION, **_cm_patch_data()}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "argocd-rbac-cm", **meta},
         "data": {}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "argocd-secret", **meta},
         "type": "Opaque", "data": {"server.secretkey": base64.b64encode(
             secret_key.encode()).decode()}},
        {"apiVersion": "argoproj.io/v1alpha1", "kind": "AppProject",
         "metadata": {"name": "default", "namespace": NAMESPACE},
         "spec": {"sourceRepos": ["*"], "destinations": [{"server": "*", "namespace": "*"}],
                  "clusterResourceWhitelist": [{"group": "*", "kind": "*"}]}},
    ]


def install_control_plane(cluster: Any, argocd: ArgoCD) -> None:
    cluster.kubectl("create", "namespace", NAMESPACE, check=False)
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(argocd.crds))
    for crd in ("applications.argoproj.io", "appprojects.argoproj.io"):
        wait_until(lambda crd=crd: cluster.kubectl(  # type: ignore[misc]
            "get", "crd", crd, "-o", ESTABLISHED, check=False).stdout == "True",
            60, what=f"crd/{crd} Established")
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(control_plane_objects()))


def uninstall_control_plane(cluster: Any) -> None:
    """Drop the Applications (their finalizers first: no controller runs any more) and the
    namespace; the CRDs stay, like kubellm's."""
    found = cluster.kubectl("get", "applications.argoproj.io", "-n", NAMESPACE, "-o", "name",
                            check=False).stdout.split()
    for name in found:
        cluster.kubectl("patch", name, "-n", NAMESPACE, "--type=merge", "-p",
                        '{"metadata":{"finalizers":null}}', check=False)
    cluster.kubectl("delete", "applications.argoproj.io", "--all", "-n", NAMESPACE,
                    "--wait=false", check=False)
    cluster.kubectl("delete", "namespace", NAMESPACE, "--wait=false", check=False)


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


class ArgoCDProcesses:
    """Redis, argocd-repo-server and argocd-application-controller; logs in ``work``."""

    def __init__(self, argocd: ArgoCD, kubeconfig: str, bin_dir: Path, work: Path) -> None:
        self.argocd, self.kubeconfig, self.bin_dir, self.work = argocd, kubeconfig, bin_dir, work
        self.redis_port, self.repo_port = free_port(), free_port()
        self.repo_metrics, self.controller_metrics = free_port(), free_port()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def _env(self, component: str) -> dict[str, str]:
        home = self.work / "home"
        home.mkdir(exist_ok=True)
        return {
            **os.environ,
            **self.argocd.env(component),
            # argocd's git-verify-wrapper.sh, helm (the sandbox's) for the chart Application
            "PATH": os.pathsep.join([str(self.argocd.bin_dir), str(self.bin_dir),
                                     os.environ.get("PATH", "")]),
            "HOME": str(home),
            "KUBECONFIG": self.kubeconfig,
            "ARGOCD_FAKE_IN_CLUSTER": "true",
            "ARGOCD_GPG_ENABLED": "false",
            "ARGOCD_RECONCILIATION_TIMEOUT": RECONCILIATION,
            "ARGOCD_RECONCILIATION_JITTER": "0",
            "TMPDIR": str(self.work / "tmp"),
        }

    def _spawn(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        (self.work / "tmp").mkdir(exist_ok=True)
        log = (self.work / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                            cwd=self.work)

    def start(self) -> ArgoCDProcesses:
        redis = shutil.which("redis-server") or "/usr/bin/redis-server"
        self._spawn("redis", [redis, "--port", str(self.redis_port), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no", "--dir", str(self.work)],
                    dict(os.environ))
        self._wait_ready("redis", lambda: _port_open(self.redis_port), 30)
        redis_addr = f"127.0.0.1:{self.redis_port}"
        binary = str(self.argocd.binary)
        self._spawn("argocd-repo-server", [
            binary, "--address", "127.0.0.1", "--port", str(self.repo_port),
            "--metrics-address", "127.0.0.1", "--metrics-port", str(self.repo_metrics),
            "--redis", redis_addr, "--disable-tls", "--client-ca-path=", "--logformat", "text",
        ], self._env("argocd-repo-server"))
        self._spawn("argocd-application-controller", [
            binary, "--kubeconfig", self.kubeconfig, "--namespace", NAMESPACE,
            "--repo-server", f"127.0.0.1:{self.repo_port}", "--repo-server-plaintext",
            "--redis", redis_addr, "--metrics-port", str(self.controller_metrics),
            "--persist-resource-health", "--status-processors", "4",
            "--operation-processors", "2", "--logformat", "text",
        ], self._env("argocd-application-controller"))
        self._wait_ready("argocd-repo-server", lambda: _port_open(self.repo_port), 60)
        self._wait_ready("argocd-application-controller", self._healthz, 90)
        return self

    def _wait_ready(self, name: str, probe: Callable[[], bool], timeout: float) -> None:
        """Until ``probe`` passes; fails at once, with the log, if the process exits."""
        deadline = time.monotonic() + timeout
        while not probe():
            proc = self.procs[name]
            if proc.poll() is not None:
                raise AssertionError(f"{name} exited with {proc.returncode}:\n{self.tail(name)}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} not ready after {timeout} s:\n{self.tail(name)}")
            time.sleep(0.3)

    def _healthz(self) -> bool:
        url = f"http://127.0.0.1:{self.controller_metrics}/healthz"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    def tail(self, name: str, lines: int = 40) -> str:
        path = self.work / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def errors(self, name: str) -> list[str]:
        """Lines of a component's log at level error (e.g. a health script that failed)."""
        path = self.work / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return [line for line in text.splitlines() if "level=error" in line]

    def stop(self) -> None:
        for proc in reversed(list(self.procs.values())):
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


class GitRepo:
    """A bare repository (the ``file://`` URL Argo CD reads) and a work tree committing to it."""

    def __init__(self, root: Path) -> None:
        self.bare, self.tree = root / "repo.git", root / "work"
        self.url = f"file://{self.bare}"
        root.mkdir(parents=True, exist_ok=True)
        self.git("init", "--bare", "--initial-branch=main", str(self.bare), cwd=root)
        self.git("clone", self.url, str(self.tree), cwd=root)

    def git(self, *args: str, cwd: Path | None = None) -> str:
        env = {**os.environ, "GIT_AUTHOR_NAME": "e2e", "GIT_AUTHOR_EMAIL": "e2e@kubellm.io",
               "GIT_COMMITTER_NAME": "e2e", "GIT_COMMITTER_EMAIL": "e2e@kubellm.io"}
        proc = subprocess.run(["git", *args], cwd=cwd or self.tree, env=env, capture_output=True,
                              text=True, timeout=60, check=False)
        assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
        return proc.stdout.strip()

    def write(self, path: str, content: str | list[dict[str, Any]] | dict[str, Any]) -> None:
        dest = self.tree / path
        dest.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            dest.write_text(content)
        elif isinstance(content, list):
            dest.write_text(yaml.safe_dump_all(content, sort_keys=False))
        else:
            dest.write_text(yaml.safe_dump(content, sort_keys=False))

    def remove(self, path: str) -> None:
        self.git("rm", "-q", path)

    def copytree(self, src: Path, path: str) -> None:
        shutil.copytree(src, self.tree / path, dirs_exist_ok=True)

    def commit(self, message: str) -> tuple[str, float]:
        """Commit everything and push to main: (sha, the monotonic time of the push)."""
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        self.git("push", "-q", "origin", "HEAD:main")
        return self.git("rev-parse", "HEAD"), time.monotonic()


def application(cluster: Any, name: str) -> dict[str, Any] | None:
    proc = cluster.kubectl("get", "applications.argoproj.io", name, "-n", NAMESPACE, "-o",
                           "json", check=False)
    if proc.returncode:
        return None
    found: dict[str, Any] = json.loads(proc.stdout)
    return found


def app_state(app: dict[str, Any] | None) -> tuple[str, str, str]:
    """(sync status, health status, synced revision) of an Application, "" when unknown."""
    status = (app or {}).get("status") or {}
    sync = status.get("sync") or {}
    return (sync.get("status", ""), (status.get("health") or {}).get("status", ""),
            sync.get("revision", ""))


def resource_health(app: dict[str, Any] | None, kind: str, name: str) -> dict[str, str] | None:
    """The persisted health of one resource of an Application (``--persist-resource-health``)."""
    for res in ((app or {}).get("status") or {}).get("resources") or []:
        if res.get("kind") == kind and res.get("name") == name:
            found: dict[str, str] = res.get("health") or {}
            return found
    return None
