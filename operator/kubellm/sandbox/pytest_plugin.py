"""pytest plugin: the session-scoped ``cluster`` fixture (a running sandbox, or your cluster).

Load it with ``pytest_plugins = ["kubellm.sandbox.pytest_plugin"]`` (tests/e2e/conftest.py does).
The first test that asks for ``cluster`` starts one sandbox for the whole run (building the
binaries first if they are missing, which prints progress); it is stopped when the session ends.
``USE_EXISTING_CLUSTER=true`` runs the same tests against the current kubeconfig instead, and
``KUBELLM_SANDBOX_REUSE=true`` reuses (and keeps) the ``kubellm sandbox up`` one; see
:mod:`kubellm.sandbox.harness`. If the sandbox cannot be built or started the tests FAIL with
the reason; they are never skipped silently. SIGTERM is turned into KeyboardInterrupt so the
sandbox is stopped even under ``timeout pytest``; a run killed harder leaves an orphan that the
next run stops (:func:`kubellm.sandbox.harness.reap_orphans`).

Also provided: ``namespace``, a fresh namespace per test, deleted afterwards, and
``real_node``, the name of the sandbox's real worker node. When any selected test is marked
``real`` (``@pytest.mark.real``), the session sandbox is started with its real node
(``kubellm sandbox up --real-node``; root, builds what is missing); ``-m "not real"`` leaves it
out.
"""

from __future__ import annotations

import contextlib
import signal
import time
import uuid
from collections.abc import Iterator
from types import FrameType

import pytest

from kubellm.errors import KubellmError
from kubellm.sandbox.harness import Cluster, sandbox_cluster
from kubellm.sandbox.nodeconfig import REAL_NODE_LABEL


def _interrupt_on_sigterm() -> None:
    """Turn SIGTERM (``timeout pytest``, CI cancel) into KeyboardInterrupt so teardown runs."""

    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        with contextlib.suppress(ValueError):  # not in the main thread
            signal.signal(signal.SIGTERM, handler)


def _report(message: str) -> None:
    print(f"[kubellm sandbox] {message}", flush=True)


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """A running cluster shared by the session: ``.kubeconfig``, ``.api_client``, ``.kubectl()``."""
    _interrupt_on_sigterm()
    capture = request.config.pluginmanager.getplugin("capturemanager")
    stack = contextlib.ExitStack()
    try:
        # Show build/start progress even under output capture: it can take minutes.
        with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            found = stack.enter_context(
                sandbox_cluster(progress=_report, real_node=_wants_real_node(request))
            )
    except KubellmError as exc:
        stack.close()
        pytest.fail(f"no cluster for e2e tests: {exc}", pytrace=False)
    with stack:
        yield found


def _wants_real_node(request: pytest.FixtureRequest) -> bool | None:
    """True when a selected test is marked ``real``; None defers to the environment."""
    if any(item.get_closest_marker("real") for item in request.session.items):
        return True
    return None


@pytest.fixture(scope="session")
def real_node(cluster: Cluster) -> str:
    """Name of the cluster's real worker node (label ``kubellm.io/real-node=true``)."""
    out = cluster.kubectl(
        "get", "nodes", "-l", f"{REAL_NODE_LABEL}=true", "-o", "name", check=False
    ).stdout.split()
    if not out:
        pytest.fail(
            "the cluster has no real worker node (label kubellm.io/real-node=true): start the "
            "sandbox with --real-node (KUBELLM_SANDBOX_REAL_NODE=true)",
            pytrace=False,
        )
    return out[0].removeprefix("node/")


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    """A new namespace for one test (waits for its default ServiceAccount); deleted after."""
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    deadline = time.monotonic() + 60
    while cluster.kubectl("get", "serviceaccount/default", "-n", name, check=False).returncode:
        if time.monotonic() > deadline:
            pytest.fail(f"namespace {name}: no default ServiceAccount after 60 s", pytrace=False)
        time.sleep(0.2)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
