"""The real node's configuration as data: what set-up writes and applies, and that tear-down is
its inverse. Pure: no subprocess, no network, no root."""

from __future__ import annotations

import ipaddress
import tomllib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from kubellm.sandbox import cluster, hostnet, images, nodeconfig, nodefirewall, nodes, pki
from kubellm.sandbox.nodeconfig import NodeParams


@pytest.fixture
def params(tmp_path: Path) -> NodeParams:
    return NodeParams(
        root=tmp_path / "node",
        apiserver_port=6443,
        kubelet_port=10250,
        kubelet_healthz_port=10248,
        proxy_healthz_port=10256,
        proxy_metrics_port=10249,
        dns_port=10053,
        dns_health_port=10054,
        pause_image=images.PAUSE,
        helper_image="kubellm.local/sandbox/debian:bookworm-x",
    )


def _net(cidr: str) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(cidr)


def test_addresses_are_clear_of_kwok_and_services() -> None:
    pods = _net(nodeconfig.POD_CIDR)
    for other in (cluster.KWOK_CIDR, f"{cluster.KWOK_NODE_IP}/32", pki.SERVICE_CIDR):
        assert not pods.overlaps(ipaddress.IPv4Network(other, strict=False)), other
    assert ipaddress.IPv4Address(nodeconfig.NODE_IP) in pods
    assert ipaddress.IPv4Address(nodeconfig.POD_RANGE_START) in pods
    assert ipaddress.IPv4Address(nodeconfig.DNS_SERVICE_IP) in _net(pki.SERVICE_CIDR)


def test_iptables_teardown_is_the_inverse_of_setup() -> None:
    chains = nodefirewall.iptables_rules()
    setup = nodefirewall.iptables_setup(chains)
    teardown = nodefirewall.iptables_teardown(chains)
    created = [(c[1], c[3]) for c in setup if c[2] == "-N"]
    deleted = [(c[1], c[3]) for c in teardown if c[2] == "-X"]
    assert sorted(created) == sorted(deleted) and len(created) == len(chains)
    jumps = {(c[1], c[3], c[-1]) for c in setup if c[2] == "-I"}
    unjumps = {(c[1], c[3], c[-1]) for c in teardown if c[2] == "-D"}
    assert jumps == unjumps
    # Each chain is unhooked before it is flushed and deleted, the last one made first.
    assert deleted == list(reversed(created))
    for chain in chains:
        steps = [c[2] for c in teardown if c[3] in (chain.name, chain.hook) and chain.name in c]
        assert steps == ["-D", "-F", "-X"]
    assert all(c.name.startswith(nodefirewall.OWN_CHAIN_PREFIX) for c in chains)


def test_pod_traffic_never_leaves_through_the_uplink() -> None:
    by_hook = {c.hook: c for c in nodefirewall.iptables_rules()}
    forward = by_hook["FORWARD"].rules
    assert ("-i", nodeconfig.BRIDGE, "!", "-o", nodeconfig.BRIDGE, "-j", "DROP") in forward
    out = by_hook["POSTROUTING"].rules
    assert out[:2] == (("-o", nodeconfig.BRIDGE, "-j", "RETURN"), ("-o", "lo", "-j", "RETURN"))
    dropped = {r[1] for r in out[2:] if r[-1] == "DROP"}
    assert {cluster.KWOK_CIDR.replace("0.1/16", "0.0/16"), pki.SERVICE_CIDR} <= dropped
    assert all(c.table == "mangle" for c in by_hook.values())


def test_kubelet_config_fits_this_host_and_authenticates_for_real(params: NodeParams) -> None:
    certs = pki.PkiPaths.under(params.root / "pki")
    config = nodeconfig.kubelet_config(params, certs, pki.NodeCerts.under(certs.dir))
    assert config["failCgroupV1"] is False and config["cgroupDriver"] == "cgroupfs"
    assert config["imageGCHighThresholdPercent"] == 100
    assert config["authentication"]["anonymous"]["enabled"] is False
    assert config["authentication"]["x509"]["clientCAFile"] == str(certs.ca_cert)
    assert config["authorization"]["mode"] == "Webhook"
    assert config["clusterDNS"] == [nodeconfig.DNS_SERVICE_IP]
    assert config["resolvConf"] == ""
    assert config["registerWithTaints"] == [nodeconfig.TAINT]
    assert config["address"] == nodeconfig.NODE_IP
    assert config["containerRuntimeEndpoint"] == f"unix://{params.containerd_socket}"


def test_containerd_config_never_pulls_and_fits_without_cap_sys_resource(
    params: NodeParams,
) -> None:
    config = tomllib.loads(nodeconfig.containerd_config(params))
    assert config["version"] == 3
    runtime = config["plugins"]["io.containerd.cri.v1.runtime"]
    assert runtime["restrict_oom_score_adj"] is True
    assert runtime["disable_apparmor"] is True
    assert runtime["cni"]["conf_dir"] == str(params.cni_conf_dir)
    runc = runtime["containerd"]["runtimes"]["runc"]
    assert runc["options"]["SystemdCgroup"] is False
    pinned = config["plugins"]["io.containerd.cri.v1.images"]["pinned_images"]
    assert pinned["sandbox"] == images.PAUSE
    assert config["grpc"]["address"] == str(params.containerd_socket)
    assert str(config["root"]).startswith(str(params.root))


