"""A running cluster for Python code and tests: :func:`sandbox_cluster` and :class:`Cluster`.

``with sandbox_cluster() as cluster:`` installs the binaries if needed (a no-op when cached),
starts a private sandbox in a temporary state directory, yields a :class:`Cluster` (kubeconfig
path, a ``kubernetes.client.ApiClient``, ``kubectl(...)``, ``bin_dir``) and stops it afterwards.

Environment:

``USE_EXISTING_CLUSTER=true``
    (envtest convention) use the current kubeconfig (``$KUBECONFIG`` or ``~/.kube/config``) and
    start nothing; ``kubectl`` is the sandbox's if installed, else the one on PATH.
``KUBELLM_SANDBOX_REUSE=true``
    use the sandbox of ``kubellm sandbox up`` (default state directory), starting it if needed,
    and leave it running afterwards: fast edit-test loops.
``KUBELLM_SANDBOX_NODES=FILE``
    node-pool file for a sandbox started here.
``KUBELLM_SANDBOX_REAL_NODE=true``
    start the sandbox with its real worker node (``real_node=True`` does the same; the pytest
    plugin asks for it when a selected test is marked ``real``). Builds the node binaries and
    images first when missing.

Fault tests stop and start control-plane components of a sandbox (``Cluster.sandbox``; None for
an existing cluster) with :func:`stop_component`, :func:`start_component` and
:func:`restart_component`: the same argv, ports, data directory and log, the new pid recorded
in the state file (so ``down`` stops the new process).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from kubellm.sandbox import install, process, versions
from kubellm.sandbox.cluster import COMPONENTS, STATE_FILE, Sandbox, default_state_dir
from kubellm.sandbox.errors import SandboxError
from kubellm.sandbox.process import ProcessRecord

if TYPE_CHECKING:
    from kubernetes.client import ApiClient

_TRUE = ("1", "true", "yes", "on")
_TMP_PREFIX = "kubellm-sandbox-"
_OWNER = "owner.json"


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in _TRUE


def use_existing_cluster() -> bool:
    return _flag("USE_EXISTING_CLUSTER")


@dataclass
class Cluster:
    """A reachable cluster. ``kubeconfig`` is a path (str); ``bin_dir`` holds kubectl/helm/..."""

    kubeconfig: str
    api_client: ApiClient
    bin_dir: Path
    kubectl_path: str
    sandbox: Sandbox | None = None  # the sandbox started for it (None: an existing cluster)

    def kubectl(
        self, *args: str, check: bool = True, input: str | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl against this cluster; raises SandboxError with stderr when ``check``."""
        cmd = [self.kubectl_path, f"--kubeconfig={self.kubeconfig}", *args]
        proc = subprocess.run(
            cmd, input=input, capture_output=True, text=True, check=False, timeout=timeout
        )
        if check and proc.returncode != 0:
            raise SandboxError(
                f"kubectl {' '.join(args)} failed (exit {proc.returncode}): {proc.stderr.strip()}"
            )
        return proc

    def close(self) -> None:
        self.api_client.close()  # type: ignore[no-untyped-call]


def _api_client(kubeconfig: str) -> ApiClient:
    from kubernetes import config

    client: ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=kubeconfig
    )
    return client


def existing_cluster() -> Cluster:
    """The cluster of the current kubeconfig (USE_EXISTING_CLUSTER=true)."""
    env = os.environ.get("KUBECONFIG", "")
    kubeconfig = env.split(os.pathsep)[0] if env else str(Path.home() / ".kube" / "config")
    if not Path(kubeconfig).exists():
        raise SandboxError(
            f"USE_EXISTING_CLUSTER=true but kubeconfig {kubeconfig} does not exist: "
            "set KUBECONFIG or unset USE_EXISTING_CLUSTER to start a local sandbox"
        )
    found, _ = install.locate()
    kubectl = str(found["kubectl"]) if "kubectl" in found else shutil.which("kubectl")
    if kubectl is None:
        raise SandboxError("kubectl not found: run `kubellm sandbox install` or put it on PATH")
    return Cluster(kubeconfig, _api_client(kubeconfig), versions.bin_dir(), kubectl)


def _owner_record() -> dict[str, object]:
    return {"pid": os.getpid(), "start_time": process.start_time(os.getpid())}


def reap_orphans(progress: Callable[[str], None] = print) -> int:
    """Stop private sandboxes whose owning test process died without tearing them down.

    (``timeout pytest ...`` or a killed CI job skip fixture teardown.) Only directories made by
    :func:`sandbox_cluster` carry an ``owner.json``; a live owner's sandbox is left alone.
    """
    reaped = 0
    for directory in Path(tempfile.gettempdir()).glob(f"{_TMP_PREFIX}*"):
        try:
            owner = json.loads((directory / _OWNER).read_text())
            record = process.ProcessRecord(
                "owner", int(owner["pid"]), owner.get("start_time"), "", ()
            )
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if process.is_running(record):
            continue
        progress(f"stopping the orphaned sandbox in {directory} (its test run is gone)")
        Sandbox(directory / "state").down(lambda _: None)
        shutil.rmtree(directory, ignore_errors=True)
        reaped += 1
    return reaped


