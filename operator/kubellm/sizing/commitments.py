"""GPUs promised to LLMDeployments but not yet held by bound pods: committed GPU accounting (pure).

Sizing against "allocatable minus the requests of running pods" alone lets deployments reconciled
at about the same time all see the same free GPUs (none of their pods exist yet), so the last one
would stay Pending. A GPU counts as used here when it is:

1. requested by a bound, non-terminated pod (``inventory._used_by_node``), or
2. committed to another kubellm deployment and not yet held by a bound pod of it. A
   ``Commitment`` is ``replicas`` x ``gpus_per_replica`` on the nodes its pod template may run on
   (required node affinity + nodeSelector). It comes from a live kubellm serving Deployment
   (``commitment_from_deployment``) or from the operator's own ledger of plans decided but not
   applied yet (same parser, on the rendered Deployment). Its *unbound* replicas are
   ``replicas`` minus its bound, non-terminating pods, counted in the same Pod snapshot as (1),
   so a replica is counted once: either by its bound pod or as unbound.

Node granularity: a replica needs its GPUs on ONE node (tensor parallel within a node), so each
unbound replica is charged to one node: the eligible node with the most free GPUs (ties by name).
That is where a spreading scheduler puts it, and it is the conservative choice for the next
request: it shrinks the largest free block first, so a later "needs a whole node" request never
counts on a block a pending replica may take.

``own`` (namespace, LLMDeployment name) is left out of both counts: its pods, its Deployment, its
ledger entry. A deployment already holding GPUs therefore never sees itself as not fitting, and
whoever committed first keeps its GPUs on later resyncs.

After an operator restart the ledger is seeded from the LLMDeployments' status
(``commitment_from_status``: Sized=True, the recorded GPU type and GPUs per replica,
``spec.replicas``), so a deployment still downloading its model keeps the GPUs it was promised.

A multi-node replica (a LeaderWorkerSet: ``size`` pods of one node's GPUs each) commits
``replicas x size`` pod-sized units (``commitment_from_workload``), each charged to one node.

Not counted: Pending pods that kubellm does not manage (their product is unknown here). After a
restart, a multi-node deployment's status seed charges a whole replica to one node until its
first reconcile replaces the entry with the rendered LeaderWorkerSet's pods.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from kubellm.naming import LABEL_INSTANCE, selector_labels
from kubellm.sizing.catalog import GpuCatalog
from kubellm.sizing.inventory import (
    GPU_RESOURCE,
    PRODUCT_LABEL,
    SERVING_LABEL_KEYS,
    _get,
    _int,
    _ready,
    _used_by_node,
    inventory_from_nodes,
    pod_gpu_request,
)
from kubellm.sizing.types import Inventory

LWS_KIND = "LeaderWorkerSet"  # kubellm.runtimes.lws.KIND (sizing does not import runtimes)

OWNER_KIND = "LLMDeployment"

# (key, operator, values) of a node selector requirement: In, NotIn, Exists, DoesNotExist
Requirement = tuple[str, str, tuple[str, ...]]
Key = tuple[str, str]  # (namespace, LLMDeployment name)


@dataclass(frozen=True)
class Commitment:
    """``replicas`` pods of ``gpus_per_replica`` GPUs promised to one LLMDeployment."""

    namespace: str
    owner: str  # the LLMDeployment's name
    replicas: int
    gpus_per_replica: int
    selector: tuple[tuple[str, str], ...]  # the pods' matchLabels
    node_selector: tuple[tuple[str, str], ...] = ()
    node_terms: tuple[tuple[Requirement, ...], ...] = ()  # ORed terms of ANDed requirements

    @property
    def key(self) -> Key:
        return (self.namespace, self.owner)

    def matches_node(self, labels: Mapping[str, Any]) -> bool:
        """Whether a pod of this commitment may be scheduled on a node with ``labels``."""
        if any(labels.get(k) != v for k, v in self.node_selector):
            return False
        if not self.node_terms:
            return True
        return any(all(_requirement_ok(r, labels) for r in term) for term in self.node_terms)


def _requirement_ok(req: Requirement, labels: Mapping[str, Any]) -> bool:
    key, op, values = req
    if op == "In":
        return key in labels and str(labels[key]) in values
    if op == "NotIn":
        return key not in labels or str(labels[key]) not in values
    if op == "Exists":
        return key in labels
    if op == "DoesNotExist":
        return key not in labels
    return True  # Gt/Lt: not used by kubellm; do not exclude the node


def _owner(meta: Mapping[str, Any]) -> str:
    for ref in meta.get("ownerReferences") or ():
        if isinstance(ref, Mapping) and ref.get("kind") == OWNER_KIND and ref.get("name"):
            return str(ref["name"])
    labels = meta.get("labels") or {}
    return str(labels.get(LABEL_INSTANCE) or meta.get("name") or "?")


def _template_view(template: Mapping[str, Any]) -> dict[str, Any]:
    """A pod template's labels, placement and effective GPU request (what ``_commitment``
    reads)."""
    spec: Mapping[str, Any] = template.get("spec") or {}
    view_spec: dict[str, Any] = {"containers": [{"resources": {"requests": {
        GPU_RESOURCE: pod_gpu_request(template)}}}]}
    if spec.get("nodeSelector"):
        view_spec["nodeSelector"] = dict(spec["nodeSelector"])
    if _get(spec, "affinity", "nodeAffinity"):
        view_spec["affinity"] = {"nodeAffinity": spec["affinity"]["nodeAffinity"]}
    return {"metadata": {"labels": dict(_get(template, "metadata", "labels") or {})},
            "spec": view_spec}


def workload_view(workload: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of a serving Deployment or LeaderWorkerSet that ``commitment_from_workload``
    reads, for a watch store that keeps views instead of whole objects (no status, env, probes,
    volumes, managedFields)."""
    meta: Mapping[str, Any] = workload.get("metadata") or {}
    spec: Mapping[str, Any] = workload.get("spec") or {}
    view_meta = {k: meta[k] for k in ("name", "namespace", "labels", "ownerReferences",
                                      "deletionTimestamp") if k in meta}
    view_spec: dict[str, Any] = {k: spec[k] for k in ("replicas", "selector") if k in spec}
    if "template" in spec:
        view_spec["template"] = _template_view(spec.get("template") or {})
    group: Mapping[str, Any] = spec.get("leaderWorkerTemplate") or {}
    if group:
        view_spec["leaderWorkerTemplate"] = {
            **({"size": group["size"]} if "size" in group else {}),
            **{k: _template_view(group[k]) for k in ("leaderTemplate", "workerTemplate")
               if group.get(k)}}
    return {"kind": workload.get("kind"), "metadata": view_meta, "spec": view_spec}


