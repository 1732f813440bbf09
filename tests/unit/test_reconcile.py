"""Unit tests of kubellm.reconcile against an in-memory cluster, with the real planner.

They walk one LLMDeployment through its life and count writes at every step: the ordering
(cache before serving), zero writes on a no-op resync, drift repair, denial, does-not-fit, a
shared cache, a failed download and a revision bump.
"""

from __future__ import annotations

from typing import Any

import pytest

from kubellm import naming
from kubellm.errors import HubUnavailableError, PermanentError
from kubellm.reconcile import Reconciler, Settings
from kubellm.sizing.catalog import GpuCatalog
from kubellm.sizing.types import GpuType
from support.cluster import FakeCluster, complete_job, ready
from support.cluster import condition as cond
from support.objects import HUGE, RESEARCH, facts_for, llmd, node, policy
from support.reconcile import make, run


def test_walkthrough_cache_first_then_serving_then_zero_writes() -> None:
    cluster, rec = make()
    cluster.put(llmd("chat"))
    out, writes = run(cluster, rec, "chat")
    assert out.error is None
    job = out.status["cache"]["jobName"]
    # cache objects first; nothing serving while the download runs
    assert writes[:2] == [f"apply PersistentVolumeClaim/{out.status['cache']['pvcName']}",
                          f"apply Job/{job}"]
    assert not any(w.startswith(("apply Deployment", "apply Service")) for w in writes)
    assert "patch/status LLMDeployment/chat" in writes
    assert cond(cluster, "chat", "CacheReady") == ("False", "Downloading")
    assert cond(cluster, "chat", "Ready") == ("False", "Downloading")

    complete_job(cluster, job)
    out, writes = run(cluster, rec, "chat")
    assert "apply Deployment/chat" in writes and "apply Service/chat" in writes
    dep = cluster.get("apps/v1", "Deployment", "chat", "team")
    assert dep is not None
    assert dep["metadata"]["ownerReferences"][0]["uid"] == "uid-chat"
    assert cond(cluster, "chat", "Available") == ("False", "NoReplicasReady")

    ready(cluster, "chat")
    out, writes = run(cluster, rec, "chat")
    status = cluster.body("chat")["status"]
    assert status["ready"] == "True" and status["reason"] == "Ready"
    assert status["endpoint"] == "http://chat.team.svc.cluster.local:80/v1"
    assert status["readyReplicas"] == 1 and status["observedGeneration"] == 1
    assert status["selector"] == naming.selector_string("chat")
    assert status["license"]["decision"] == "Allowed" and status["sizing"]["gpuType"]
    assert status["resolvedRevision"] == "a" * 40 and status["gpus"] == 1

    # converged: a resync writes nothing at all (no apply, no status, no event)
    for _ in range(3):
        out, writes = run(cluster, rec, "chat")
        assert writes == [] and out.applied == [] and not out.status_written


def converged(cluster: FakeCluster, rec: Reconciler, name: str = "chat") -> None:
    out, _ = run(cluster, rec, name)
    complete_job(cluster, out.status["cache"]["jobName"])
    run(cluster, rec, name)
    ready(cluster, name)
    run(cluster, rec, name)
    assert run(cluster, rec, name)[1] == []


def test_events_only_on_transitions() -> None:
    cluster, rec = make()
    cluster.put(llmd("chat"))
    converged(cluster, rec)
    reasons = [r for _, r, _ in cluster.events]
    assert reasons == ["Downloading", "NoReplicasReady", "Ready"]  # one per moving reconcile
    assert {t for t, _, _ in cluster.events} == {"Normal"}  # progressing is not a warning
    first = cluster.events[0][2]
    assert "LicenseApproved=True (Allowed)" in first and "CacheReady=False (Downloading)" in first


