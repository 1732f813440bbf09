"""The evaluation Job of one LLMDeployment (pure rendering).

One Job per (deployment generation, model revision, evaluation spec hash): ``evaluation_key``
hashes the three, the Job's name ends in it, so a change of any of them is a new Job (the old
one is garbage-collected with its owner or replaced by the reconciler). The Job runs
``kubellm eval`` in the operator's own image (no second image to build, pin and scan) against
the deployment's Service, and reports through the container's termination message
(``terminationMessagePolicy: File``, read by ``report.decode``): the pod needs no ServiceAccount
token, no RBAC and writes nothing to the API. ``checksFrom`` is mounted as a ConfigMap volume
(``optional: true``, so a missing ConfigMap is reported as ``EvaluationFailed`` naming it rather
than a pod stuck in ContainerCreating). ``kubellm eval``'s exit codes 1 (below the threshold) and
2 (bad input, endpoint unreachable) fail the Job at once through ``podFailurePolicy`` (the
report is in the message either way; the client retries connection errors itself); a crash
(OOM-kill) is retried once.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from kubellm.api.v1alpha1 import EvaluationSpec
from kubellm.cache import job_pod_spec
from kubellm.naming import GROUP, MAX_NAME, labels, safe_slug

COMPONENT_EVALUATION = "evaluation"
ANNOTATION_EVALUATION_KEY = f"{GROUP}/evaluation-key"
ANNOTATION_GENERATION = f"{GROUP}/generation"
ANNOTATION_REVISION = f"{GROUP}/revision"
ANNOTATION_SPEC_HASH = f"{GROUP}/evaluation-spec-hash"
CHECKS_DIR = "/etc/kubellm/checks"
TERMINATION_LOG = "/dev/termination-log"
EVAL_UID = 10001  # the kubellm image's user (operator/Dockerfile)
KEY_LEN = 10


def spec_hash(spec: EvaluationSpec) -> str:
    """A stable hash of ``spec.evaluation`` (canonical JSON of its wire form)."""
    canonical = json.dumps(spec.dump(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def evaluation_key(generation: int, revision: str, spec_digest: str) -> str:
    """What an evaluation is of: a change of any part re-runs it."""
    text = f"{generation}\n{revision}\n{spec_digest}"
    return hashlib.sha256(text.encode()).hexdigest()[:KEY_LEN]


def job_name(llmd_name: str, key: str) -> str:
    """``<deployment>-eval-<key>``, at most 63 characters."""
    tail = f"-eval-{key}"
    return safe_slug(llmd_name, max_length=MAX_NAME - len(tail)) + tail


def job_args(spec: EvaluationSpec, endpoint: str, model: str) -> list[str]:
    """``kubellm eval`` as the Job runs it (the same command a user runs on a laptop)."""
    args = ["eval", "--evaluation", json.dumps(spec.dump(), sort_keys=True,
                                               separators=(",", ":")),
            "--endpoint", endpoint, "--model", model,
            "--termination-log", TERMINATION_LOG, "-o", "json"]
    if spec.checks_from is not None:
        ref = spec.checks_from.config_map_ref
        args += ["--checks-file", f"{CHECKS_DIR}/{ref.key}",
                 "--checks-source", f"ConfigMap {ref.name} key {ref.key}"]
    return args


def render_job(
    *,
    llmd_name: str,
    namespace: str,
    generation: int,
    revision: str,
    spec: EvaluationSpec,
    endpoint: str,
    model: str,
    image: str,
) -> dict[str, Any]:
    """The evaluation Job (ownerReference added by the caller: ``naming.with_owner``)."""
    digest = spec_hash(spec)
    key = evaluation_key(generation, revision, digest)
    meta_labels = labels(llmd_name, COMPONENT_EVALUATION)
    container: dict[str, Any] = {
        "name": "evaluate",
        "image": image,
        "command": ["kubellm"],
        "args": job_args(spec, endpoint, model),
        "resources": {"requests": {"cpu": "100m", "memory": "256Mi"},
                      "limits": {"memory": "512Mi"}},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "readOnlyRootFilesystem": True,
        },
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "File",
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]
    if spec.checks_from is not None:
        ref = spec.checks_from.config_map_ref
        container["volumeMounts"].append(
            {"name": "checks", "mountPath": CHECKS_DIR, "readOnly": True})
        volumes.append({"name": "checks", "configMap": {
            "name": ref.name, "optional": True, "items": [{"key": ref.key, "path": ref.key}]}})
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(llmd_name, key),
            "namespace": namespace,
            "labels": meta_labels,
            "annotations": {
                ANNOTATION_EVALUATION_KEY: key,
                ANNOTATION_GENERATION: str(generation),
                ANNOTATION_REVISION: revision,
                ANNOTATION_SPEC_HASH: digest,
            },
        },
        "spec": {
            "activeDeadlineSeconds": spec.timeout_seconds + 60,  # + image pull and start-up
            "backoffLimit": 1,
            "podFailurePolicy": {"rules": [{
                "action": "FailJob",
                "onExitCodes": {"containerName": "evaluate", "operator": "In",
                                "values": [1, 2]},
            }]},
            "template": {
                "metadata": {"labels": meta_labels},
                "spec": job_pod_spec(container, volumes, uid=EVAL_UID),
            },
        },
    }
