"""Certificates and kubeconfig of the sandbox control plane, made with ``cryptography``.

One CA signs the API server's serving certificate (SANs: localhost, 127.0.0.1, the in-cluster
service names and the first service IP) and one admin client certificate (``O=system:masters``)
that the controller-manager, scheduler, kwok and the user share. A separate key pair signs
ServiceAccount tokens. ECDSA P-256 keys: fast to generate and accepted by every component.
Everything lives under the sandbox state directory and dies with it.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CLUSTER_NAME = "kubellm-sandbox"
ADMIN_USER = "kubellm-sandbox-admin"
SERVICE_CIDR = "10.96.0.0/16"
SERVICE_IP = "10.96.0.1"
_VALIDITY = dt.timedelta(days=365)
_DNS_NAMES = (
    "localhost",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)


@dataclass(frozen=True)
class PkiPaths:
    """Files written by :func:`generate`; all PEM."""

    dir: Path
    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    admin_cert: Path
    admin_key: Path
    sa_key: Path
    sa_pub: Path

    @classmethod
    def under(cls, directory: Path) -> PkiPaths:
        return cls(
            dir=directory,
            ca_cert=directory / "ca.crt",
            ca_key=directory / "ca.key",
            server_cert=directory / "apiserver.crt",
            server_key=directory / "apiserver.key",
            admin_cert=directory / "admin.crt",
            admin_key=directory / "admin.key",
            sa_key=directory / "sa.key",
            sa_pub=directory / "sa.pub",
        )


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attrs.insert(0, x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attrs)


def _builder(subject: x509.Name, issuer: x509.Name, public_key: Any) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
    )


def _write(path: Path, data: bytes, *, private: bool = False) -> None:
    path.write_bytes(data)
    if private:
        os.chmod(path, 0o600)


def _sign(
    ca_name: x509.Name,
    ca_key: ec.EllipticCurvePrivateKey,
    key: ec.EllipticCurvePrivateKey,
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    sans: list[x509.GeneralName] | None = None,
) -> x509.Certificate:
    """A leaf certificate for ``key`` signed by the CA (``ca_name``, ``ca_key``)."""
    builder = (
        _builder(subject, ca_name, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=True,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def generate(directory: Path, *, extra_ips: tuple[str, ...] = ()) -> PkiPaths:
    """Write a fresh CA, serving cert, admin client cert and ServiceAccount key pair."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = PkiPaths.under(directory)

    ca_key = _key()
    ca_name = _name(f"{CLUSTER_NAME}-ca")
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )

    def leaf(
        key: ec.EllipticCurvePrivateKey,
        subject: x509.Name,
        usage: x509.ObjectIdentifier,
        sans: list[x509.GeneralName] | None = None,
    ) -> x509.Certificate:
        return _sign(ca_name, ca_key, key, subject, usage, sans)

    ips = ["127.0.0.1", "::1", SERVICE_IP, *extra_ips]
    sans: list[x509.GeneralName] = [x509.DNSName(n) for n in _DNS_NAMES]
    sans += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in dict.fromkeys(ips)]
    server_key = _key()
    server_cert = leaf(
        server_key, _name("kube-apiserver"), ExtendedKeyUsageOID.SERVER_AUTH, sans
    )
    admin_key = _key()
    admin_cert = leaf(
        admin_key, _name(ADMIN_USER, "system:masters"), ExtendedKeyUsageOID.CLIENT_AUTH
    )
    sa_key = _key()

    pem = serialization.Encoding.PEM
    _write(paths.ca_cert, ca_cert.public_bytes(pem))
    _write(paths.ca_key, _key_pem(ca_key), private=True)
    _write(paths.server_cert, server_cert.public_bytes(pem))
    _write(paths.server_key, _key_pem(server_key), private=True)
    _write(paths.admin_cert, admin_cert.public_bytes(pem))
    _write(paths.admin_key, _key_pem(admin_key), private=True)
    _write(paths.sa_key, _key_pem(sa_key), private=True)
    _write(
        paths.sa_pub,
        sa_key.public_key().public_bytes(pem, serialization.PublicFormat.SubjectPublicKeyInfo),
    )
    return paths


