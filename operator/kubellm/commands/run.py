"""``kubellm run``: the operator (kopf, standalone) reconciling LLMDeployments.

kopf is imported only inside the handler, so ``kubellm --help`` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run the operator (reconcile LLMDeployments on the current cluster)",
        description=(
            "Run the kubellm operator: for every LLMDeployment, decide the licence against the "
            "LicensePolicies, size GPUs against the live nodes, download the model once into a "
            "shared cache PVC, roll out vLLM/TGI and explain each step in status conditions and "
            "events. Uses the kubeconfig (--kubeconfig, $KUBECONFIG, ~/.kube/config) or the "
            "in-cluster ServiceAccount. One replica (standalone; no peering)."
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
    parser.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.kubeconfig:  # kopf's own login reads $KUBECONFIG as well
        os.environ["KUBECONFIG"] = os.path.abspath(args.kubeconfig)
    import kopf

    from kubellm import handlers

    handlers.configure(
        handlers.Options(
            kubeconfig=os.environ.get("KUBECONFIG") or None,
            namespace=args.namespace,
            metrics_port=args.metrics_port,
            resync_seconds=args.resync_seconds,
            cache_grace_seconds=args.cache_grace_period,
            workers=args.workers,
            image=args.image,
        )
    )
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # kubellm.operator logs one line per reconcile that changed something, naming the object;
    # kopf's per-event "Handler ... succeeded" and the HTTP clients' request lines are noise.
    for noisy in ("kubernetes", "urllib3", "aiohttp.access", "httpx", "httpx2", "huggingface_hub",
                  "kopf.objects"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    kopf.run(
        standalone=True,
        clusterwide=not args.namespace,
        namespaces=[args.namespace] if args.namespace else (),
        liveness_endpoint=args.liveness,
    )
    return 0