def test_drift_edit_and_delete_are_repaired() -> None:
    cluster, rec = make()
    cluster.put(llmd("chat"))
    converged(cluster, rec)
    cluster.objects[("Deployment", "team", "chat")]["spec"]["replicas"] = 5  # kubectl scale deploy
    _, writes = run(cluster, rec, "chat")
    assert writes == ["apply Deployment/chat"]
    assert cluster.objects[("Deployment", "team", "chat")]["spec"]["replicas"] == 1
    del cluster.objects[("Service", "team", "chat")]  # kubectl delete svc
    _, writes = run(cluster, rec, "chat")
    assert writes == ["apply Service/chat"]
    assert run(cluster, rec, "chat")[1] == []


def test_spec_change_rolls_out() -> None:
    cluster, rec = make()
    cluster.put(llmd("chat"))
    converged(cluster, rec)
    body = cluster.objects[("LLMDeployment", "team", "chat")]
    body["spec"]["replicas"] = 3
    body["metadata"]["generation"] = 2
    out, writes = run(cluster, rec, "chat")
    assert "apply Deployment/chat" in writes
    assert cluster.objects[("Deployment", "team", "chat")]["spec"]["replicas"] == 3
    assert out.status["observedGeneration"] == 2
    assert all(c["observedGeneration"] == 2 for c in out.status["conditions"])


def test_denied_scales_existing_to_zero_and_creates_nothing_new() -> None:
    cluster, rec = make()
    cluster.put(llmd("chat"))
    converged(cluster, rec)
    cluster.put(policy(deniedLicenses=["apache-2.0"]))  # the policy changed
    rec.invalidate_policies()
    _, writes = run(cluster, rec, "chat")
    assert "patch Deployment/chat" in writes
    assert not any(w.startswith("apply") for w in writes)
    assert cluster.objects[("Deployment", "team", "chat")]["spec"]["replicas"] == 0
    assert cond(cluster, "chat", "LicenseApproved") == ("False", "LicenseDenied")
    assert cond(cluster, "chat", "Ready") == ("False", "LicenseDenied")
    assert ("Warning", "LicenseDenied") in [(t, r) for t, r, _ in cluster.events]
    # still denied: nothing more to do
    cluster.set_status("Deployment", "chat", {"replicas": 0})
    run(cluster, rec, "chat")
    assert run(cluster, rec, "chat")[1] == []
    # allowed again: scaled back up by the normal apply (drift on replicas)
    del cluster.objects[("LicensePolicy", None, "corp")]
    rec.invalidate_policies()
    _, writes = run(cluster, rec, "chat")
    assert "apply Deployment/chat" in writes
    assert cluster.objects[("Deployment", "team", "chat")]["spec"]["replicas"] == 1


def test_denied_from_the_start_creates_no_objects() -> None:
    cluster, rec = make()
    cluster.put(llmd("big", repo=RESEARCH))
    out, writes = run(cluster, rec, "big")
    assert writes[0] == "patch/status LLMDeployment/big"
    assert not any(w.startswith("apply") for w in writes)
    assert out.status["license"]["allowed"] is False


def test_does_not_fit_creates_nothing_and_explains_with_numbers() -> None:
    cluster, rec = make()  # 16 x L4 in all, 24 GiB each: 405B in bf16 needs ~810 GB
    cluster.put(llmd("big", repo=HUGE, quantization="none"))
    out, writes = run(cluster, rec, "big")
    assert not any(w.startswith("apply") for w in writes)
    assert cond(cluster, "big", "Sized") == ("False", "DoesNotFit")
    sized = next(c for c in out.status["conditions"] if c["type"] == "Sized")
    assert "GiB" in sized["message"] and "NVIDIA-L4" in sized["message"], sized["message"]
    assert out.status["ready"] == "False" and out.status["reason"] == "DoesNotFit"