def kubeconfig(
    server: str,
    pki: PkiPaths,
    *,
    name: str = CLUSTER_NAME,
    client: tuple[Path, Path] | None = None,
    user: str = ADMIN_USER,
) -> dict[str, Any]:
    """A self-contained kubeconfig (certificates embedded); the admin user unless ``client``."""
    cert, key = client or (pki.admin_cert, pki.admin_key)

    def b64(path: Path) -> str:
        return base64.b64encode(path.read_bytes()).decode("ascii")

    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": name,
                "cluster": {"server": server, "certificate-authority-data": b64(pki.ca_cert)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": b64(cert),
                    "client-key-data": b64(key),
                },
            }
        ],
        "contexts": [{"name": name, "context": {"cluster": name, "user": user}}],
        "current-context": name,
        "preferences": {},
    }


def write_kubeconfig(
    path: Path,
    server: str,
    pki: PkiPaths,
    *,
    client: tuple[Path, Path] | None = None,
    user: str = ADMIN_USER,
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(kubeconfig(server, pki, client=client, user=user), sort_keys=False)
    _write(path, text.encode(), private=True)
    return path


@dataclass(frozen=True)
class NodeCerts:
    """Certificates of the real worker node, signed by the sandbox CA (:func:`node_certs`)."""

    kubelet_client_cert: Path  # CN=system:node:<name>, O=system:nodes (Node authorizer)
    kubelet_client_key: Path
    kubelet_serving_cert: Path  # SANs: the node name and IP; the apiserver verifies it
    kubelet_serving_key: Path
    apiserver_kubelet_cert: Path  # the apiserver's client certificate towards kubelets
    apiserver_kubelet_key: Path
    proxy_cert: Path  # CN=system:kube-proxy (bound to system:node-proxier)
    proxy_key: Path

    @classmethod
    def under(cls, d: Path) -> NodeCerts:
        return cls(
            d / "kubelet-client.crt", d / "kubelet-client.key",
            d / "kubelet.crt", d / "kubelet.key",
            d / "apiserver-kubelet-client.crt", d / "apiserver-kubelet-client.key",
            d / "kube-proxy.crt", d / "kube-proxy.key",
        )


def node_certs(pki: PkiPaths, node_name: str, node_ip: str) -> NodeCerts:
    """Sign the kubelet's client and serving certificates, the apiserver's kubelet client
    certificate and kube-proxy's, with the CA that :func:`generate` wrote."""
    ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
    ca_cert = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
    if not isinstance(ca_key, ec.EllipticCurvePrivateKey):  # pragma: no cover - we wrote it
        raise TypeError("the sandbox CA key is not an EC key")
    out = NodeCerts.under(pki.dir)
    client, server = ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH
    serving_sans: list[x509.GeneralName] = [
        x509.DNSName(node_name), x509.IPAddress(ipaddress.ip_address(node_ip))
    ]
    for cert_path, key_path, subject, usage, sans in (
        (out.kubelet_client_cert, out.kubelet_client_key,
         _name(f"system:node:{node_name}", "system:nodes"), client, None),
        (out.kubelet_serving_cert, out.kubelet_serving_key, _name(node_name), server,
         serving_sans),
        (out.apiserver_kubelet_cert, out.apiserver_kubelet_key,
         _name("kube-apiserver-kubelet-client", "system:masters"), client, None),
        (out.proxy_cert, out.proxy_key, _name("system:kube-proxy"), client, None),
    ):
        key = _key()
        cert = _sign(ca_cert.subject, ca_key, key, subject, usage, sans)
        _write(cert_path, cert.public_bytes(serialization.Encoding.PEM))
        _write(key_path, _key_pem(key), private=True)
    return out