def commitment_from_deployment(deployment: Mapping[str, Any]) -> Commitment | None:
    """The GPUs a serving Deployment asks for; None when it asks for none or is being deleted."""
    spec: Mapping[str, Any] = deployment.get("spec") or {}
    match = _get(spec, "selector", "matchLabels") or {}
    return _commitment(deployment, _replicas(spec), spec.get("template") or {}, match)


def commitment_from_workload(workload: Mapping[str, Any]) -> Commitment | None:
    """The GPUs a serving workload asks for: a Deployment, or a LeaderWorkerSet (one replica
    across several nodes), counted as ``replicas x size`` pods of the leader's GPUs each (the
    renderer gives leader and workers the same GPUs and placement), since each of its pods
    needs its GPUs on one node."""
    if workload.get("kind") != LWS_KIND:
        return commitment_from_deployment(workload)
    spec: Mapping[str, Any] = workload.get("spec") or {}
    group: Mapping[str, Any] = spec.get("leaderWorkerTemplate") or {}
    size = group.get("size", 1)
    size = size if isinstance(size, int) and size > 0 else 1
    template: Mapping[str, Any] = group.get("leaderTemplate") or group.get("workerTemplate") or {}
    labels: Mapping[str, Any] = _get(template, "metadata", "labels") or {}
    match = {k: v for k, v in labels.items() if k in SERVING_LABEL_KEYS}
    return _commitment(workload, _replicas(spec) * size, template, match)


def _replicas(spec: Mapping[str, Any]) -> int:
    replicas = spec.get("replicas", 1)
    return replicas if isinstance(replicas, int) else 1


