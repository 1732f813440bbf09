"""Run the operator only while this process holds the leader Lease (``kubellm run --leader-elect``).

``run_elected(config, metrics, start)`` waits as a standby until the Lease is ours
(``kubellm.k8s.leader.LeaseElector``), serving its metrics (``kubellm_leader 0``) and a minimal
liveness endpoint meanwhile (``StandbyHealth``); then closes that endpoint and calls
``start(stop_flag)`` (kopf, which serves the real one on the same port). The Lease is renewed in
the background; when renewal fails past the renew deadline the stop flag is raised (and the
process killed if the operator has not stopped before a standby may take over) and the result
is 1, so the pod restarts as a standby: an instance never reconciles without the Lease. A clean
shutdown (SIGTERM) lets the running reconciles finish, then releases the Lease, so a standby
takes over within one retry period instead of a lease duration.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import threading
import urllib.parse
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from kubellm.metrics import Metrics
from kubellm.shell.config import OperatorConfig

log = logging.getLogger("kubellm.run")


class StopFlag:
    """The operator's stop flag, raised from the lease threads. An asyncio future on kopf's own
    loop: with a ``threading.Event`` kopf waits for it in an executor thread, and its loop's
    shutdown then blocks on that thread after a SIGTERM until the event is set."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.future: asyncio.Future[None] = self.loop.create_future()

    def set(self) -> None:
        def raise_it() -> None:
            if not self.future.done():
                self.future.set_result(None)

        if not self.loop.is_closed():
            self.loop.call_soon_threadsafe(raise_it)


def run_elected(config: OperatorConfig, metrics: Metrics,
                start: Callable[[StopFlag], None]) -> int:
    """Standby until the Lease is ours, then ``start`` while it is renewed; 1 when it was lost."""
    from kubellm.k8s import load_api_client
    from kubellm.k8s.leader import LEASE_DURATION, RENEW_DEADLINE, RETRY_PERIOD, LeaseElector

    election = config.election
    if election is None:
        raise ValueError("run_elected needs config.election")
    metrics.leader.set(0)
    elector = LeaseElector(load_api_client(config.kubeconfig), election.namespace,
                           election.name,
                           on_change=lambda leading: metrics.leader.set(1 if leading else 0))
    log.info("leader election: %s is a candidate for lease %s/%s", elector.identity,
             election.namespace, election.name)
    stop_waiting = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):  # a standby stops cleanly (kopf has its own)
        signal.signal(sig, lambda *_: stop_waiting.set())
    health = StandbyHealth(config.liveness) if config.liveness else None
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
    stop, stop_renewing = StopFlag(), threading.Event()
    lost: list[str] = []
    # Time the operator gets to stop before a standby may take over (it waits a lease duration
    # after our last renewal; we notice at the renew deadline; one retry period of margin).
    exit_grace = LEASE_DURATION - RENEW_DEADLINE - RETRY_PERIOD

    def on_lost(why: str) -> None:
        lost.append(why)
        log.error("lost the leader lease (%s): stopping the operator and exiting so the pod "
                  "restarts as a standby", why)
        stop.set()
        killer = threading.Timer(exit_grace, os._exit, args=(1,))  # did not stop in time
        killer.daemon = True
        killer.start()

    elector.hold(stop_renewing, on_lost)
    try:
        start(stop)
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
