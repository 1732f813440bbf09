"""Pure rendering of the real worker node's configuration: no subprocess, no file, no network.

Everything :mod:`kubellm.sandbox.realnode` writes or applies is computed here from one
:class:`NodeParams`, so unit tests can check it and tear-down can be derived from set-up:

- :func:`containerd_config` (TOML), :func:`cni_conflist`, :func:`kubelet_config`,
  :func:`kube_proxy_config`, :func:`corefile`, :func:`local_path_config`;
- the sandbox's own iptables chains: :mod:`kubellm.sandbox.nodefirewall`;
- :data:`KERNEL_SYSCTLS`: what the kubelet (and kube-proxy) may change, snapshotted by set-up and
  restored by tear-down;
- :func:`cluster_objects`: the ``kubernetes`` and ``kube-dns`` Service endpoints on the node IP,
  the local-path StorageClass, its namespace, ServiceAccount and helper-script ConfigMap;
- :func:`gpu_status_patch`: the simulated ``nvidia.com/gpu`` capacity of the node.

Addresses: a bridge :data:`BRIDGE` carries :data:`NODE_IP` and the pod range :data:`POD_CIDR`
(clear of kwok's 10.244.0.0/16, the kwok node IP 10.254.0.1 and the Service range 10.96.0.0/16).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubellm.sandbox import nodes, pki

BRIDGE = "kubellm0"
POD_CIDR = "10.250.0.0/24"
NODE_IP = "10.250.0.1"
POD_RANGE_START = "10.250.0.10"
DNS_SERVICE_IP = "10.96.0.10"
CLUSTER_DOMAIN = "cluster.local"
NODE_NAME = "kubellm-real-0"
POOL = "real"
#: Only pods that tolerate this taint run on the real node; kwok-simulated workloads never land
#: there by accident (a pod there runs for real: its image must have been imported).
TAINT = {"key": "kubellm.io/real-node", "value": "true", "effect": "NoSchedule"}
REAL_NODE_LABEL = "kubellm.io/real-node"
#: The simulated GPUs the real node advertises (its containers run on CPU).
GPU = nodes.GpuSpec(product="NVIDIA-L4", count=8, memory_mib=23034, family="ada-lovelace")
STORAGE_CLASS = "kubellm-local-path"
LOCAL_PATH_PROVISIONER = "rancher.io/local-path"
LOCAL_PATH_NAMESPACE = "kubellm-local-path"
LOCAL_PATH_SA = "local-path-provisioner"
LOCAL_PATH_CONFIGMAP = "local-path-config"
#: Kernel tunables the kubelet sets at start (vm.overcommit_memory=1, kernel.panic=10, ...)
#: and kube-proxy's conntrack ones: snapshotted at set-up, restored at tear-down.
KERNEL_SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
    "net/ipv4/ip_forward",
    "net/ipv4/conf/all/route_localnet",
    "net/netfilter/nf_conntrack_max",
)


@dataclass(frozen=True)
class NodeParams:
    """Everything the node's configuration depends on."""

    root: Path  # <sandbox state dir>/node
    apiserver_port: int
    kubelet_port: int
    kubelet_healthz_port: int
    proxy_healthz_port: int
    proxy_metrics_port: int
    dns_port: int
    dns_health_port: int
    pause_image: str
    helper_image: str
    cni_bin_dir: str = "/usr/lib/cni"
    runc: str = "/usr/sbin/runc"
    #: containerd's root (content, snapshots, metadata); None: inside ``root``. The sandbox
    #: passes the image store kept across sandboxes (:mod:`kubellm.sandbox.imagestore`).
    containerd_root: Path | None = None

    # ---- paths ---------------------------------------------------------------------------
    @property
    def containerd_socket(self) -> Path:
        return self.root / "containerd" / "containerd.sock"

    @property
    def kubelet_root(self) -> Path:
        return self.root / "kubelet"

    @property
    def cni_conf_dir(self) -> Path:
        return self.root / "cni" / "net.d"

    @property
    def volumes_dir(self) -> Path:
        return self.root / "volumes"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def kubeconfig(self, user: str) -> Path:
        return self.root / f"{user}.kubeconfig"

    @property
    def server(self) -> str:
        return f"https://{NODE_IP}:{self.apiserver_port}"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))