def _commitment(
    workload: Mapping[str, Any],
    pods: int,
    template: Mapping[str, Any],
    match: Mapping[str, Any],
) -> Commitment | None:
    """``pods`` pods of ``template``'s GPUs each, on the nodes its placement allows."""
    meta: Mapping[str, Any] = workload.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return None
    gpus = pod_gpu_request(template)
    if pods <= 0 or gpus <= 0:
        return None
    pod_spec: Mapping[str, Any] = template.get("spec") or {}
    terms_raw = (
        _get(
            pod_spec,
            "affinity",
            "nodeAffinity",
            "requiredDuringSchedulingIgnoredDuringExecution",
            "nodeSelectorTerms",
        )
        or ()
    )
    terms: list[tuple[Requirement, ...]] = []
    for term in terms_raw:
        reqs = tuple(
            (
                str(r.get("key")),
                str(r.get("operator")),
                tuple(str(v) for v in r.get("values") or ()),
            )
            for r in (term or {}).get("matchExpressions") or ()
            if isinstance(r, Mapping)
        )
        terms.append(reqs)
    return Commitment(
        namespace=str(meta.get("namespace") or "default"),
        owner=_owner(meta),
        replicas=pods,
        gpus_per_replica=gpus,
        selector=tuple(sorted((str(k), str(v)) for k, v in match.items())),
        node_selector=tuple(
            sorted((str(k), str(v)) for k, v in (pod_spec.get("nodeSelector") or {}).items())
        ),
        node_terms=tuple(terms),
    )


def commitment_from_status(llmd: Mapping[str, Any]) -> Commitment | None:
    """What an LLMDeployment was promised, from its status (Sized=True and status.sizing);
    None when it was not, is being deleted, or asks for no GPUs. Its GPU is matched on the GFD
    product label, plus its spec.nodeSelector."""
    meta: Mapping[str, Any] = llmd.get("metadata") or {}
    status: Mapping[str, Any] = llmd.get("status") or {}
    spec: Mapping[str, Any] = llmd.get("spec") or {}
    if meta.get("deletionTimestamp") or not meta.get("name"):
        return None
    sized = next(
        (
            c
            for c in status.get("conditions") or ()
            if isinstance(c, Mapping) and c.get("type") == "Sized"
        ),
        None,
    )
    sizing: Mapping[str, Any] = status.get("sizing") or {}
    product, gpus = sizing.get("gpuType"), _int(sizing.get("gpusPerReplica"))
    replicas = spec.get("replicas", 1)
    replicas = replicas if isinstance(replicas, int) else 1
    if not sized or sized.get("status") != "True" or not product or gpus <= 0 or replicas <= 0:
        return None
    name = str(meta["name"])
    return Commitment(
        namespace=str(meta.get("namespace") or "default"),
        owner=name,
        replicas=replicas,
        gpus_per_replica=gpus,
        selector=tuple(sorted(selector_labels(name).items())),
        node_selector=tuple(
            sorted((str(k), str(v)) for k, v in (spec.get("nodeSelector") or {}).items())
        ),
        node_terms=(((PRODUCT_LABEL, "In", (str(product),)),),),
    )


def _live(pod: Mapping[str, Any]) -> bool:
    return _get(pod, "status", "phase") not in ("Succeeded", "Failed")


def is_own_pod(pod: Mapping[str, Any], own: Key | None) -> bool:
    """Whether ``pod`` is a serving pod of the LLMDeployment ``own`` (namespace, name)."""
    if own is None or _get(pod, "metadata", "namespace") != own[0]:
        return False
    labels = _get(pod, "metadata", "labels") or {}
    return all(labels.get(k) == v for k, v in selector_labels(own[1]).items())


def _bound_counts(
    commitments: Sequence[Commitment], pods: Sequence[Mapping[str, Any]]
) -> dict[Key, int]:
    """Bound, live, not-deleting pods per commitment (its namespace + matchLabels selector).

    Pods are indexed once by (namespace, label, value); each commitment then checks only the
    pods carrying its rarest selector label, so this is about O(pods + commitments) instead of
    O(pods x commitments) (200 deployments: ~1 ms instead of ~200 ms per reconcile).
    """
    index: dict[tuple[str, str, str], list[Mapping[str, str]]] = {}
    for pod in pods:
        meta: Mapping[str, Any] = pod.get("metadata") or {}
        if meta.get("deletionTimestamp") or not _live(pod) or not _get(pod, "spec", "nodeName"):
            continue
        namespace = str(meta.get("namespace"))
        labels: Mapping[str, str] = meta.get("labels") or {}
        for k, v in labels.items():
            index.setdefault((namespace, k, v), []).append(labels)
    counts: dict[Key, int] = {}
    for c in commitments:
        if not c.selector:
            counts[c.key] = 0
            continue
        candidates = min((index.get((c.namespace, k, v), []) for k, v in c.selector), key=len)
        counts[c.key] = sum(
            1 for labels in candidates if all(labels.get(k) == v for k, v in c.selector)
        )
    return counts


