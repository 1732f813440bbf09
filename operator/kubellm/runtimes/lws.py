"""Multi-node serving: one replica across several nodes as a LeaderWorkerSet (pure).

When the sizing spreads one replica over ``nodes_per_replica`` > 1 nodes (pipeline stages on
several nodes), a Deployment cannot express it: its single pod would request every GPU of the
replica and no node has that many, so it would stay Pending forever. A LeaderWorkerSet
(``leaderworkerset.x-k8s.io/v1``, kubernetes-sigs/lws) creates, per replica, a group of ``size``
pods scheduled and restarted together:

- the leader pod (worker index 0) starts the Ray head, waits until ``$LWS_GROUP_SIZE`` Ray nodes
  joined, then runs the server with ``--distributed-executor-backend ray``; it keeps the server's
  port, probes (sized for the model), cache mount, offline environment and GPU placement;
- each worker pod joins the leader's Ray cluster (``$LWS_LEADER_ADDRESS``, set by the LWS
  controller) and blocks; same GPUs per pod, placement, cache mount and environment, no probes;
- ``RecreateGroupOnPodRestart``: a Ray cluster does not survive losing a member, so any restart
  recreates the whole group;
- the Service selects only leader pods (``leaderworkerset.sigs.k8s.io/worker-index: "0"``).

The rollout mirrors the Deployment's (``Runtime.strategy``): one replica surges, several replace
one group at a time inside the GPUs already held.
"""

from __future__ import annotations

import copy
import shlex
from typing import TYPE_CHECKING, Any

from kubellm.naming import (
    ANNOTATION_MODEL,
    ANNOTATION_REVISION,
    ANNOTATION_SPEC_HASH,
    selector_labels,
    serving_name,
)
from kubellm.runtimes.base import RenderContext, spec_hash

if TYPE_CHECKING:
    from kubellm.runtimes.base import Runtime

API_VERSION = "leaderworkerset.x-k8s.io/v1"
KIND = "LeaderWorkerSet"
LABEL_WORKER_INDEX = "leaderworkerset.sigs.k8s.io/worker-index"
RESTART_POLICY = "RecreateGroupOnPodRestart"
RAY_PORT = 6379  # `ray start --head` default GCS port
RAY_WAIT_SECONDS = 5
WORKER_CONTAINER = "ray-worker"


def leader_selector(llmd_name: str) -> dict[str, str]:
    """The Service selector: the serving pods of ``llmd_name`` that are group leaders."""
    return dict(sorted({**selector_labels(llmd_name), LABEL_WORKER_INDEX: "0"}.items()))


def leader_script(server_command: list[str]) -> str:
    """Shell for the leader: Ray head, wait for the whole group, then exec the server."""
    return (
        f"ray start --head --port={RAY_PORT} && "
        f'until [ "$(ray status 2>/dev/null | grep -c node_)" -ge "$LWS_GROUP_SIZE" ]; '
        f"do echo waiting for $LWS_GROUP_SIZE Ray nodes; sleep {RAY_WAIT_SECONDS}; done && "
        f"exec {shlex.join(server_command)}"
    )


def worker_script() -> str:
    """Shell for a worker: join the leader's Ray cluster and block."""
    return f"exec ray start --address=$LWS_LEADER_ADDRESS:{RAY_PORT} --block"


def render(runtime: Runtime, ctx: RenderContext) -> list[dict[str, Any]]:
    """[LeaderWorkerSet, Service] for a replica spanning ``ctx.nodes`` nodes."""
    server = runtime.container(ctx)  # also runs runtime.check(ctx)
    leader_container = {
        **server,
        "command": ["/bin/sh", "-c"],
        "args": [leader_script([*runtime.info.command, *server["args"]])],
    }
    # same image, environment, GPUs and mounts as the server; no port, no probes (no server)
    worker_container = {
        key: copy.deepcopy(value)
        for key, value in server.items()
        if key not in ("ports", "livenessProbe", "readinessProbe", "startupProbe")
    }
    worker_container.update(
        {"name": WORKER_CONTAINER, "command": ["/bin/sh", "-c"], "args": [worker_script()]}
    )
    leader = runtime.pod_template(ctx, leader_container)
    worker = runtime.pod_template(ctx, worker_container, scrape=False)
    digest = spec_hash({"leader": leader, "size": ctx.nodes, "worker": worker})
    replicas = ctx.spec.replicas if ctx.replicas is None else ctx.replicas
    rolling = runtime.strategy(replicas)["rollingUpdate"]
    lws = {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": {
            "name": serving_name(ctx.name),
            "namespace": ctx.namespace,
            "labels": runtime.pod_labels(ctx),
            "annotations": {
                ANNOTATION_MODEL: ctx.facts.repo,
                ANNOTATION_REVISION: ctx.revision,
                ANNOTATION_SPEC_HASH: digest,
            },
        },
        "spec": {
            "replicas": replicas,
            "leaderWorkerTemplate": {
                "size": ctx.nodes,
                "restartPolicy": RESTART_POLICY,
                "leaderTemplate": leader,
                "workerTemplate": worker,
            },
            "rolloutStrategy": {"type": "RollingUpdate", "rollingUpdateConfiguration": rolling},
        },
    }
    return [lws, runtime.service(ctx, leader_selector(ctx.name))]