@contextmanager
def sandbox_cluster(
    state_dir: Path | None = None,
    nodes_file: Path | None = None,
    *,
    reuse: bool | None = None,
    progress: Callable[[str], None] = print,
    real_node: bool | None = None,
) -> Iterator[Cluster]:
    """Yield a running cluster; stop what was started here on exit."""
    if use_existing_cluster():
        cluster = existing_cluster()
        try:
            yield cluster
        finally:
            cluster.close()
        return
    reuse = _flag("KUBELLM_SANDBOX_REUSE") if reuse is None else reuse
    env_nodes = os.environ.get("KUBELLM_SANDBOX_NODES")
    nodes_file = nodes_file or (Path(env_nodes) if env_nodes else None)
    bins = install.install(progress)
    real_node = _flag("KUBELLM_SANDBOX_REAL_NODE") if real_node is None else real_node
    if real_node:
        from kubellm.sandbox import images, nodeinstall

        nodeinstall.install(progress)
        images.build_all(progress)
    tmp: str | None = None
    if state_dir is None:
        if reuse:
            state_dir = default_state_dir()
        else:
            reap_orphans(progress)
            tmp = tempfile.mkdtemp(prefix=_TMP_PREFIX)
            state_dir = Path(tmp) / "state"
            (Path(tmp) / _OWNER).write_text(json.dumps(_owner_record()))
    sandbox = Sandbox(state_dir)
    was_up = sandbox.is_up()
    state = sandbox.up(nodes_file, progress=progress, real_node=real_node)
    cluster = Cluster(
        state.kubeconfig,
        _api_client(state.kubeconfig),
        bins.bin_dir,
        str(bins["kubectl"]),
        sandbox,
    )
    try:
        yield cluster
    finally:
        cluster.close()
        if not (reuse or was_up):
            sandbox.down(progress)
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


# ---- restarts for fault tests ------------------------------------------------------------------


def _record(sandbox: Sandbox, name: str) -> tuple[list[ProcessRecord], int]:
    if name not in COMPONENTS:
        raise SandboxError(f"{name}: not a control-plane component ({', '.join(COMPONENTS)})")
    state = sandbox.read_state()
    if state is None:
        raise SandboxError(f"no sandbox in {sandbox.state_dir}")
    for i, record in enumerate(state.processes):
        if record.name == name:
            return state.processes, i
    raise SandboxError(f"{name} is not recorded in {sandbox.state_dir / STATE_FILE}")


def stop_component(sandbox: Sandbox, name: str) -> None:
    """Stop one control-plane component (SIGTERM, then SIGKILL), leaving its record."""
    records, i = _record(sandbox, name)
    process.stop(records[i])


def start_component(sandbox: Sandbox, name: str, timeout: float = 90.0) -> ProcessRecord:
    """Start a stopped component again with its recorded argv and log; for etcd and the
    apiserver wait until the apiserver answers ``/readyz`` again (its etcd check included)."""
    records, i = _record(sandbox, name)
    old = records[i]
    if process.is_running(old):
        raise SandboxError(f"{name} (pid {old.pid}) is still running")
    new = process.spawn(name, list(old.argv), Path(old.log), sandbox.state_dir)
    state = sandbox.read_state()
    assert state is not None
    state.processes = [new if r.name == name else r for r in state.processes]
    sandbox._write_state(state)
    deadline = time.monotonic() + timeout
    kubectl = Path(state.bin_dir) / "kubectl"
    while True:
        if not process.is_running(new):
            raise SandboxError(
                f"{name} exited after its restart; last lines of {new.log}:\n"
                f"{process.log_tail(new.log)}"
            )
        if name not in ("etcd", "kube-apiserver"):
            return new
        argv = [str(kubectl), f"--kubeconfig={state.kubeconfig}", "get", "--raw", "/readyz"]
        try:
            ready = subprocess.run(argv, capture_output=True, check=False, timeout=30)
        except subprocess.TimeoutExpired:
            ready = None
        if ready is not None and ready.returncode == 0:
            return new
        if time.monotonic() > deadline:
            raise SandboxError(f"the apiserver is not ready {timeout:.0f}s after {name} restarted")
        time.sleep(0.25)


def restart_component(sandbox: Sandbox, name: str, down_seconds: float = 0.0) -> float:
    """Stop ``name``, wait ``down_seconds``, start it again; seconds until it is back."""
    began = time.monotonic()
    stop_component(sandbox, name)
    time.sleep(down_seconds)
    start_component(sandbox, name)
    return time.monotonic() - began