def test_two_deployments_share_one_cache_and_one_job() -> None:
    cluster, rec = make()
    cluster.put(llmd("a"))
    cluster.put(llmd("b"))
    out_a, writes_a = run(cluster, rec, "a")
    out_b, writes_b = run(cluster, rec, "b")
    assert out_a.status["cache"] == out_b.status["cache"]
    assert sum(w.startswith("apply Job") for w in writes_a + writes_b) == 1
    assert sum(w.startswith("apply PersistentVolumeClaim") for w in writes_a + writes_b) == 1
    assert len([k for k in cluster.objects if k[0] == "Job"]) == 1
    assert cluster.objects[("Job", "team", out_a.status["cache"]["jobName"])]["metadata"].get(
        "ownerReferences") is None


def test_failed_download_sets_cache_ready_false_with_the_job_reason() -> None:
    cluster, rec = make()
    cluster.put(llmd("chat"))
    out, _ = run(cluster, rec, "chat")
    cluster.set_status("Job", out.status["cache"]["jobName"], {"failed": 3, "conditions": [
        {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
         "message": "Job has reached the specified backoff limit"}]})
    out, writes = run(cluster, rec, "chat")
    assert cond(cluster, "chat", "CacheReady") == ("False", "BackoffLimitExceeded")
    assert "backoff limit" in next(c["message"] for c in out.status["conditions"]
                                   if c["type"] == "CacheReady")
    assert not any(w.startswith("apply Deployment") for w in writes)
    assert cluster.body("chat")["status"]["reason"] == "BackoffLimitExceeded"


def test_revision_bump_keeps_old_pods_until_new_cache_is_complete() -> None:
    cluster, rec = make()
    cluster.put(llmd("chat"))
    converged(cluster, rec)
    old_args = cluster.objects[("Deployment", "team", "chat")]["spec"]["template"]["spec"][
        "containers"][0]["args"]
    body = cluster.objects[("LLMDeployment", "team", "chat")]
    body["spec"]["model"]["revision"] = "v2"
    body["metadata"]["generation"] = 2
    out, writes = run(cluster, rec, "chat")
    new_job = out.status["cache"]["jobName"]
    assert f"apply Job/{new_job}" in writes
    assert not any(w.startswith("apply Deployment") for w in writes)
    assert cluster.objects[("Deployment", "team", "chat")]["spec"]["template"]["spec"][
        "containers"][0]["args"] == old_args
    assert cond(cluster, "chat", "Available") == ("True", "MinimumReplicasAvailable")
    complete_job(cluster, new_job)
    _, writes = run(cluster, rec, "chat")
    assert "apply Deployment/chat" in writes
    assert "b" * 40 in cluster.objects[("Deployment", "team", "chat")]["spec"]["template"][
        "spec"]["containers"][0]["args"]


def test_model_not_found_is_permanent_and_explained() -> None:
    cluster, rec = make()
    cluster.put(llmd("x", repo="missing/model"))
    out, writes = run(cluster, rec, "x")
    assert isinstance(out.error, PermanentError)
    assert out.status["ready"] == "False" and out.status["reason"] == "ModelNotFound"
    assert writes[0] == "patch/status LLMDeployment/x"
    assert run(cluster, rec, "x")[1] == []


def test_invalid_spec_is_permanent_and_names_the_field() -> None:
    cluster, rec = make()
    cluster.put(llmd("x", replicas=-1))
    out, _ = run(cluster, rec, "x")
    assert isinstance(out.error, PermanentError)
    assert out.status["reason"] == "InvalidSpec"
    assert "spec.replicas" in next(c["message"] for c in out.status["conditions"]
                                   if c["type"] == "Ready")


def test_hub_down_reuses_stale_facts_and_never_denies() -> None:
    calls = {"n": 0}

    def flaky(repo: str, revision: str = "main", **kw: Any) -> Any:
        calls["n"] += 1
        if calls["n"] > 1:
            raise HubUnavailableError("hub down")
        return facts_for(repo, revision)

    clock = {"t": 0.0}
    cluster, rec = make(facts=flaky, clock=lambda: clock["t"])
    cluster.put(llmd("chat"))
    assert rec.reconcile(cluster.body("chat")).error is None
    clock["t"] = 10_000.0  # facts expired; the Hub is down now
    out = rec.reconcile(cluster.body("chat"))
    assert out.error is None and calls["n"] == 2
    # a never-seen model while the Hub is down: temporary, Unknown, no objects
    cluster.put(llmd("other", repo="Qwen/Other"))
    out = rec.reconcile(cluster.body("other"))
    assert isinstance(out.error, HubUnavailableError)
    assert out.status["ready"] == "Unknown"
    assert not any(k[0] == "Deployment" and k[2] == "other" for k in cluster.objects)


