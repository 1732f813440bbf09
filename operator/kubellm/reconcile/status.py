"""The status of an LLMDeployment from a plan and the live children (pure; no I/O).

``wants`` turns a Plan and the cache state into the stage conditions, ``available`` the serving
workload (a Deployment, or a LeaderWorkerSet: both report ``spec.replicas`` and
``status.readyReplicas``, an LWS counting ready groups) into ``Available``, ``status_fields``
everything else status reports (licence, sizing, cache, endpoint, replicas, selector, gpus).
``kubellm.reconcile.core`` merges them with ``kubellm.conditions`` and writes the result only
when it changed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from kubellm import conditions as cond
from kubellm import naming
from kubellm.api.v1alpha1 import CardClaim
from kubellm.facts import ModelFacts
from kubellm.reasons import Reason
from kubellm.runtimes import lws

CacheState = tuple[cond.Status, str, str]


def job_state(job: dict[str, Any] | None) -> CacheState:
    """(status, reason, message) of a download Job for the CacheReady condition."""
    if job is None:
        return "False", Reason.DOWNLOADING, "download Job not created yet"
    st = job.get("status") or {}
    for c in st.get("conditions") or []:
        if c.get("status") != "True":
            continue
        if c.get("type") in ("Complete", "SuccessCriteriaMet"):
            return "True", Reason.DOWNLOADED, f"Job {job['metadata']['name']} completed"
        if c.get("type") in ("Failed", "FailureTarget"):
            reason = cond.camel_reason(c.get("reason"), Reason.DOWNLOAD_FAILED)
            text = c.get("message") or "the download Job failed"
            return "False", reason, f"Job {job['metadata']['name']} failed: {text}"
    if (st.get("succeeded") or 0) >= 1:
        return "True", Reason.DOWNLOADED, f"Job {job['metadata']['name']} completed"
    # Not the count of active pods: it moves 0 -> 1 for every download (a status write and a
    # reconcile each) and counts a Pending pod as active anyway; failed attempts do matter.
    failed = st.get("failed") or 0
    note = f" ({failed} failed attempt(s), retrying)" if failed else ""
    return ("False", Reason.DOWNLOADING, f"Job {job['metadata']['name']}: downloading{note}")


def selector_string(deployment: dict[str, Any]) -> str | None:
    """The label selector of the serving pods the replicas count: a Deployment's
    ``spec.selector``; for a LeaderWorkerSet (one replica = one group) its leader pods, i.e. the
    kubellm selector labels of the leader template plus the LWS worker index 0."""
    spec = deployment.get("spec") or {}
    if deployment.get("kind") == lws.KIND:
        template = (spec.get("leaderWorkerTemplate") or {}).get("leaderTemplate") or {}
        pod_labels = (template.get("metadata") or {}).get("labels") or {}
        instance = pod_labels.get(naming.LABEL_INSTANCE)
        if not instance:
            return None
        keys = naming.selector_labels(str(instance)).keys()
        labels = {k: v for k, v in pod_labels.items() if k in keys}
        labels[lws.LABEL_WORKER_INDEX] = "0"
    else:
        labels = (spec.get("selector") or {}).get("matchLabels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or None


def labels_match(labels: dict[str, str], selector: str | None) -> bool:
    if not selector:
        return False
    for term in selector.split(","):
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


def to_wire(obj: Any) -> Any:
    """A pydantic model (or an object with ``to_status``/``dump``) in its camelCase wire form."""
    if obj is None:
        return None
    if hasattr(obj, "to_status"):
        obj = obj.to_status()
    if hasattr(obj, "dump"):
        return obj.dump()
    if hasattr(obj, "model_dump"):
        return obj.model_dump(by_alias=True, exclude_none=True, mode="json")
    return obj


def claims_wire(facts: ModelFacts) -> list[dict[str, Any]]:
    """The card's model-index claims as ``status.claims`` (and ``kubellm plan``) show them."""
    return [CardClaim(**dataclasses.asdict(c)).model_dump(by_alias=True, exclude_none=True,
                                                          mode="json") for c in facts.claims]


def refused_wants(reason: str, message: str) -> list[cond.Want]:
    return [
        cond.Want(cond.LICENSE_APPROVED, "Unknown", reason, message),
        cond.Want(cond.SIZED, "False", reason, message),
        cond.Want(cond.CACHE_READY, "Unknown", Reason.NOT_PLANNED, "nothing to download"),
    ]


