"""Multi-node serving: one replica across several nodes as a LeaderWorkerSet (pure).

When the sizing spreads one replica over ``nodes_per_replica`` > 1 nodes (pipeline stages on
several nodes), a Deployment cannot express it: its single pod would request every GPU of the
replica and no node has that many, so it would stay Pending forever. A LeaderWorkerSet
(``leaderworkerset.x-k8s.io/v1``, kubernetes-sigs/lws) creates, per replica, a group of ``size``
pods scheduled and restarted together:

- the leader pod (worker index 0) runs the runtime's ``leader_command`` (vLLM: the Ray head,
  then the server with ``--distributed-executor-backend ray``); it keeps the server's port,
  probes (sized for the model), cache mount, offline environment and GPU placement;
- each worker pod runs the runtime's ``worker_command`` (vLLM: join the leader's Ray cluster at
  ``$LWS_LEADER_ADDRESS``, set by the LWS controller, and block) in its ``worker_container``;
  same GPUs per pod, placement, cache mount and environment, no port, no probes;
- ``RecreateGroupOnPodRestart``: a distributed group (a Ray cluster, a torch.distributed world)
  does not survive losing a member, so any restart recreates the whole group;
- the Service selects only leader pods (``leaderworkerset.sigs.k8s.io/worker-index: "0"``).

The rollout mirrors the Deployment's (``Runtime.strategy``): one replica surges, several replace
one group at a time inside the GPUs already held.
"""

from __future__ import annotations

import copy
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


def leader_selector(llmd_name: str) -> dict[str, str]:
    """The Service selector: the serving pods of ``llmd_name`` that are group leaders."""
    return dict(sorted({**selector_labels(llmd_name), LABEL_WORKER_INDEX: "0"}.items()))


def render(runtime: Runtime, ctx: RenderContext) -> list[dict[str, Any]]:
    """[LeaderWorkerSet, Service] for a replica spanning ``ctx.nodes`` nodes."""
    server = runtime.container(ctx)  # also runs runtime.check(ctx)
    command = [*runtime.info.command, *server["args"]]
    leader_container = {**server, **runtime.leader_command(ctx, command)}
    # same image, environment, GPUs and mounts as the server; no port, no probes (no server)
    worker_container = {
        key: copy.deepcopy(value)
        for key, value in server.items()
        if key not in ("ports", "livenessProbe", "readinessProbe", "startupProbe")
    }
    worker_container.update(
        {"name": runtime.worker_container, **runtime.worker_command(ctx, command)}
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
