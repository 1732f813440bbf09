"""e2e: ``kubellm run --namespace NS`` reconciles that namespace only (same RBAC ServiceAccount)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from test_operator_helpers import (
    CRDS,
    OperatorProcess,
    apply_manifest,
    condition,
    example,
    get_json,
    items,
    policy,
    service_account_kubeconfig,
    wait_until,
)

from hubfixtures.server import serve_hub

pytestmark = pytest.mark.e2e


@pytest.fixture
def scoped(cluster: Any, tmp_path: Any) -> Iterator[tuple[str, str, OperatorProcess]]:
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS))
    names = []
    for _ in range(2):
        name = f"e2e-ns-{time.monotonic_ns() % 10**9}"
        cluster.kubectl("create", "namespace", name)
        wait_until(lambda n=name: cluster.kubectl("get", "sa/default", "-n", n,
                                                  check=False).returncode == 0, 60)
        names.append(name)
    watched, other = names
    apply_manifest(cluster, policy(f"pol-{watched}", [watched, other]))
    kubeconfig = service_account_kubeconfig(cluster, tmp_path / "sa-kubeconfig")
    with serve_hub() as hub:
        proc = OperatorProcess(kubeconfig, hub.endpoint, tmp_path / "operator.log",
                               "--namespace", watched, "--resync-seconds", "3",
                               "--image", "ghcr.io/kubellm/kubellm:e2e").start()
        try:
            yield watched, other, proc
        finally:
            proc.stop()
            print(proc.tail(30))
            cluster.kubectl("delete", "licensepolicy", f"pol-{watched}", "--ignore-not-found")
            for name in names:
                cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def test_only_the_watched_namespace_is_reconciled(cluster: Any,
                                                  scoped: tuple[str, str, OperatorProcess]) -> None:
    watched, other, _ = scoped
    apply_manifest(cluster, [example("qwen2.5-7b-l4.yaml", watched),
                             example("qwen2.5-7b-l4.yaml", other)])

    def ready() -> bool:
        cond = condition(get_json(cluster, "llmd", "qwen-7b", "-n", watched), "Ready")
        return bool(cond and cond[0] == "True")

    wait_until(ready, 90, what="the watched namespace's deployment Ready")
    time.sleep(4)  # a resync later, the other namespace is still untouched
    untouched = get_json(cluster, "llmd", "qwen-7b", "-n", other)
    assert not untouched.get("status"), untouched.get("status")
    assert items(cluster, "deployments", other) == [] and items(cluster, "jobs", other) == []
