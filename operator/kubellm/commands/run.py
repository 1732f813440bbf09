"""``kubellm run``: the operator (kopf, standalone) reconciling LLMDeployments.

With ``--leader-elect`` several replicas run and exactly one reconciles: each waits as a
standby until it holds the leader Lease (``kubellm.k8s.leader``), serving its metrics
(``kubellm_leader 0``) and a minimal liveness endpoint meanwhile; the holder closes that endpoint
and starts kopf, which serves the real one on the same port. The Lease is renewed in the
background; when renewal fails past the renew deadline kopf is stopped (and the process killed
if it has not stopped before a standby may take over) and ``run`` exits 1, so the pod restarts
as a standby: an instance never reconciles without the Lease. A clean shutdown (SIGTERM) lets
the running reconciles finish, then releases the Lease, so a standby takes over within one retry
period instead of a lease duration.

kopf is imported only inside the handler, so ``kubellm --help`` stays fast.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import threading
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from kubellm.commands.catalog_flags import add_catalog_flags, apply_catalog_flags

log = logging.getLogger("kubellm.run")
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


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
    if args.kubeconfig:  # kopf's own login reads $KUBECONFIG as well
        os.environ["KUBECONFIG"] = os.path.abspath(args.kubeconfig)
    apply_catalog_flags(args)  # before anything sizes or renders: bad files exit 2 at once
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # kubellm.operator logs one line per reconcile that changed something, naming the object;
    # kopf's per-event "Handler ... succeeded" and the HTTP clients' request lines are noise.
    for noisy in ("kubernetes", "urllib3", "aiohttp.access", "httpx", "httpx2", "huggingface_hub",
                  "kopf.objects"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    import kopf

    from kubellm import handlers
    from kubellm.metrics import Metrics

    options = handlers.Options(
        kubeconfig=os.environ.get("KUBECONFIG") or None,
        namespace=args.namespace,
        metrics_port=args.metrics_port,
        resync_seconds=args.resync_seconds,
        cache_grace_seconds=args.cache_grace_period,
        workers=args.workers,
        image=args.image,
        hub_endpoint=os.environ.get("HF_ENDPOINT") or None,
    )
    metrics = Metrics()
    if args.metrics_port:
        metrics.serve(args.metrics_port)
    handlers.configure(options, metrics)

    def start_kopf(stop_flag: StopFlag | None = None) -> None:
        kopf.run(
            loop=stop_flag.loop if stop_flag else None,
            standalone=True,
            clusterwide=not args.namespace,
            namespaces=[args.namespace] if args.namespace else (),
            liveness_endpoint=args.liveness,
            stop_flag=stop_flag.future if stop_flag else None,
        )

    if not args.leader_elect:
        start_kopf()
        return 0
    return run_elected(args, options.kubeconfig, metrics, start_kopf)


def lease_namespace(args: argparse.Namespace) -> str:
    from kubellm.errors import SpecError

    if args.leader_election_namespace:
        return str(args.leader_election_namespace)
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    if SERVICE_ACCOUNT_NAMESPACE.is_file():
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    raise SpecError("--leader-election-namespace", "needed outside a cluster",
                    "name the namespace of the Lease, e.g. kubellm-system")


class StopFlag:
    """kopf's stop flag, raised from the lease threads. An asyncio future on kopf's own loop:
    with a ``threading.Event`` kopf waits for it in an executor thread, and its loop's shutdown
    then blocks on that thread after a SIGTERM until the event is set."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.future: asyncio.Future[None] = self.loop.create_future()

    def set(self) -> None:
        def raise_it() -> None:
            if not self.future.done():
                self.future.set_result(None)

        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(raise_it)


def run_elected(args: argparse.Namespace, kubeconfig: str | None, metrics: Any,
                start_kopf: Callable[[StopFlag], None]) -> int:
    """Standby until the Lease is ours, then kopf while it is renewed; 1 when it was lost."""
    from kubellm.k8s import load_api_client
    from kubellm.k8s.leader import LEASE_DURATION, RENEW_DEADLINE, RETRY_PERIOD, LeaseElector

    namespace = lease_namespace(args)
    metrics.leader.set(0)
    elector = LeaseElector(load_api_client(kubeconfig), namespace, args.leader_election_id,
                           on_change=lambda leading: metrics.leader.set(1 if leading else 0))
    log.info("leader election: %s is a candidate for lease %s/%s", elector.identity, namespace,
             args.leader_election_id)
    stop_waiting = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):  # a standby stops cleanly (kopf has its own)
        signal.signal(sig, lambda *_: stop_waiting.set())
    health = StandbyHealth(args.liveness) if args.liveness else None
    try:
        leading = elector.acquire(stop_waiting)
    finally:
        if health is not None:
            health.close()  # the port goes to kopf's liveness endpoint
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, signal.SIG_DFL)
    if not leading:
        log.info("stopped while in standby")
        return 0
    log.info("leading: starting the operator")
    stop_kopf, stop_renewing = StopFlag(), threading.Event()
    lost: list[str] = []
    # Time kopf gets to stop before a standby may take over (it waits a lease duration after
    # our last renewal; we notice at the renew deadline; one retry period of margin).
    exit_grace = LEASE_DURATION - RENEW_DEADLINE - RETRY_PERIOD

    def on_lost(why: str) -> None:
        lost.append(why)
        log.error("lost the leader lease (%s): stopping the operator and exiting so the pod "
                  "restarts as a standby", why)
        stop_kopf.set()
        killer = threading.Timer(exit_grace, os._exit, args=(1,))  # kopf did not stop in time
        killer.daemon = True
        killer.start()

    elector.hold(stop_renewing, on_lost)
    try:
        start_kopf(stop_kopf)
    finally:
        stop_renewing.set()
        if not lost:
            elector.release()
    return 1 if lost else 0


class StandbyHealth:
    """A minimal liveness endpoint for a standby (``--liveness URL``): 200 on the URL's path, so
    the liveness probe keeps a healthy standby alive; closed before kopf serves the real one on
    the same port. ``http.server`` suffices for one probe every few seconds."""

    def __init__(self, url: str) -> None:
        parsed = urllib.parse.urlsplit(url)
        path = parsed.path or "/"
        body = json.dumps({"standby": True}).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                found = urllib.parse.urlsplit(self.path).path == path
                self.send_response(200 if found else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body) if found else 0))
                self.end_headers()
                if found:
                    self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # one line per probe is noise

        self.server = ThreadingHTTPServer((parsed.hostname or "0.0.0.0", parsed.port or 80),
                                          Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       name="kubellm-standby-health", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
