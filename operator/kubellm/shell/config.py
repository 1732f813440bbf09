"""The operator's one configuration: a frozen ``OperatorConfig`` built once from ``kubellm run``'s
flags and the environment, then passed down (the shell, the kopf handlers, the reconciler's part
``OperatorConfig.reconcile``). Nothing below reads flags or the environment again.

Environment read here, and only here: ``KUBECONFIG`` (a ``--kubeconfig`` wins; also what kopf's
own login reads), ``HF_ENDPOINT`` (a Hub mirror, passed on to the download Jobs) and, for the
leader Lease's namespace, ``POD_NAMESPACE`` or the in-cluster ServiceAccount's namespace file.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kubellm.errors import SpecError
from kubellm.k8s.leader import DEFAULT_LEASE_NAME
from kubellm.naming import is_label_key, is_label_value, parse_selector
from kubellm.reconcile import Settings
from kubellm.sizing.catalog import GpuCatalog

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


@dataclass(frozen=True)
class Election:
    """``--leader-elect``: the Lease replicas compete for."""

    namespace: str
    name: str = DEFAULT_LEASE_NAME


@dataclass(frozen=True)
class OperatorConfig:
    """Everything ``kubellm run`` was told; immutable once built."""

    kubeconfig: str | None = None  # absolute path, or None: $KUBECONFIG/~/.kube/in-cluster
    namespace: str | None = None  # None: all namespaces
    metrics_port: int | None = None
    liveness: str | None = None  # kopf's liveness endpoint URL
    resync_seconds: float = 300.0
    cache_grace_seconds: float = 3600.0
    workers: int = 8
    gpu_wait_seconds: float = 30.0  # re-check of a deployment waiting for GPUs (<= resync)
    election: Election | None = None  # None: no leader election (one replica)
    shard_selector: str | None = None  # --shard-selector: the LLMDeployments of this shard
    verbose: bool = False
    reconcile: Settings = field(default_factory=Settings)

    @classmethod
    def from_args(cls, args: argparse.Namespace, environ: Mapping[str, str] | None = None,
                  runtime_images: Mapping[str, str] | None = None,
                  gpus: GpuCatalog | None = None) -> OperatorConfig:
        """The config of ``kubellm run ARGS`` in environment ``environ`` (default: this
        process's), with the validated ``--runtime-image`` mapping and ``--gpu-catalog``
        catalogue. A ``SpecError`` names the flag when something is missing."""
        env = os.environ if environ is None else environ
        kubeconfig = (os.path.abspath(args.kubeconfig) if args.kubeconfig
                      else env.get("KUBECONFIG") or None)
        election = None
        if args.leader_elect:
            election = Election(lease_namespace(args.leader_election_namespace, env),
                                args.leader_election_id or DEFAULT_LEASE_NAME)
        shard_selector = getattr(args, "shard_selector", None) or None
        if shard_selector:
            try:
                parse_selector(shard_selector)
            except ValueError as exc:
                raise SpecError("--shard-selector", str(exc), "use key=value, key!=value, key "
                                "or !key, comma-separated, e.g. kubellm.io/shard=a") from None
        return cls(
            kubeconfig=kubeconfig,
            namespace=args.namespace,
            metrics_port=args.metrics_port,
            liveness=args.liveness,
            resync_seconds=args.resync_seconds,
            cache_grace_seconds=args.cache_grace_period,
            workers=args.workers,
            election=election,
            shard_selector=shard_selector,
            verbose=bool(args.verbose),
            reconcile=Settings(image=args.image, hub_endpoint=env.get("HF_ENDPOINT") or None,
                               runtime_images=tuple(sorted((runtime_images or {}).items())),
                               gpu_catalog=gpus,
                               node_pool=node_pool(getattr(args, "shard_node_selector", None))),
        )


def node_pool(text: str | None) -> tuple[tuple[str, str], ...]:
    """``--shard-node-selector LABEL=VALUE[,...]`` as sorted pairs (() when not given)."""
    if not text:
        return ()
    pairs: dict[str, str] = {}
    for term in text.split(","):
        key, sep, value = (part.strip() for part in term.partition("="))
        if not sep or not is_label_key(key) or not is_label_value(value):
            raise SpecError("--shard-node-selector", f"{term.strip()!r} is not LABEL=VALUE",
                            "e.g. --shard-node-selector pool=a,zone=x")
        pairs[key] = value
    return tuple(sorted(pairs.items()))


def lease_namespace(flag: str | None, environ: Mapping[str, str],
                    sa_file: Path | None = None) -> str:
    """The namespace of the leader Lease: the flag, else $POD_NAMESPACE, else the in-cluster
    ServiceAccount's namespace."""
    if flag:
        return flag
    if environ.get("POD_NAMESPACE"):
        return environ["POD_NAMESPACE"]
    path = sa_file or SERVICE_ACCOUNT_NAMESPACE
    if path.is_file():
        return path.read_text().strip()
    raise SpecError("--leader-election-namespace", "needed outside a cluster",
                    "name the namespace of the Lease, e.g. kubellm-system")
