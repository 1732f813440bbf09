"""Sandbox life cycle without real binaries: fake components (shell scripts) show that a
component dying at start fails ``up`` with its log tail, that ``down`` stops only what it
started and is idempotent, and that bad input is refused before anything starts."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kubellm.errors import SpecError
from kubellm.sandbox import cluster, install, process, stages, versions
from kubellm.sandbox.cluster import Sandbox
from kubellm.sandbox.errors import SandboxError


@pytest.fixture
def fake_bins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Every binary is a script; etcd fails at once with a recognisable message."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    paths = {}
    for name in versions.BINARIES:
        script = "#!/bin/sh\nexec sleep 60\n"
        if name == "etcd":
            script = "#!/bin/sh\necho starting\necho 'fatal: listen tcp: bind: boom' >&2\nexit 1\n"
        path = bin_dir / name
        path.write_text(script)
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
        paths[name] = path
    monkeypatch.setattr(install, "binaries", lambda: install.Binaries(paths, bin_dir))
    monkeypatch.setenv("KUBELLM_SANDBOX_START_TIMEOUT", "20")
    return paths


def test_down_without_a_sandbox_is_fine_twice(tmp_path: Path) -> None:
    sandbox = Sandbox(tmp_path / "state")
    assert sandbox.down() is False
    assert sandbox.down() is False
    assert sandbox.status() == []
    assert not sandbox.is_up()


def test_failed_component_start_shows_its_log_tail(
    tmp_path: Path, fake_bins: dict[str, Path]
) -> None:
    sandbox = Sandbox(tmp_path / "state")
    with pytest.raises(SandboxError) as err:
        sandbox.up(progress=lambda _: None)
    text = str(err.value)
    assert "etcd exited while waiting for etcd /health" in text
    assert "fatal: listen tcp: bind: boom" in text
    # state is kept for inspection; down cleans it and a second down is a no-op
    assert sandbox.down(lambda _: None) is True
    assert not sandbox.state_dir.exists()
    assert sandbox.down(lambda _: None) is False


def test_malformed_nodes_file_is_refused_before_anything_starts(
    tmp_path: Path, fake_bins: dict[str, Path]
) -> None:
    bad = tmp_path / "pools.yaml"
    bad.write_text("pools: [{name: gpu, count: 1, gpu: {product: NVIDIA-L4, count: 0}}]")
    sandbox = Sandbox(tmp_path / "state")
    with pytest.raises(SpecError, match=r"pools\.yaml: pools\[0\]\.gpu\.count"):
        sandbox.up(bad, progress=lambda _: None)
    assert sandbox.read_state() is None


def test_requested_port_in_use_is_named(tmp_path: Path, fake_bins: dict[str, Path]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(SpecError, match=f"127.0.0.1:{port} is already in use"):
            Sandbox(tmp_path / "state").up(port=port, progress=lambda _: None)


def test_refuses_a_foreign_non_empty_directory(tmp_path: Path, fake_bins: dict[str, Path]) -> None:
    foreign = tmp_path / "home"
    foreign.mkdir()
    (foreign / "precious.txt").write_text("keep me")
    with pytest.raises(SandboxError, match="not made by kubellm sandbox"):
        Sandbox(foreign).up(progress=lambda _: None)
    Sandbox(foreign).down(lambda _: None)
    assert (foreign / "precious.txt").exists()


@pytest.fixture
def sleeper(tmp_path: Path) -> Iterator[process.ProcessRecord]:
    record = process.spawn("sleeper", ["sleep", "60"], tmp_path / "sleeper.log", tmp_path)
    yield record
    process.stop(record, timeout=2)


def test_stop_ignores_a_reused_pid(sleeper: process.ProcessRecord) -> None:
    impostor = process.ProcessRecord("x", sleeper.pid, "1", sleeper.log, ())
    if sleeper.start_time is None:
        pytest.skip("no /proc start times on this system")
    assert not process.is_running(impostor)
    process.stop(impostor, timeout=0.5)
    assert process.is_running(sleeper)


def test_stop_terminates_the_recorded_process(sleeper: process.ProcessRecord) -> None:
    assert process.is_running(sleeper)
    started = time.monotonic()
    process.stop(sleeper, timeout=5)
    assert not process.is_running(sleeper)
    assert time.monotonic() - started < 5


def test_log_tail_returns_the_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("\n".join(f"line {i}" for i in range(100)))
    assert process.log_tail(log, 3) == "line 97\nline 98\nline 99"
    assert process.log_tail(tmp_path / "absent.log") == "(no log)"


def test_default_state_dir_honours_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBELLM_SANDBOX_DIR", "/tmp/somewhere")
    assert cluster.default_state_dir() == Path("/tmp/somewhere")
    monkeypatch.delenv("KUBELLM_SANDBOX_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", "/tmp/xdg")
    assert cluster.default_state_dir() == Path("/tmp/xdg/kubellm/sandbox")


def test_fail_stage_wins_and_ready_stages_skip_annotated_pods() -> None:
    by_name = {s["metadata"]["name"]: s["spec"] for s in stages.stages()}
    fail = by_name["kubellm-pod-fail"]
    assert fail["weight"] > 0
    assert {"key": f'.metadata.annotations["{stages.FAIL_ANNOTATION}"]', "operator": "In",
            "values": ["true"]} in fail["selector"]["matchExpressions"]
    assert "phase: Failed" in fail["next"]["statusTemplate"]
    for name in ("kubellm-pod-ready", "kubellm-pod-complete"):
        exprs = by_name[name]["selector"]["matchExpressions"]
        assert {"key": f'.metadata.annotations["{stages.FAIL_ANNOTATION}"]',
                "operator": "NotIn", "values": ["true"]} in exprs
    assert stages.storage_class()["metadata"]["annotations"] == {
        "storageclass.kubernetes.io/is-default-class": "true"
    }


def test_cli_down_twice_exits_zero(tmp_path: Path) -> None:
    env = {**os.environ, "KUBELLM_SANDBOX_DIR": str(tmp_path / "state")}
    for _ in range(2):
        proc = subprocess.run(
            [sys.executable, "-m", "kubellm", "sandbox", "down"],
            env=env, capture_output=True, text=True, check=False,
        )
        assert proc.returncode == 0, proc.stderr
        assert "not running" in proc.stderr


def test_cli_up_with_malformed_nodes_file_names_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "pools.yaml"
    bad.write_text("pools: [{name: h100, count: many}]")
    env = {**os.environ, "KUBELLM_SANDBOX_DIR": str(tmp_path / "state"),
           "KUBEBUILDER_ASSETS": str(tmp_path / "none")}
    proc = subprocess.run(
        [sys.executable, "-m", "kubellm", "sandbox", "up", "--nodes", str(bad)],
        env=env, capture_output=True, text=True, check=False,
    )
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: pools.yaml: pools[0].count: must be an integer")


def test_port_taken_between_pick_and_bind_is_retried_once(
    tmp_path: Path, fake_bins: dict[str, Path]
) -> None:
    counter = tmp_path / "etcd-starts"
    fake_bins["etcd"].write_text(
        f"#!/bin/sh\necho x >> {counter}\n"
        "echo 'listen tcp 127.0.0.1:2379: bind: address already in use' >&2\nexit 1\n"
    )
    messages: list[str] = []
    with pytest.raises(SandboxError, match="address already in use"):
        Sandbox(tmp_path / "state").up(progress=messages.append)
    assert counter.read_text().count("x") == 2
    assert any("retrying" in m for m in messages)
