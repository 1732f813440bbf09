"""The harness: orphaned private sandboxes (their pytest was killed) are stopped by the next
run, live ones are left alone; USE_EXISTING_CLUSTER without a kubeconfig says what to set."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from kubellm.sandbox import harness, process
from kubellm.sandbox.cluster import MARKER, STATE_FILE, SandboxState
from kubellm.sandbox.errors import SandboxError


def _private_sandbox(root: Path, owner: dict[str, object]) -> process.ProcessRecord:
    directory = root / "kubellm-sandbox-test"
    state_dir = directory / "state"
    state_dir.mkdir(parents=True)
    (state_dir / MARKER).write_text("")
    (directory / "owner.json").write_text(json.dumps(owner))
    record = process.spawn("etcd", ["sleep", "60"], state_dir / "etcd.log", state_dir)
    state = SandboxState("https://x", "kc", "bin", {}, [], [record])
    (state_dir / STATE_FILE).write_text(json.dumps(state.to_json()))
    return record


def test_orphan_is_stopped_and_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen(["true"])
    dead.wait()
    record = _private_sandbox(tmp_path, {"pid": dead.pid, "start_time": "1"})
    assert process.is_running(record)
    assert harness.reap_orphans(lambda _: None) == 1
    assert not process.is_running(record)
    assert not (tmp_path / "kubellm-sandbox-test").exists()


def test_live_owner_is_left_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    me = {"pid": os.getpid(), "start_time": process.start_time(os.getpid())}
    record = _private_sandbox(tmp_path, me)
    try:
        assert harness.reap_orphans(lambda _: None) == 0
        assert process.is_running(record)
    finally:
        process.stop(record, timeout=2)


def test_existing_cluster_without_kubeconfig_says_what_to_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USE_EXISTING_CLUSTER", "true")
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    assert harness.use_existing_cluster()
    with pytest.raises(SandboxError, match="set KUBECONFIG"), harness.sandbox_cluster():
        pass
