"""``kubellm sandbox up/down/status``: a real local control plane with simulated GPU nodes.

``up`` starts, all on 127.0.0.1 with free ports: etcd, kube-apiserver (TLS, RBAC, ServiceAccount
admission), kube-controller-manager (garbage collector, Deployments, Jobs, PV binder, ...),
kube-scheduler and kwok, then creates the nodes of a node-pool file (see
:mod:`kubellm.sandbox.nodes`) and the default StorageClass, and waits until every node is Ready
and the ``default`` ServiceAccount exists. kwok runs the Stages of :mod:`kubellm.sandbox.stages`:
pods become Ready, Job pods complete, PVCs bind, and a pod annotated
``kubellm.io/sandbox-fail: "true"`` fails with exit code 1.

State (PKI, kubeconfig, etcd data, logs, pids) lives in one directory, by default
``${XDG_STATE_HOME:-~/.local/state}/kubellm/sandbox`` (``KUBELLM_SANDBOX_DIR`` overrides it).
One sandbox per directory. ``down`` stops only the processes recorded there (pid + start time)
and removes the directory; running it twice is fine. A component that dies while starting
fails ``up`` with the tail of its log.

``up(real_node=True)`` (``kubellm sandbox up --real-node``) adds one real worker node
(:mod:`kubellm.sandbox.realnode`): the apiserver then listens on the node IP of the sandbox's
bridge instead of 127.0.0.1 (pods reach it through the ``kubernetes`` Service), and ``down``
also undoes the node's host changes (:mod:`kubellm.sandbox.hostnet`). One per machine.
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from kubellm.sandbox import (
    hostnet,
    images,
    install,
    nodeconfig,
    nodeinstall,
    nodes,
    pki,
    ports,
    process,
    readiness,
    realnode,
    stages,
    versions,
)
from kubellm.sandbox.errors import SandboxError
from kubellm.sandbox.process import ProcessRecord

Progress = Callable[[str], None]
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")
STATE_FILE = "state.json"
MARKER = ".kubellm-sandbox"
KWOK_CIDR = "10.244.0.1/16"
KWOK_NODE_IP = "10.254.0.1"


def default_state_dir() -> Path:
    override = os.environ.get("KUBELLM_SANDBOX_DIR")
    if override:
        return Path(override).expanduser()
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "kubellm" / "sandbox"


@dataclass
class SandboxState:
    """What ``up`` recorded in ``state.json``."""

    server: str
    kubeconfig: str
    bin_dir: str
    ports: dict[str, int]
    nodes: list[str]
    processes: list[ProcessRecord] = field(default_factory=list)
    versions: str = field(default_factory=versions.version_key)
    started_at: float = field(default_factory=time.time)
    real_node: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "kubeconfig": self.kubeconfig,
            "bin_dir": self.bin_dir,
            "ports": self.ports,
            "nodes": self.nodes,
            "processes": [p.to_json() for p in self.processes],
            "versions": self.versions,
            "started_at": self.started_at,
            "real_node": self.real_node,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SandboxState:
        return cls(
            server=str(data["server"]),
            kubeconfig=str(data["kubeconfig"]),
            bin_dir=str(data["bin_dir"]),
            ports={str(k): int(v) for k, v in data["ports"].items()},
            nodes=[str(n) for n in data.get("nodes", [])],
            processes=[ProcessRecord.from_json(p) for p in data.get("processes", [])],
            versions=str(data.get("versions", "")),
            started_at=float(data.get("started_at", 0.0)),
            real_node=bool(data.get("real_node", False)),
        )


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    pid: int
    running: bool
    rss_bytes: int


class Sandbox:
    """One local control plane rooted at ``state_dir``."""

    def __init__(self, state_dir: Path | None = None) -> None:
        self.state_dir = (state_dir or default_state_dir()).resolve()

    # ---- paths and recorded state -------------------------------------------------------------
    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def logs(self) -> Path:
        return self.state_dir / "logs"

    def read_state(self) -> SandboxState | None:
        path = self.state_dir / STATE_FILE
        try:
            return SandboxState.from_json(json.loads(path.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            raise SandboxError(
                f"{path} is corrupt ({exc}); stop any leftover processes and delete "
                f"{self.state_dir}"
            ) from exc

    def _write_state(self, state: SandboxState) -> None:
        path = self.state_dir / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state.to_json(), indent=2) + "\n")
        os.replace(tmp, path)

    def status(self) -> list[ComponentStatus]:
        state = self.read_state()
        if state is None:
            return []
        return [
            ComponentStatus(
                p.name,
                p.pid,
                running := process.is_running(p),
                process.rss_bytes(p.pid) if running else 0,
            )
            for p in state.processes
        ]

    def is_up(self) -> bool:
        found = self.status()
        return bool(found) and len(found) >= len(COMPONENTS) and all(c.running for c in found)

    # ---- down -----------------------------------------------------------------------------------
    def _owned(self) -> bool:
        """True when the directory is ours to delete (marker present) or empty."""
        return (self.state_dir / MARKER).exists() or not any(self.state_dir.iterdir())

    def _remove(self) -> None:
        if self.state_dir.exists() and self._owned():
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def down(self, progress: Progress = print) -> bool:
        """Stop our processes (reverse start order) and remove the state. False if nothing ran."""
        state = self.read_state() if self.state_dir.exists() else None
        if state is None:
            self._remove()
            return False
        if state.real_node:
            realnode.stop(state.processes, self.node_root, progress)
        for record in reversed(state.processes):
            if process.is_running(record):
                progress(f"stopping {record.name} (pid {record.pid})")
            process.stop(record)
        self._remove()
        return True

    @property
    def node_root(self) -> Path:
        """Directory of the real node (containerd, kubelet, CNI, volumes)."""
        return self.state_dir / "node"

    # ---- up -------------------------------------------------------------------------------------
    def up(
        self,
        nodes_file: Path | None = None,
        *,
        port: int | None = None,
        progress: Progress = print,
        real_node: bool = False,
    ) -> SandboxState:
        """Start the sandbox (or return the running one) and wait until nodes are Ready."""
        existing = self.read_state() if self.state_dir.exists() else None
        if existing is not None:
            if self.is_up():
                progress(f"sandbox already up: {existing.server}, kubeconfig {existing.kubeconfig}")
                return existing
            progress("found a half-running sandbox; cleaning it up first")
            self.down(progress)
        elif self.state_dir.exists():
            if not self._owned():
                raise SandboxError(
                    f"{self.state_dir} is not empty and was not made by kubellm sandbox; "
                    "choose another KUBELLM_SANDBOX_DIR"
                )
            self._remove()

        pools = nodes.load_pools(nodes_file)  # validate before starting anything
        bins = install.binaries()
        node_objects = nodes.node_manifests(pools)
        node_bins: install.Binaries | None = None
        if real_node:
            self._free_real_node(progress)
            hostnet.preflight()
            node_bins = nodeinstall.binaries()
        try:
            return self._start(bins, node_objects, port, progress, node_bins)
        except SandboxError as exc:
            # Free ports are picked before the components bind them; if another program took
            # one in between, start once more with fresh ports (a port the user chose stays).
            if port is not None or "address already in use" not in str(exc):
                raise
            progress(f"a port was taken while starting ({exc.message.splitlines()[0]}); retrying")
            self.down(lambda _: None)
            return self._start(bins, node_objects, port, progress, node_bins)

    def _free_real_node(self, progress: Progress) -> None:
        """Clean up after a real node whose sandbox is gone; refuse if it is still running."""
        record = hostnet.read_record()
        if record is None:
            return
        owner = Sandbox(Path(record["state_dir"]))
        if owner.state_dir != self.state_dir and owner.is_up():
            raise SandboxError(
                f"the real node belongs to the running sandbox in {owner.state_dir}; stop it "
                f"first (KUBELLM_SANDBOX_DIR={owner.state_dir} kubellm sandbox down)"
            )
        progress(f"cleaning up the real node a stopped sandbox left ({owner.state_dir})")
        if owner.read_state() is not None and owner.state_dir != self.state_dir:
            owner.down(progress)
        hostnet.teardown(progress)

    def _start(
        self,
        bins: install.Binaries,
        node_objects: list[dict[str, Any]],
        port: int | None,
        progress: Progress,
        node_bins: install.Binaries | None = None,
    ) -> SandboxState:
        began = time.monotonic()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state_dir, 0o700)
        (self.state_dir / MARKER).write_text("state of `kubellm sandbox up`; `down` deletes it\n")
        names = ["etcd-client", "etcd-peer", "apiserver", "controller-manager", "scheduler"]
        picked = ports.pick(len(names), requested={2: port} if port else None)
        port_map = dict(zip(names, picked, strict=True))
        host_ip = nodeconfig.NODE_IP if node_bins else readiness.host_ip()
        certs = pki.generate(self.state_dir / "pki", extra_ips=(host_ip,))
        if node_bins is not None:
            pki.node_certs(certs, nodeconfig.NODE_NAME, nodeconfig.NODE_IP)
        server = f"https://{'127.0.0.1' if node_bins is None else host_ip}:{port_map['apiserver']}"
        pki.write_kubeconfig(self.kubeconfig, server, certs)
        state = SandboxState(
            server=server,
            kubeconfig=str(self.kubeconfig),
            bin_dir=str(bins.bin_dir),
            ports=port_map,
            nodes=[n["metadata"]["name"] for n in node_objects],
            real_node=node_bins is not None,
        )
        if node_bins is not None:
            state.nodes.append(nodeconfig.NODE_NAME)
        self._write_state(state)
        try:
            if node_bins is not None:
                hostnet.setup(self.state_dir, progress)
            self._start_all(state, bins, certs, host_ip, node_objects, progress)
            if node_bins is not None:
                self._start_real_node(state, bins, node_bins, certs, progress)
        except BaseException:
            if node_bins is not None:
                realnode.stop(state.processes, self.node_root, progress)
            for record in reversed(state.processes):
                process.stop(record, timeout=5)
            raise
        progress(
            f"sandbox up in {time.monotonic() - began:.1f}s: {len(state.nodes)} nodes Ready, "
            f"{server}\n  export KUBECONFIG={self.kubeconfig}"
        )
        return state

    def _spawn(
        self,
        state: SandboxState,
        name: str,
        argv: list[str],
        env: dict[str, str] | None = None,
    ) -> ProcessRecord:
        record = process.spawn(name, argv, self.logs / f"{name}.log", self.state_dir, env)
        state.processes.append(record)
        self._write_state(state)
        return record

    def _start_all(
        self,
        state: SandboxState,
        bins: install.Binaries,
        certs: pki.PkiPaths,
        host_ip: str,
        node_objects: list[dict[str, Any]],
        progress: Progress,
    ) -> None:
        p = state.ports
        deadline = time.monotonic() + readiness.start_timeout()
        kubeconfig = str(self.kubeconfig)
        etcd_url = f"http://127.0.0.1:{p['etcd-client']}"
        peer_url = f"http://127.0.0.1:{p['etcd-peer']}"
        progress("starting etcd")
        etcd = self._spawn(
            state,
            "etcd",
            [
                str(bins["etcd"]),
                "--name=sandbox",
                f"--data-dir={self.state_dir / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=sandbox={peer_url}",
                "--unsafe-no-fsync=true",
                "--quota-backend-bytes=8589934592",
                "--log-level=warn",
            ],
        )
        readiness.wait_for(lambda: readiness.http_ok(f"{etcd_url}/health"), [etcd],
                           "etcd /health", deadline)

        progress("starting kube-apiserver")
        apiserver = self._spawn(
            state,
            "kube-apiserver",
            [
                str(bins["kube-apiserver"]),
                f"--etcd-servers={etcd_url}",
                f"--bind-address={host_ip if state.real_node else '127.0.0.1'}",
                f"--advertise-address={host_ip}",
                f"--secure-port={p['apiserver']}",
                f"--cert-dir={certs.dir}",
                f"--tls-cert-file={certs.server_cert}",
                f"--tls-private-key-file={certs.server_key}",
                f"--client-ca-file={certs.ca_cert}",
                f"--service-account-key-file={certs.sa_pub}",
                f"--service-account-signing-key-file={certs.sa_key}",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-cluster-ip-range={pki.SERVICE_CIDR}",
                "--authorization-mode=Node,RBAC",
                "--allow-privileged=true",
                "--endpoint-reconciler-type=none",
                "--profiling=false",
                "--max-requests-inflight=800",
                "--max-mutating-requests-inflight=400",
                *(realnode.apiserver_flags(certs) if state.real_node else []),
            ],
        )
        ctx = readiness.client_tls(certs)
        readiness.wait_for(
            lambda: readiness.http_ok(f"{state.server}/readyz", ctx),
            [etcd, apiserver],
            "kube-apiserver /readyz",
            deadline,
        )

        progress("starting kube-controller-manager, kube-scheduler and kwok")
        common = [
            f"--kubeconfig={kubeconfig}",
            f"--authentication-kubeconfig={kubeconfig}",
            f"--authorization-kubeconfig={kubeconfig}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
        ]
        kcm = self._spawn(
            state,
            "kube-controller-manager",
            [
                str(bins["kube-controller-manager"]),
                *common,
                f"--secure-port={p['controller-manager']}",
                f"--cert-dir={self.state_dir / 'kcm'}",
                f"--root-ca-file={certs.ca_cert}",
                f"--service-account-private-key-file={certs.sa_key}",
                f"--cluster-signing-cert-file={certs.ca_cert}",
                f"--cluster-signing-key-file={certs.ca_key}",
                f"--service-cluster-ip-range={pki.SERVICE_CIDR}",
                "--kube-api-qps=200",
                "--kube-api-burst=400",
                "--concurrent-deployment-syncs=20",
                "--concurrent-replicaset-syncs=20",
                "--concurrent-job-syncs=20",
                "--concurrent-gc-syncs=40",
            ],
        )
        scheduler = self._spawn(
            state,
            "kube-scheduler",
            [
                str(bins["kube-scheduler"]),
                *common,
                f"--secure-port={p['scheduler']}",
                f"--cert-dir={self.state_dir / 'scheduler'}",
            ],
        )
        stage_file = self.state_dir / "kwok-stages.yaml"
        stage_file.write_text(yaml.safe_dump_all(stages.stages(), sort_keys=False))
        kwok = self._spawn(
            state,
            "kwok",
            [
                str(bins["kwok"]),
                f"--kubeconfig={kubeconfig}",
                f"--config={stage_file}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector="
                f"{nodes.KWOK_NODE_ANNOTATION}={nodes.KWOK_NODE_ANNOTATION_VALUE}",
                "--node-lease-duration-seconds=40",
                f"--cidr={KWOK_CIDR}",
                f"--node-ip={KWOK_NODE_IP}",
            ],
        )
        everything = [etcd, apiserver, kcm, scheduler, kwok]

        manifests = self.state_dir / "objects.yaml"
        manifests.write_text(yaml.safe_dump_all([stages.storage_class(), *node_objects]))
        progress(f"creating {len(node_objects)} nodes and StorageClass {stages.STORAGE_CLASS}")
        readiness.kubectl(
            bins,
            kubeconfig,
            ["apply", "--server-side", "--field-manager=kubellm-sandbox", "-f", str(manifests)],
        )
        insecure = ssl.create_default_context()
        insecure.check_hostname = False
        insecure.verify_mode = ssl.CERT_NONE
        for name, key in (
            ("kube-controller-manager", "controller-manager"),
            ("kube-scheduler", "scheduler"),
        ):
            url = f"https://127.0.0.1:{p[key]}/healthz"
            readiness.wait_for(partial(readiness.http_ok, url, insecure), everything,
                               f"{name} /healthz", deadline)
        want = len(node_objects)
        readiness.wait_for(
            lambda: readiness.ready_nodes(bins, kubeconfig) >= want,
            everything,
            f"{want} nodes Ready",
            deadline,
        )
        readiness.wait_for(
            partial(readiness.kubectl_ok, bins, kubeconfig, ["get", "sa/default", "-n", "default"]),
            everything,
            "the default ServiceAccount",
            deadline,
        )


    def _start_real_node(
        self,
        state: SandboxState,
        bins: install.Binaries,
        node_bins: install.Binaries,
        certs: pki.PkiPaths,
        progress: Progress,
    ) -> None:
        node_images = images.build_all(progress)
        params = realnode.params(self.node_root, state.ports["apiserver"], node_images)
        node = realnode.RealNode(params, certs, node_bins, bins)
        deadline = time.monotonic() + readiness.start_timeout()
        watched = list(state.processes)

        def spawn(name: str, argv: list[str], env: dict[str, str] | None) -> ProcessRecord:
            return self._spawn(state, name, argv, env)

        def wait(check: Callable[[], bool], procs: list[ProcessRecord], what: str) -> None:
            readiness.wait_for(check, procs, what, deadline)

        node.start(node_images, spawn, wait, watched, progress)
