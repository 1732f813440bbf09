"""``kubellm run --leader-elect`` pieces that need no cluster: the flags, the Lease namespace,
and the standby's liveness endpoint (answers the probe, then frees the port for kopf)."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from kubellm.cli import build_parser
from kubellm.errors import SpecError
from kubellm.shell.config import OperatorConfig, lease_namespace
from kubellm.shell.election import StandbyHealth


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_flags_parse_and_default() -> None:
    args = build_parser().parse_args(["run", "--leader-elect", "--leader-election-namespace",
                                      "ops", "--leader-election-id", "llm", "--runtime-image",
                                      "vllm=x/y:1", "--gpu-catalog", "/etc/kubellm/gpus.yaml"])
    assert (args.leader_elect, args.leader_election_namespace, args.leader_election_id) == (
        True, "ops", "llm")
    assert args.runtime_image == ["vllm=x/y:1"] and args.gpu_catalog == ["/etc/kubellm/gpus.yaml"]
    plain = build_parser().parse_args(["run"])
    assert plain.leader_elect is False and plain.leader_election_id == "kubellm-operator"


def test_lease_namespace(tmp_path: Path) -> None:
    sa = tmp_path / "namespace"
    assert lease_namespace("x", {"POD_NAMESPACE": "from-env"}, sa) == "x"
    assert lease_namespace(None, {"POD_NAMESPACE": "from-env"}, sa) == "from-env"
    sa.write_text("from-sa\n")
    assert lease_namespace(None, {}, sa) == "from-sa"
    with pytest.raises(SpecError, match="--leader-election-namespace: needed outside a cluster"):
        lease_namespace(None, {}, tmp_path / "missing")


def test_the_config_carries_the_election() -> None:
    args = build_parser().parse_args(["run", "--leader-elect", "--leader-election-namespace",
                                      "ops", "--leader-election-id", "llm"])
    election = OperatorConfig.from_args(args, {}).election
    assert election is not None and (election.namespace, election.name) == ("ops", "llm")
    plain = build_parser().parse_args(["run", "--leader-election-namespace", "ops"])
    assert OperatorConfig.from_args(plain, {}).election is None


def test_standby_health_answers_the_probe_then_frees_the_port() -> None:
    port = free_port()
    health = StandbyHealth(f"http://127.0.0.1:{port}/healthz")
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
            assert resp.status == 200 and b"standby" in resp.read()
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/other", timeout=5)
        assert info.value.code == 404
    finally:
        health.close()
    with socket.socket() as s:  # kopf can bind the same port right away
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