@pytest.mark.parametrize("replicas", [0])
def test_scaled_to_zero_by_the_user(replicas: int) -> None:
    cluster, rec = make()
    cluster.put(llmd("chat", replicas=replicas))
    out, _ = run(cluster, rec, "chat")
    complete_job(cluster, out.status["cache"]["jobName"])
    out, _ = run(cluster, rec, "chat")
    assert cond(cluster, "chat", "Available") == ("False", "ScaledToZero")


def test_a_refused_object_is_explained_and_keeps_the_rest_of_status() -> None:
    cluster, rec = make()
    cluster.put(llmd("chat"))
    converged(cluster, rec)
    before = cluster.body("chat")["status"]

    def refuse(manifest: dict[str, Any], live: Any = False) -> Any:
        raise PermanentError("Deployment.apps is invalid: spec.template...", reason="InvalidObject")

    cluster.objects[("Deployment", "team", "chat")]["spec"]["replicas"] = 4  # drift to repair
    cluster.apply = refuse  # type: ignore[method-assign]
    out, _ = run(cluster, rec, "chat")
    assert isinstance(out.error, PermanentError)
    status = cluster.body("chat")["status"]
    assert status["ready"] == "False" and status["reason"] == "InvalidObject"
    assert status["license"] == before["license"] and status["endpoint"] == before["endpoint"]
    assert cond(cluster, "chat", "Available") == ("True", "MinimumReplicasAvailable")


def test_a_bug_is_reported_in_status_not_swallowed() -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise AttributeError("module 'kubellm.cache' has no attribute 'default_image'")

    cluster, rec = make()
    cluster.apply = broken  # type: ignore[method-assign]
    cluster.put(llmd("chat"))
    out = rec.reconcile(cluster.body("chat"))
    assert out.error is not None and out.error.reason == "InternalError"
    status = cluster.body("chat")["status"]
    assert status["ready"] == "Unknown" and status["reason"] == "InternalError"
    assert "default_image" in next(c["message"] for c in status["conditions"]
                                   if c["type"] == "Ready")


def test_runtime_images_of_the_config_reach_the_deployment() -> None:
    images = (("tgi", "mirror.example/tgi:3"), ("vllm", "mirror.example/vllm:1"))
    cluster, rec = make(settings=Settings(runtime_images=images, inventory_ttl=0.0))
    cluster.put(llmd("chat", runtime="vllm"))
    converged(cluster, rec)
    containers = cluster.objects[("Deployment", "team", "chat")]["spec"]["template"]["spec"][
        "containers"]
    assert [c["image"] for c in containers] == ["mirror.example/vllm:1"]


def test_the_gpu_catalogue_of_the_config_sizes_the_nodes() -> None:
    """A node whose GPU only ``--gpu-catalog`` knows is sized on with it, and not without."""
    blackwell = GpuType("NVIDIA-RTX-PRO-6000-Blackwell", 95.59, (12, 0), aliases=("rtx-pro-6000",))
    for catalog, sized in ((None, ("False", "DoesNotFit")), (GpuCatalog.with_extra((blackwell,)),
                                                             ("True", "Fits"))):
        cluster = FakeCluster()
        cluster.put(node("rtx-0", blackwell.product, gpus=2))
        _, rec = make(cluster, settings=Settings(gpu_catalog=catalog, inventory_ttl=0.0))
        cluster.put(llmd("chat"))
        rec.reconcile(cluster.body("chat"))
        assert cond(cluster, "chat", "Sized") == sized
