"""The real worker node of ``kubellm sandbox up --real-node``: start it, stop it.

Next to the kwok nodes, one real node ``kubellm-real-0`` runs on this host: containerd (CRI,
runc, CNI bridge) and a kubelet that joins the sandbox apiserver with a client certificate from
the sandbox CA, kube-proxy (iptables mode) for Services, CoreDNS for the cluster zone and
rancher's local-path-provisioner for dynamic PVCs (the last two run as processes, against the
sandbox kubeconfig). Images come from :mod:`kubellm.sandbox.images` (imported, never pulled)
into the image store kept across sandboxes (:mod:`kubellm.sandbox.imagestore`): the pause and
Debian images, the kubellm image built from operator/Dockerfile and the CPU vLLM image.

The node is tainted :data:`nodeconfig.TAINT`, so only pods that tolerate it run for real; it
carries the GPU Feature Discovery labels and a simulated ``nvidia.com/gpu`` capacity, so kubellm
sizes and places onto it as onto a GPU node (its containers run on CPU).

Configuration is rendered by :mod:`kubellm.sandbox.nodeconfig`, host changes are made and undone
by :mod:`kubellm.sandbox.hostnet`. Logs: ``<state>/logs/<component>.log``; container logs under
``<state>/node/pod-logs``.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import yaml

from kubellm.sandbox import hostnet, images, imagestore, nodeconfig, pki, ports, process
from kubellm.sandbox.errors import SandboxError
from kubellm.sandbox.install import Binaries, Progress
from kubellm.sandbox.nodeconfig import NodeParams
from kubellm.sandbox.process import ProcessRecord

#: Components of the real node, in start order (stopped in reverse, containers in between).
COMPONENTS = ("containerd", "kubelet", "kube-proxy", "coredns", "local-path-provisioner")
Spawn = Callable[[str, list[str], dict[str, str] | None], ProcessRecord]
Wait = Callable[[Callable[[], bool], list[ProcessRecord], str], None]


def params(root: Path, apiserver_port: int, node_images: list[images.Image]) -> NodeParams:
    """Free ports for the node's servers and the image names, under node directory ``root``."""
    picked = ports.pick(6)
    return NodeParams(
        root=root,
        apiserver_port=apiserver_port,
        kubelet_port=picked[0],
        kubelet_healthz_port=picked[1],
        proxy_healthz_port=picked[2],
        proxy_metrics_port=picked[3],
        dns_port=picked[4],
        dns_health_port=picked[5],
        pause_image=node_images[0].ref,
        helper_image=node_images[1].ref,
        containerd_root=imagestore.store_root(),
    )


