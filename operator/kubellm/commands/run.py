"""``kubellm run``: the operator (kopf, standalone) reconciling LLMDeployments.

This module only declares the flags and starts things: ``OperatorConfig.from_args`` builds the
one frozen config (``kubellm.shell.config``), ``kubellm.handlers.configure`` hands it to kopf's
handlers, and with ``--leader-elect`` ``kubellm.shell.election.run_elected`` starts kopf only
while this replica holds the leader Lease.

kopf is imported only inside the handler, so ``kubellm --help`` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

from kubellm.commands.catalog_flags import add_catalog_flags, gpu_catalog, runtime_images

log = logging.getLogger("kubellm.run")


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the operator (reconcile LLMDeployments on the current cluster)",
        description=(
            "Run the kubellm operator: for every LLMDeployment, decide the licence against the "
            "LicensePolicies, size GPUs against the live nodes, download the model once into a "
            "shared cache PVC, roll out vLLM/TGI and explain each step in status conditions and "
            "events. Uses the kubeconfig (--kubeconfig, $KUBECONFIG, ~/.kube/config) or the "
            "in-cluster ServiceAccount. Without --leader-elect this instance reconciles alone "
            "(run one replica); with it, replicas elect one leader through a Lease."
        ),
    )
    scope = parser.add_mutually_exclusive_group()
    scope.add_argument(
        "--namespace", "-n", metavar="NS", help="watch LLMDeployments in this namespace only"
    )
    scope.add_argument(
        "--all-namespaces", "-A", action="store_true", help="watch every namespace (the default)"
    )
    parser.add_argument("--kubeconfig", metavar="PATH", help="kubeconfig file to use")
    parser.add_argument(
        "--metrics-port", type=int, metavar="P", help="serve Prometheus metrics on :P/metrics"
    )
    parser.add_argument(
        "--liveness", metavar="URL", help="kopf liveness endpoint, e.g. http://0.0.0.0:8080/healthz"
    )
    parser.add_argument(
        "--resync-seconds",
        type=float,
        default=300.0,
        metavar="S",
        help="re-check every LLMDeployment this often (default 300)",
    )
    parser.add_argument(
        "--cache-grace-period",
        type=float,
        default=3600.0,
        metavar="S",
        help="delete a shared model cache unused for this long (default 3600)",
    )
    parser.add_argument("--workers", type=int, default=8, help="concurrent reconciles (default 8)")
    parser.add_argument(
        "--image", metavar="IMAGE", help="image of the model download Job (default: kubellm's own)"
    )
    add_catalog_flags(parser)
    shard = parser.add_argument_group(
        "sharding (several operators, each its own LLMDeployments and GPU nodes: "
        "docs/sharding.md)")
    shard.add_argument(
        "--shard-selector", metavar="SELECTOR",
        help="reconcile only the LLMDeployments this label selector matches, e.g. "
        "kubellm.io/shard=a (the apiserver filters the watch; default: all)")
    shard.add_argument(
        "--shard-node-selector", metavar="LABEL=VALUE[,...]",
        help="size and schedule this shard's deployments on these nodes only, e.g. "
        "pool=a (their pods get it as nodeSelector; a spec asking for other nodes is refused)")
    election = parser.add_argument_group("leader election (several replicas, one reconciling)")
    election.add_argument(
        "--leader-elect", action="store_true",
        help="wait as a standby until this instance holds a coordination.k8s.io Lease, then "
        "reconcile; stop and exit 1 if the Lease cannot be renewed")
    election.add_argument(
        "--leader-election-namespace", metavar="NS",
        help="namespace of the Lease (default: $POD_NAMESPACE, else the in-cluster "
        "ServiceAccount's namespace)")
    election.add_argument(
        "--leader-election-id", metavar="NAME", default="kubellm-operator",
        help="name of the Lease (default kubellm-operator); replicas sharing it elect one leader")
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from kubellm.shell.config import OperatorConfig

    # bad flags exit 2 before anything starts
    config = OperatorConfig.from_args(args, runtime_images=runtime_images(args),
                                      gpus=gpu_catalog(args))
    if config.kubeconfig:  # kopf's own login reads $KUBECONFIG
        os.environ["KUBECONFIG"] = config.kubeconfig
    logging.basicConfig(
        level=logging.DEBUG if config.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # kubellm.operator logs one line per reconcile that changed something, naming the object;
    # kopf's per-event "Handler ... succeeded" and the HTTP clients' request lines are noise.
    for noisy in ("kubernetes", "urllib3", "aiohttp.access", "httpx", "httpx2", "huggingface_hub",
                  "kopf.objects"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if config.verbose else logging.WARNING)
    import kopf

    from kubellm import handlers
    from kubellm.metrics import Metrics
    from kubellm.shell.election import StopFlag, run_elected

    metrics = Metrics()
    if config.metrics_port:
        metrics.serve(config.metrics_port)
    handlers.configure(config, metrics)

    def start_kopf(stop_flag: StopFlag | None = None) -> None:
        kopf.run(
            loop=stop_flag.loop if stop_flag else None,
            standalone=True,
            clusterwide=not config.namespace,
            namespaces=[config.namespace] if config.namespace else (),
            liveness_endpoint=config.liveness,
            stop_flag=stop_flag.future if stop_flag else None,
        )

    if config.election is None:
        start_kopf()
        return 0
    return run_elected(config, metrics, start_kopf)
