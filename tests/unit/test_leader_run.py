"""``kubellm run --leader-elect`` pieces that need no cluster: the flags, the Lease namespace,
and the standby's liveness endpoint (answers the probe, then frees the port for kopf)."""

from __future__ import annotations

import socket
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from kubellm.cli import build_parser
from kubellm.commands import run as run_cmd
from kubellm.errors import SpecError


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


def test_lease_namespace(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    parse = build_parser().parse_args
    monkeypatch.setenv("POD_NAMESPACE", "from-env")
    assert run_cmd.lease_namespace(parse(["run", "--leader-election-namespace", "x"])) == "x"
    assert run_cmd.lease_namespace(parse(["run"])) == "from-env"
    monkeypatch.delenv("POD_NAMESPACE")
    sa = tmp_path / "namespace"
    sa.write_text("from-sa\n")
    monkeypatch.setattr(run_cmd, "SERVICE_ACCOUNT_NAMESPACE", sa)
    assert run_cmd.lease_namespace(parse(["run"])) == "from-sa"
    monkeypatch.setattr(run_cmd, "SERVICE_ACCOUNT_NAMESPACE", tmp_path / "missing")
    with pytest.raises(SpecError, match="--leader-election-namespace: needed outside a cluster"):
        run_cmd.lease_namespace(parse(["run"]))


def test_standby_health_answers_the_probe_then_frees_the_port() -> None:
    port = free_port()
    health = run_cmd.StandbyHealth(f"http://127.0.0.1:{port}/healthz")
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