def test_cni_uses_our_bridge_without_masquerade_or_host_forwarding(params: NodeParams) -> None:
    conf = nodeconfig.cni_conflist(params)
    bridge, portmap = conf["plugins"]
    assert (bridge["type"], portmap["type"]) == ("bridge", "portmap")
    assert bridge["bridge"] == nodeconfig.BRIDGE
    assert bridge["isGateway"] is False and bridge["ipMasq"] is False
    (rng,) = bridge["ipam"]["ranges"][0]
    assert rng["subnet"] == nodeconfig.POD_CIDR and rng["gateway"] == nodeconfig.NODE_IP
    assert bridge["ipam"]["dataDir"].startswith(str(params.root))


def test_kube_proxy_is_iptables_mode_and_leaves_sysctls_alone(params: NodeParams) -> None:
    config = nodeconfig.kube_proxy_config(params)
    assert config["mode"] == "iptables"
    assert config["conntrack"]["maxPerCore"] == 0
    assert config["iptables"]["localhostNodePorts"] is False
    assert config["nodePortAddresses"] == [f"{nodeconfig.NODE_IP}/32"]


def test_corefile_serves_the_cluster_zone_and_forwards_nothing(params: NodeParams) -> None:
    text = nodeconfig.corefile(params, Path("/k"))
    assert "kubernetes cluster.local" in text and "kubeconfig /k" in text
    assert "forward" not in text and "proxy" not in text
    assert f"bind {nodeconfig.NODE_IP}" in text


def test_cluster_objects_publish_the_apiserver_and_dns_on_the_node_ip(params: NodeParams) -> None:
    objects = {(o["kind"], o["metadata"]["name"]): o for o in nodeconfig.cluster_objects(params)}
    api = objects[("EndpointSlice", "kubernetes")]
    assert api["endpoints"][0]["addresses"] == [nodeconfig.NODE_IP]
    assert api["ports"][0]["port"] == params.apiserver_port
    assert api["metadata"]["labels"]["kubernetes.io/service-name"] == "kubernetes"
    dns = objects[("Service", "kube-dns")]
    assert dns["spec"]["clusterIP"] == nodeconfig.DNS_SERVICE_IP
    assert {p["targetPort"] for p in dns["spec"]["ports"]} == {params.dns_port}
    sc = objects[("StorageClass", nodeconfig.STORAGE_CLASS)]
    assert sc["volumeBindingMode"] == "WaitForFirstConsumer"
    assert ("ConfigMap", nodeconfig.LOCAL_PATH_CONFIGMAP) in objects


def test_the_node_looks_like_a_gpu_node_to_kubellm() -> None:
    labels = nodeconfig.node_labels()
    assert labels["nvidia.com/gpu.product"] == nodeconfig.GPU.product
    assert labels["nvidia.com/gpu.count"] == str(nodeconfig.GPU.count)
    assert labels[nodes.POOL_LABEL] == nodeconfig.POOL
    patch = nodeconfig.gpu_status_patch()
    assert patch["status"]["capacity"][nodes.GPU_RESOURCE] == str(nodeconfig.GPU.count)


def test_node_certificates_name_the_node_and_its_roles(tmp_path: Path) -> None:
    paths = pki.generate(tmp_path)
    certs = pki.node_certs(paths, "n1", "10.250.0.1")
    ca = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())

    def subject(path: Path) -> tuple[str, str | None]:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
        cert.verify_directly_issued_by(ca)
        org = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
        cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        return str(cn), str(org[0].value) if org else None

    assert subject(certs.kubelet_client_cert) == ("system:node:n1", "system:nodes")
    assert subject(certs.proxy_cert) == ("system:kube-proxy", None)
    assert subject(certs.apiserver_kubelet_cert)[1] == "system:masters"
    serving = x509.load_pem_x509_certificate(certs.kubelet_serving_cert.read_bytes())
    sans = serving.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["n1"]
    assert sans.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.250.0.1")]


def test_sweep_removes_jumps_then_chains(monkeypatch: pytest.MonkeyPatch) -> None:
    listing = {
        "filter": "-P INPUT ACCEPT\n-N KUBE-FIREWALL\n-A INPUT -j KUBE-FIREWALL\n"
        '-A KUBE-FIREWALL -m comment --comment "block x" -j DROP\n-A INPUT -j ACCEPT\n',
        "nat": "-P PREROUTING ACCEPT\n",
    }
    calls: list[list[str]] = []

    class Done:
        def __init__(self, stdout: str = "") -> None:
            self.stdout, self.returncode = stdout, 0

    def fake(args: list[str], *, check: bool = True) -> Done:
        calls.append(args)
        return Done(listing.get(args[1], "")) if args[2] == "-S" else Done()

    monkeypatch.setattr(hostnet, "iptables", fake)
    hostnet.sweep_chains(nodefirewall.FOREIGN_CHAIN_PREFIXES)
    changes = [c for c in calls if c[2] != "-S"]
    assert changes == [
        ["-t", "filter", "-D", "INPUT", "-j", "KUBE-FIREWALL"],
        ["-t", "filter", "-F", "KUBE-FIREWALL"],
        ["-t", "filter", "-X", "KUBE-FIREWALL"],
    ]


def test_debootstrap_uses_the_mirror_apt_uses(tmp_path: Path) -> None:
    deb822 = tmp_path / "debian.sources"
    deb822.write_text("Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n")
    assert images.apt_mirror((deb822,)) == "http://mirror.example/debian"
    legacy = tmp_path / "sources.list"
    legacy.write_text("deb [arch=amd64] http://m.example/debian/ bookworm main\n")
    assert images.apt_mirror((tmp_path / "none", legacy)) == "http://m.example/debian"
    assert images.apt_mirror(()) == "http://deb.debian.org/debian"