def to_toml(tables: dict[str, dict[str, Any]], top: dict[str, Any]) -> str:
    """A tiny TOML writer for flat tables (``[a.'b.c'.d]`` keys are passed pre-quoted)."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in top.items()]
    for name, body in tables.items():
        lines += ["", f"[{name}]"] + [f"{k} = {_toml_value(v)}" for k, v in body.items()]
    return "\n".join(lines) + "\n"


def containerd_config(p: NodeParams) -> str:
    """containerd v2 config (version 3): CRI with runc, CNI from ``p.cni_bin_dir``, no pulls."""
    c = p.root / "containerd"
    rt = "plugins.'io.containerd.cri.v1.runtime'"
    runc = f"{rt}.containerd.runtimes.runc"
    return to_toml(
        {
            "grpc": {"address": str(p.containerd_socket)},
            "ttrpc": {"address": str(c / "containerd.sock.ttrpc")},
            "debug": {"level": "info"},
            rt: {
                "enable_selinux": False,
                # root here lacks CAP_SYS_RESOURCE: never ask for a lower oom_score_adj.
                "restrict_oom_score_adj": True,
                "disable_apparmor": True,
                "netns_mounts_under_state_dir": True,
                "tolerate_missing_hugetlb_controller": True,
            },
            f"{rt}.containerd": {"default_runtime_name": "runc"},
            runc: {"runtime_type": "io.containerd.runc.v2"},
            f"{runc}.options": {
                "BinaryName": p.runc,
                "Root": str(c / "runc"),
                "SystemdCgroup": False,
            },
            f"{rt}.cni": {
                "bin_dirs": [p.cni_bin_dir],
                "conf_dir": str(p.cni_conf_dir),
                "max_conf_num": 1,
            },
            "plugins.'io.containerd.cri.v1.images'": {
                "snapshotter": "overlayfs",
                "image_pull_progress_timeout": "1m0s",
            },
            "plugins.'io.containerd.cri.v1.images'.pinned_images": {"sandbox": p.pause_image},
            "plugins.'io.containerd.grpc.v1.cri'": {
                "disable_tcp_service": True,
                "stream_server_address": "127.0.0.1",
                "stream_server_port": "0",
            },
        },
        {
            "version": 3,
            "root": str(p.containerd_root or c / "root"),
            "state": str(c / "state"),
            "disabled_plugins": [
                "io.containerd.snapshotter.v1.btrfs",
                "io.containerd.snapshotter.v1.zfs",
                "io.containerd.snapshotter.v1.devmapper",
                "io.containerd.snapshotter.v1.blockfile",
                "io.containerd.snapshotter.v1.erofs",
                "io.containerd.tracing.processor.v1.otlp",
                "io.containerd.internal.v1.tracing",
            ],
        },
    )


def cni_conflist(p: NodeParams) -> dict[str, Any]:
    """bridge + host-local + portmap on :data:`BRIDGE`; no masquerade, no IP forwarding change.

    ``isGateway`` is off because the bridge already carries :data:`NODE_IP` (set-up puts it
    there) and because the plugin would otherwise turn on forwarding for the whole host.
    """
    return {
        "cniVersion": "1.0.0",
        "name": "kubellm-sandbox",
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": False,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [
                        [{"subnet": POD_CIDR, "rangeStart": POD_RANGE_START, "gateway": NODE_IP}]
                    ],
                    "routes": [{"dst": "0.0.0.0/0", "gw": NODE_IP}],
                    "dataDir": str(p.root / "cni" / "ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def node_labels() -> dict[str, str]:
    """kubelet ``--node-labels``: the pool label, the real-node label and the GFD labels."""
    return {
        nodes.POOL_LABEL: POOL,
        REAL_NODE_LABEL: "true",
        **nodes.gpu_labels(GPU),
    }


def kubelet_config(p: NodeParams, certs: pki.PkiPaths, node_certs: pki.NodeCerts) -> dict[str, Any]:
    """KubeletConfiguration for this host: cgroup v1 + cgroupfs, real authn/authz, no GC."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": "/kubellm-sandbox",
        "address": NODE_IP,
        "port": p.kubelet_port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": p.kubelet_healthz_port,
        "tlsCertFile": str(node_certs.kubelet_serving_cert),
        "tlsPrivateKeyFile": str(node_certs.kubelet_serving_key),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True, "cacheTTL": "30s"},
            "x509": {"clientCAFile": str(certs.ca_cert)},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{p.containerd_socket}",
        "clusterDNS": [DNS_SERVICE_IP],
        "clusterDomain": CLUSTER_DOMAIN,
        # No host resolver in pods: dnsPolicy Default gets no nameserver, ClusterFirst gets ours.
        "resolvConf": "",
        # An image collected here could never be pulled back.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "failSwapOn": False,
        "protectKernelDefaults": False,
        "registerWithTaints": [dict(TAINT)],
        "maxPods": 110,
        "podLogsDir": str(p.root / "pod-logs"),
        "serializeImagePulls": False,
        "nodeStatusUpdateFrequency": "5s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "10s",
        "staticPodPath": "",
    }


def kube_proxy_config(p: NodeParams) -> dict[str, Any]:
    """kube-proxy in iptables mode; it changes no conntrack sysctl and no route_localnet."""
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(p.kubeconfig("kube-proxy"))},
        "hostnameOverride": NODE_NAME,
        "bindAddress": NODE_IP,
        "clusterCIDR": POD_CIDR,
        "healthzBindAddress": f"127.0.0.1:{p.proxy_healthz_port}",
        "metricsBindAddress": f"127.0.0.1:{p.proxy_metrics_port}",
        "nodePortAddresses": [f"{NODE_IP}/32"],
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
        "iptables": {
            # Pod -> Service -> pod on one bridge works without relying on br_netfilter.
            "masqueradeAll": True,
            "localhostNodePorts": False,
            "syncPeriod": "30s",
            "minSyncPeriod": "1s",
        },
    }