def _dump(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix in (".yaml", ".yml"):
        path.write_text(yaml.safe_dump(data, sort_keys=False))
    elif isinstance(data, str):
        path.write_text(data)
    else:
        path.write_text(json.dumps(data, indent=2) + "\n")
    return path


class RealNode:
    """Start/stop the node's processes; ``spawn``/``wait`` come from the owning Sandbox."""

    def __init__(
        self, p: NodeParams, certs: pki.PkiPaths, bins: Binaries, kube_bins: Binaries
    ) -> None:
        self.p = p
        self.certs = certs
        self.bins = bins
        self.kubectl_bin = str(kube_bins["kubectl"])
        self.admin_kubeconfig = p.kubeconfig("admin")

    # ---- helpers ------------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        """PATH with the node binaries (containerd finds its shim there) and the sbin dirs."""
        env = dict(os.environ)
        extra = [str(self.bins.bin_dir), "/usr/local/sbin", "/usr/sbin", "/sbin"]
        env["PATH"] = os.pathsep.join([*extra, env.get("PATH", "/usr/bin:/bin")])
        return env

    def ctr(self, *args: str, timeout: float = 600) -> str:
        cmd = [str(self.bins["ctr"]), "--address", str(self.p.containerd_socket), *args]
        proc = subprocess.run(
            cmd, capture_output=True, text=True, check=False, timeout=timeout, env=self.env()
        )
        if proc.returncode != 0:
            raise SandboxError(f"ctr {' '.join(args[:4])} failed: {proc.stderr.strip()}")
        return proc.stdout

    def kubectl(self, *args: str, check: bool = True, stdin: str | None = None) -> str:
        proc = subprocess.run(
            [self.kubectl_bin, f"--kubeconfig={self.admin_kubeconfig}", *args],
            input=stdin, capture_output=True, text=True, check=False, timeout=120,
        )
        if check and proc.returncode != 0:
            raise SandboxError(f"kubectl {' '.join(args[:3])} failed: {proc.stderr.strip()}")
        return proc.stdout if proc.returncode == 0 else ""

    # ---- files --------------------------------------------------------------------------------
    def write_files(self) -> pki.NodeCerts:
        """Node certificates, kubeconfigs and every config file, under ``p.root``."""
        p = self.p
        node_certs = pki.NodeCerts.under(self.certs.dir)  # signed before the apiserver started
        pki.write_kubeconfig(self.admin_kubeconfig, p.server, self.certs)
        pki.write_kubeconfig(
            p.kubeconfig("kubelet"), p.server, self.certs,
            client=(node_certs.kubelet_client_cert, node_certs.kubelet_client_key),
            user=f"system:node:{nodeconfig.NODE_NAME}",
        )
        pki.write_kubeconfig(
            p.kubeconfig("kube-proxy"), p.server, self.certs,
            client=(node_certs.proxy_cert, node_certs.proxy_key), user="system:kube-proxy",
        )
        _dump(p.root / "containerd" / "config.toml", nodeconfig.containerd_config(p))
        _dump(p.cni_conf_dir / "10-kubellm-sandbox.conflist", nodeconfig.cni_conflist(p))
        _dump(p.root / "kubelet.yaml", nodeconfig.kubelet_config(p, self.certs, node_certs))
        _dump(p.root / "kube-proxy.yaml", nodeconfig.kube_proxy_config(p))
        _dump(p.root / "Corefile", nodeconfig.corefile(p, self.admin_kubeconfig))
        _dump(p.root / "local-path" / "config.json", nodeconfig.local_path_config(p))
        _dump(p.root / "local-path" / "helper-pod.yaml", nodeconfig.helper_pod(p))
        p.volumes_dir.mkdir(parents=True, exist_ok=True)
        return node_certs

    # ---- start --------------------------------------------------------------------------------
    def start(
        self,
        node_images: list[images.Image],
        spawn: Spawn,
        wait: Wait,
        watched: list[ProcessRecord],
        progress: Progress,
    ) -> None:
        """Start every component and wait until the node is Ready with its simulated GPUs."""
        p, env = self.p, self.env()
        self.write_files()
        imagestore.prepare(self.bins, env, imagestore.node_images(node_images, progress), progress)
        progress("starting the real node: containerd")
        containerd = spawn(
            "containerd",
            [str(self.bins["containerd"]), f"--config={p.root / 'containerd' / 'config.toml'}"],
            env,
        )
        watched = [*watched, containerd]
        wait(self._containerd_ready, watched, "containerd")
        progress("starting kubelet, kube-proxy, CoreDNS, local-path-provisioner")
        labels = ",".join(f"{k}={v}" for k, v in nodeconfig.node_labels().items())
        kubelet = spawn(
            "kubelet",
            [
                str(self.bins["kubelet"]),
                f"--config={p.root / 'kubelet.yaml'}",
                f"--kubeconfig={p.kubeconfig('kubelet')}",
                f"--root-dir={p.kubelet_root}",
                f"--hostname-override={nodeconfig.NODE_NAME}",
                f"--node-ip={nodeconfig.NODE_IP}",
                f"--node-labels={labels}",
                "--v=1",
            ],
            env,
        )
        proxy = spawn(
            "kube-proxy", [str(self.bins["kube-proxy"]), f"--config={p.root / 'kube-proxy.yaml'}"],
            env,
        )
        self.kubectl("apply", "--server-side", "--force-conflicts",
                     "--field-manager=kubellm-sandbox", "-f", "-",
                     stdin=yaml.safe_dump_all(nodeconfig.cluster_objects(p)))
        dns = spawn("coredns", [str(self.bins["coredns"]), "-conf", str(p.root / "Corefile")], env)
        lpp = spawn(
            "local-path-provisioner",
            [
                str(self.bins["local-path-provisioner"]),
                "--debug",
                "start",
                f"--config={p.root / 'local-path' / 'config.json'}",
                f"--provisioner-name={nodeconfig.LOCAL_PATH_PROVISIONER}",
                f"--namespace={nodeconfig.LOCAL_PATH_NAMESPACE}",
                f"--helper-image={p.helper_image}",
                f"--service-account-name={nodeconfig.LOCAL_PATH_SA}",
                f"--configmap-name={nodeconfig.LOCAL_PATH_CONFIGMAP}",
                f"--helper-pod-file={p.root / 'local-path' / 'helper-pod.yaml'}",
                f"--kubeconfig={self.admin_kubeconfig}",
            ],
            env,
        )
        watched = [*watched, kubelet, proxy, dns, lpp]
        wait(self._registered, watched, f"node {nodeconfig.NODE_NAME} registered")
        self.kubectl(
            "patch", "node", nodeconfig.NODE_NAME, "--subresource=status", "--type=merge",
            "-p", json.dumps(nodeconfig.gpu_status_patch()),
        )
        wait(self._ready, watched, f"node {nodeconfig.NODE_NAME} Ready with its GPUs")

    def _containerd_ready(self) -> bool:
        if not self.p.containerd_socket.exists():
            return False
        try:
            self.ctr("version", timeout=10)
        except (SandboxError, subprocess.TimeoutExpired):
            return False
        return True

    def _node(self) -> dict[str, object] | None:
        out = self.kubectl("get", "node", nodeconfig.NODE_NAME, "-o", "json", check=False)
        return json.loads(out) if out else None

    def _registered(self) -> bool:
        return self._node() is not None

    def _ready(self) -> bool:
        node = self._node()
        if node is None:
            return False
        status = node.get("status") or {}
        assert isinstance(status, dict)
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions") or []
        )
        gpus = (status.get("allocatable") or {}).get("nvidia.com/gpu")
        return ready and gpus == str(nodeconfig.GPU.count)