def wants(plan: Any, cache_state: CacheState) -> list[cond.Want]:
    decision = plan.license
    wants: list[cond.Want] = []
    if decision is None:
        wants.append(cond.Want(cond.LICENSE_APPROVED, "Unknown", Reason.NOT_EVALUATED, ""))
    else:
        reasons = [getattr(r, "message", str(r)) for r in getattr(decision, "reasons", [])]
        # the Decision itself (Allowed | AllowedWithWarnings) is the reason: both are Reasons
        kind = getattr(decision, "decision", Reason.ALLOWED)
        if getattr(decision, "allowed", False):
            wants.append(cond.Want(cond.LICENSE_APPROVED, "True", kind, "; ".join(reasons)))
        else:
            wants.append(cond.Want(cond.LICENSE_APPROVED, "False", Reason.LICENSE_DENIED,
                                   "; ".join(reasons) or (plan.refusal or "denied")))
    sizing = plan.sizing
    if plan.refusal_reason in (None, Reason.LICENSE_DENIED) and sizing is not None:
        if sizing.fits:
            wants.append(cond.Want(cond.SIZED, "True", Reason.FITS, sizing.message))
        else:
            wants.append(cond.Want(cond.SIZED, "False", sizing.reason or Reason.DOES_NOT_FIT,
                                   sizing.message))
    elif plan.refusal_reason is not None:
        wants.append(cond.Want(cond.SIZED, "False", plan.refusal_reason, plan.refusal or ""))
    wants.append(cond.Want(cond.CACHE_READY, *cache_state))
    return wants

def status_fields(plan: Any, facts: ModelFacts, pvc: dict[str, Any] | None,
                   job: dict[str, Any] | None, deployment: dict[str, Any] | None,
                   service: dict[str, Any] | None) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "license": to_wire(plan.license),
        "sizing": to_wire(plan.sizing),
        "runtime": plan.runtime,
        "resolvedRevision": facts.sha,
        "claims": claims_wire(facts) or None,
        "gpus": plan.sizing.gpus_per_replica if plan.sizing and plan.sizing.fits else None,
    }
    if pvc is not None or job is not None or plan.cache_key:
        size = (((pvc or {}).get("spec") or {}).get("resources") or {}).get("requests", {})
        fields["cache"] = {k: v for k, v in {
            "key": plan.cache_key,
            "pvcName": (pvc or {}).get("metadata", {}).get("name"),
            "jobName": (job or {}).get("metadata", {}).get("name"),
            "size": size.get("storage"),
        }.items() if v is not None}
    if deployment is not None:
        dstatus = deployment.get("status") or {}
        fields["replicas"] = dstatus.get("replicas") or 0
        fields["readyReplicas"] = dstatus.get("readyReplicas") or 0
        fields["selector"] = selector_string(deployment)
    if service is not None:
        ports = (service.get("spec") or {}).get("ports") or []
        if ports:
            smeta = service["metadata"]
            fields["endpoint"] = (
                f"http://{smeta['name']}.{smeta['namespace']}.svc.cluster.local:"
                f"{ports[0]['port']}/v1"
            )
    return fields

def available(deployment: dict[str, Any] | None,
               wants: Sequence[cond.Want]) -> cond.Want:
    if deployment is None:
        blocker = next((w for w in wants if w.status != "True"), None)
        why = f"waiting for {blocker.type}" if blocker else "no serving Deployment yet"
        return cond.Want(cond.AVAILABLE, "False", Reason.NO_DEPLOYMENT, why)
    spec_replicas = (deployment.get("spec") or {}).get("replicas")
    ready = (deployment.get("status") or {}).get("readyReplicas") or 0
    if ready >= 1:
        return cond.Want(cond.AVAILABLE, "True", Reason.MINIMUM_REPLICAS_AVAILABLE,
                         f"{ready}/{spec_replicas} replicas ready")
    if spec_replicas == 0:
        return cond.Want(cond.AVAILABLE, "False", Reason.SCALED_TO_ZERO, "0 replicas requested")
    return cond.Want(cond.AVAILABLE, "False", Reason.NO_REPLICAS_READY,
                     f"0/{spec_replicas} replicas ready")
