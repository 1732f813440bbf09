"""e2e on real pods through a real Hugging Face mirror: olah, offline, over a local git repo.

The same tiny Llama as ``test_real_serving.py``, committed to a git repo that olah 0.5.4 serves
in offline mode on the bridge address; the operator's ``HF_ENDPOINT`` (and so the download
Job's) is olah's. Licence, sizing facts and the download all come from the mirror: nothing from
the fixture Hub server. (olah has no gating and answers 500 for unknown revisions, so the
fixture server keeps those cases.)
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from test_operator_helpers import (
    CRDS,
    OperatorProcess,
    apply_manifest,
    items,
    policy,
    service_account_kubeconfig,
)
from test_real_serving import serve_and_chat

from hubfixtures import olahmirror, realmodels
from kubellm.sandbox import engines, imagestore, nodeconfig
from kubellm.sandbox.harness import Cluster

pytestmark = [pytest.mark.e2e, pytest.mark.real]


@pytest.fixture(scope="module")
def olah(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(endpoint, commit sha) of olah serving the tiny Llama from a git repo."""
    work = tmp_path_factory.mktemp("olah")
    repo = realmodels.repos(realmodels.build(engines.vllm().python))[realmodels.LLAMA]
    sha = olahmirror.git_repo(work / "mirrors", repo)
    with olahmirror.serve_olah(work / "mirrors", work / "server", host=nodeconfig.NODE_IP) as ep:
        yield ep, sha


@pytest.fixture(scope="module")
def mirror_operator(cluster: Cluster, olah: tuple[str, str],
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    vllm_image = imagestore.vllm_ref()
    if vllm_image is None:
        pytest.fail("no CPU vLLM image in the real node's store", pytrace=False)
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS))
    tmp = tmp_path_factory.mktemp("mirror-operator")
    kubeconfig = service_account_kubeconfig(cluster, tmp / "sa-kubeconfig")
    proc = OperatorProcess(kubeconfig, olah[0], tmp / "operator.log", "-A",
                           "--resync-seconds", "3", "--cache-grace-period", "5",
                           "--runtime-image", f"vllm={vllm_image}").start()
    yield proc
    proc.stop()
    print(f"--- operator log tail ({tmp / 'operator.log'}) ---\n{proc.tail(30)}")


def test_a_model_from_an_olah_mirror_downloads_and_serves(
    cluster: Cluster, namespace: str, mirror_operator: OperatorProcess, olah: tuple[str, str]
) -> None:
    annotations = [f"{k}={v}" for k, v in nodeconfig.real_node_namespace_annotations().items()]
    cluster.kubectl("annotate", "namespace", namespace, "--overwrite", *annotations)
    apply_manifest(cluster, [policy(f"pol-{namespace}", [namespace])])
    try:
        serve_and_chat(cluster, namespace, "mirrored", realmodels.LLAMA)
        (job,) = items(cluster, "jobs", namespace)
        env = {e["name"]: e.get("value") for e in
               job["spec"]["template"]["spec"]["containers"][0]["env"]}
        assert env["HF_ENDPOINT"] == olah[0]
        (pod,) = items(cluster, "pods", namespace, "-l", "app.kubernetes.io/component=server")
        assert olah[1] in pod["spec"]["containers"][0]["args"]  # olah's commit is the revision
    finally:
        cluster.kubectl("delete", "llmd", "--all", "-n", namespace, "--wait=false", check=False)
        cluster.kubectl("delete", "licensepolicy", f"pol-{namespace}", "--ignore-not-found")