def stop(records: list[ProcessRecord], node_root: Path, progress: Progress) -> None:
    """Stop the node's components, kill its containers and undo every host change.

    Order: the controllers and kubelet first (nothing restarts containers), then the
    containers (by cgroup), then containerd and its shims, then mounts, cgroups, iptables,
    the bridge and sysctls (:func:`hostnet.teardown`).
    """
    by_name = {r.name: r for r in records}
    for name in reversed(COMPONENTS[1:]):
        if name in by_name and process.is_running(by_name[name]):
            progress(f"stopping {name} (pid {by_name[name].pid})")
        if name in by_name:
            process.stop(by_name[name])
    killed = hostnet.kill_cgroup_processes()
    if killed:
        progress(f"killed {killed} container processes of the real node")
    if "containerd" in by_name:
        if process.is_running(by_name["containerd"]):
            progress(f"stopping containerd (pid {by_name['containerd'].pid})")
        process.stop(by_name["containerd"])
    stop_shims(node_root / "containerd" / "containerd.sock")
    hostnet.teardown(progress, node_root)


def stop_shims(socket: Path) -> int:
    """SIGKILL the runc shims that serve our containerd (their command line names its socket)."""
    killed = 0
    needle = str(socket).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"containerd-shim-runc-v2") and needle in argv:
            try:
                os.kill(int(entry.name), 9)
                killed += 1
            except OSError:
                pass
    return killed


def apiserver_flags(certs: pki.PkiPaths) -> list[str]:
    """The apiserver's flags for a sandbox with the real node.

    It talks to the real kubelet by its node IP with mutual TLS under the sandbox CA. And a
    namespace's annotations may pin all its pods to the node (PodNodeSelector:
    ``scheduler.alpha.kubernetes.io/node-selector``) and give them the node's toleration
    (PodTolerationRestriction: ``scheduler.alpha.kubernetes.io/defaultTolerations``), so the pods
    kubellm renders (the download Job too, which has no placement of its own) run for real.
    """
    node = pki.NodeCerts.under(certs.dir)
    return [
        f"--kubelet-client-certificate={node.apiserver_kubelet_cert}",
        f"--kubelet-client-key={node.apiserver_kubelet_key}",
        f"--kubelet-certificate-authority={certs.ca_cert}",
        "--kubelet-preferred-address-types=InternalIP",
        "--enable-admission-plugins=PodNodeSelector,PodTolerationRestriction",
    ]