def _schedulable_free(
    nodes: Sequence[Mapping[str, Any]], used: Mapping[str, int]
) -> dict[str, tuple[int, Mapping[str, Any]]]:
    free: dict[str, tuple[int, Mapping[str, Any]]] = {}
    for node in nodes:
        name = str(_get(node, "metadata", "name") or "?")
        gpus = _int((_get(node, "status", "allocatable") or {}).get(GPU_RESOURCE, 0))
        if gpus <= 0 or _get(node, "spec", "unschedulable") or not _ready(node):
            continue
        free[name] = (max(0, gpus - used.get(name, 0)), _get(node, "metadata", "labels") or {})
    return free


def reserved_by_node(
    nodes: Sequence[Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
    commitments: Sequence[Commitment],
) -> dict[str, int]:
    """GPUs per node charged to the unbound replicas of ``commitments`` (see module docstring)."""
    free = _schedulable_free(nodes, _used_by_node(pods))
    bound = _bound_counts(commitments, pods)
    reserved: dict[str, int] = {}
    names = sorted(free)
    # the nodes a commitment's pods may land on, once per distinct placement constraint (most
    # commitments share one: none), not once per replica and node
    eligible_for: dict[tuple[Any, Any], list[str]] = {}
    for c in sorted(commitments, key=lambda c: c.key):
        unbound = max(0, c.replicas - bound[c.key])
        if not unbound:
            continue
        constraint = (c.node_selector, c.node_terms)
        eligible = eligible_for.get(constraint)
        if eligible is None:
            eligible = [n for n in names if c.matches_node(free[n][1])]
            eligible_for[constraint] = eligible
        if not eligible:
            continue
        for _ in range(unbound):
            node = max(eligible, key=lambda n: free[n][0])  # the first by name among ties
            most = free[node][0]
            take = min(most, c.gpus_per_replica)
            reserved[node] = reserved.get(node, 0) + take
            free[node] = (most - take, free[node][1])
    return reserved


def committed_inventory(
    nodes: Sequence[Mapping[str, Any]],
    pods: Sequence[Mapping[str, Any]],
    commitments: Sequence[Commitment],
    own: Key | None = None,
    node_selector: Mapping[str, str] | None = None,
    catalog: GpuCatalog | None = None,
) -> Inventory:
    """The inventory with free GPUs = allocatable - bound pods - unbound commitments, leaving out
    everything of ``own`` (its pods, its Deployment, its ledger entry). With ``node_selector``
    (the deployment's ``spec.nodeSelector``, which its pods carry) only the nodes whose labels
    match count: the scheduler would never place the pods anywhere else. GPU products are read
    in ``catalog`` (default: the built-in catalogue)."""
    others = [p for p in pods if _live(p) and not is_own_pod(p, own)]
    promised = [c for c in commitments if c.key != own]
    reserved = reserved_by_node(nodes, others, promised)
    if not node_selector:
        return inventory_from_nodes(nodes, others, reserved=reserved, catalog=catalog)
    wanted = sorted((str(k), str(v)) for k, v in node_selector.items())
    matching = [n for n in nodes
                if all(((n.get("metadata") or {}).get("labels") or {}).get(k) == v
                       for k, v in wanted)]
    inventory = inventory_from_nodes(matching, others, reserved=reserved, catalog=catalog)
    if len(matching) < len(nodes):
        note = (f"{len(nodes) - len(matching)} of {len(nodes)} nodes skipped: their labels do "
                f"not match spec.nodeSelector {dict(wanted)}")
        inventory = replace(inventory, notes=(*inventory.notes, note))
    return inventory


def merge_commitments(
    ledger: Mapping[Key, Commitment], deployments: Sequence[Mapping[str, Any]]
) -> list[Commitment]:
    """One commitment per LLMDeployment: its ledger entry when it has one (decided by this
    operator, fresher than a listed Deployment), else its live Deployment's."""
    out: dict[Key, Commitment] = dict(ledger)
    for dep in deployments:
        c = commitment_from_workload(dep)
        if c is not None and c.key not in ledger:
            out[c.key] = c
    return [out[k] for k in sorted(out)]