def corefile(p: NodeParams, kubeconfig: Path) -> str:
    """CoreDNS: the cluster zone from the sandbox API, nothing forwarded upstream."""
    return (
        f"{CLUSTER_DOMAIN}:{p.dns_port} in-addr.arpa:{p.dns_port} ip6.arpa:{p.dns_port} {{\n"
        f"    bind {NODE_IP}\n"
        "    errors\n"
        f"    health 127.0.0.1:{p.dns_health_port}\n"
        f"    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{\n"
        f"        kubeconfig {kubeconfig}\n"
        "        pods insecure\n"
        "        fallthrough in-addr.arpa ip6.arpa\n"
        "        ttl 5\n"
        "    }\n"
        "    cache 5\n"
        "}\n"
        # Everything else: an authoritative "no such name", never a query to the host resolver.
        f".:{p.dns_port} {{\n"
        f"    bind {NODE_IP}\n"
        "    template ANY ANY {\n"
        "        rcode NXDOMAIN\n"
        "    }\n"
        "}\n"
    )


def local_path_config(p: NodeParams) -> dict[str, Any]:
    """local-path-provisioner's config.json: volumes under the node's state directory."""
    return {"nodePathMap": [{"node": NODE_NAME, "paths": [str(p.volumes_dir)]}]}


def helper_pod(p: NodeParams) -> dict[str, Any]:
    """local-path-provisioner's helper pod (mkdir/rm of a volume directory on the node)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "helper-pod"},
        "spec": {
            "priorityClassName": "system-node-critical",
            "containers": [
                {"name": "helper-pod", "image": p.helper_image, "imagePullPolicy": "Never"}
            ],
        },
    }

SETUP_SCRIPT = '#!/bin/sh\nset -eu\nmkdir -m 0777 -p "$VOL_DIR"\n'
TEARDOWN_SCRIPT = '#!/bin/sh\nset -eu\nrm -rf "$VOL_DIR"\n'


def _slice(name: str, namespace: str, service: str, ports: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                "kubernetes.io/service-name": service,
                "endpointslice.kubernetes.io/managed-by": "sandbox.kubellm.io",
            },
        },
        "addressType": "IPv4",
        "endpoints": [{"addresses": [NODE_IP], "conditions": {"ready": True}}],
        "ports": ports,
    }


def cluster_objects(p: NodeParams) -> list[dict[str, Any]]:
    """API objects the real node needs: Service endpoints on the node IP, the PVC provisioner's."""
    https = [{"name": "https", "port": p.apiserver_port, "protocol": "TCP"}]
    dns_ports = [
        {"name": "dns", "port": p.dns_port, "protocol": "UDP"},
        {"name": "dns-tcp", "port": p.dns_port, "protocol": "TCP"},
    ]
    ns = LOCAL_PATH_NAMESPACE
    return [
        # The apiserver publishes no endpoints (--endpoint-reconciler-type=none): we do, on
        # the node IP it listens on. The Endpoints copy is for old clients, not mirrored.
        {
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {
                "name": "kubernetes",
                "namespace": "default",
                "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"},
            },
            "subsets": [{"addresses": [{"ip": NODE_IP}], "ports": https}],
        },
        _slice("kubernetes", "default", "kubernetes", https),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "kube-dns",
                "namespace": "kube-system",
                "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"},
            },
            "spec": {
                "clusterIP": DNS_SERVICE_IP,
                "ports": [
                    {"name": "dns", "port": 53, "targetPort": p.dns_port, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "targetPort": p.dns_port, "protocol": "TCP"},
                ],
            },
        },
        _slice("kube-dns-sandbox", "kube-system", "kube-dns", dns_ports),
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": LOCAL_PATH_SA, "namespace": ns},
        },
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": LOCAL_PATH_CONFIGMAP, "namespace": ns},
            "data": {
                "config.json": json.dumps(local_path_config(p)),
                "setup": SETUP_SCRIPT,
                "teardown": TEARDOWN_SCRIPT,
                "helperPod.yaml": json.dumps(helper_pod(p)),
            },
        },
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": STORAGE_CLASS},
            "provisioner": LOCAL_PATH_PROVISIONER,
            "volumeBindingMode": "WaitForFirstConsumer",
            "reclaimPolicy": "Delete",
        },
    ]


def gpu_status_patch() -> dict[str, Any]:
    """Node status patch adding the simulated GPUs (the kubelet keeps extended resources)."""
    return {"status": {"capacity": {nodes.GPU_RESOURCE: str(GPU.count)}}}


def real_node_namespace_annotations() -> dict[str, str]:
    """Annotations that put every pod of a namespace on the real node, tolerating its taint.

    Read by the apiserver's PodNodeSelector and PodTolerationRestriction admission plugins
    (enabled when the sandbox has a real node): kubellm's download Job has no placement of its
    own, and its pods would otherwise land on a kwok node and only pretend to run.
    """
    toleration = {**TAINT, "operator": "Equal"}
    return {
        "scheduler.alpha.kubernetes.io/node-selector": f"kubernetes.io/hostname={NODE_NAME}",
        "scheduler.alpha.kubernetes.io/defaultTolerations": json.dumps([toleration]),
    }
