"""Sandbox PKI and kubeconfig: a CA that really signs what the apiserver and clients present."""

from __future__ import annotations

import base64
import ipaddress
import ssl
import stat
from pathlib import Path

import yaml
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from kubellm.sandbox import pki


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_server_cert_is_signed_by_ca_and_names_loopback_and_service(tmp_path: Path) -> None:
    paths = pki.generate(tmp_path, extra_ips=("192.0.2.7",))
    ca, server = _cert(paths.ca_cert), _cert(paths.server_cert)
    server.verify_directly_issued_by(ca)
    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"localhost", "kubernetes.default.svc"} <= set(sans.get_values_for_type(x509.DNSName))
    ips = set(sans.get_values_for_type(x509.IPAddress))
    assert {ipaddress.ip_address(a) for a in ("127.0.0.1", pki.SERVICE_IP, "192.0.2.7")} <= ips
    usage = server.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in usage
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca


def test_admin_cert_is_a_system_masters_client(tmp_path: Path) -> None:
    paths = pki.generate(tmp_path)
    admin = _cert(paths.admin_cert)
    admin.verify_directly_issued_by(_cert(paths.ca_cert))
    orgs = admin.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    assert [o.value for o in orgs] == ["system:masters"]
    usage = admin.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in usage


def test_private_keys_are_owner_only_and_sa_pair_matches(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    paths = pki.generate(tmp_path)
    for key in (paths.ca_key, paths.server_key, paths.admin_key, paths.sa_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    private = serialization.load_pem_private_key(paths.sa_key.read_bytes(), None)
    public = serialization.load_pem_public_key(paths.sa_pub.read_bytes())
    assert isinstance(private, ec.EllipticCurvePrivateKey)
    assert private.public_key().public_numbers() == public.public_numbers()  # type: ignore[union-attr]


def test_two_generations_give_different_cas(tmp_path: Path) -> None:
    a = pki.generate(tmp_path / "a")
    b = pki.generate(tmp_path / "b")
    assert a.ca_cert.read_bytes() != b.ca_cert.read_bytes()


def test_kubeconfig_embeds_credentials_that_python_tls_accepts(tmp_path: Path) -> None:
    paths = pki.generate(tmp_path)
    path = pki.write_kubeconfig(tmp_path / "kc", "https://127.0.0.1:6443", paths)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    config = yaml.safe_load(path.read_text())
    assert config["current-context"] == pki.CLUSTER_NAME
    [cluster] = config["clusters"]
    assert cluster["cluster"]["server"] == "https://127.0.0.1:6443"
    ca_pem = base64.b64decode(cluster["cluster"]["certificate-authority-data"])
    assert ca_pem == paths.ca_cert.read_bytes()
    [user] = config["users"]
    assert base64.b64decode(user["user"]["client-key-data"]) == paths.admin_key.read_bytes()
    # The files load into a real TLS context (what the sandbox's health checks use).
    ctx = ssl.create_default_context(cafile=str(paths.ca_cert))
    ctx.load_cert_chain(str(paths.admin_cert), str(paths.admin_key))
