"""How the sandbox waits for what it starts: HTTP health endpoints, kubectl checks, Ready nodes,
all against one deadline (``KUBELLM_SANDBOX_START_TIMEOUT``), failing with the log tails of the
processes being watched as soon as one of them dies."""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from kubellm.sandbox import install, pki, process
from kubellm.sandbox.errors import SandboxError
from kubellm.sandbox.process import ProcessRecord


def start_timeout() -> float:
    value = os.environ.get("KUBELLM_SANDBOX_START_TIMEOUT", "180")
    try:
        return float(value)
    except ValueError as exc:
        raise SandboxError(
            f"KUBELLM_SANDBOX_START_TIMEOUT={value!r} is not a number of seconds"
        ) from exc


def host_ip() -> str:
    """A non-loopback address for --advertise-address (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("10.255.255.255", 1))
            ip = str(sock.getsockname()[0])
        except OSError:
            ip = ""
    return ip if ip and not ip.startswith("127.") else "192.0.2.1"


def client_tls(certs: pki.PkiPaths) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(certs.ca_cert))
    ctx.load_cert_chain(str(certs.admin_cert), str(certs.admin_key))
    return ctx


def http_ok(url: str, ctx: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=ctx) as resp:
            return int(resp.status) == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def kubectl(bins: install.Binaries, kubeconfig: str, args: list[str]) -> str:
    proc = subprocess.run(
        [str(bins["kubectl"]), f"--kubeconfig={kubeconfig}", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if proc.returncode != 0:
        raise SandboxError(f"kubectl {' '.join(args[:2])} failed: {proc.stderr.strip()}")
    return proc.stdout


def kubectl_ok(bins: install.Binaries, kubeconfig: str, args: list[str]) -> bool:
    try:
        kubectl(bins, kubeconfig, args)
    except (SandboxError, subprocess.TimeoutExpired):
        return False
    return True


def ready_nodes(bins: install.Binaries, kubeconfig: str) -> int:
    try:
        out = kubectl(bins, kubeconfig, ["get", "nodes", "-o", "json"])
    except (SandboxError, subprocess.TimeoutExpired):
        return 0
    ready = 0
    for node in json.loads(out).get("items", []):
        for cond in node.get("status", {}).get("conditions", []) or []:
            if cond.get("type") == "Ready" and cond.get("status") == "True":
                ready += 1
    return ready


def wait_for(
    check: Callable[[], bool],
    watched: list[ProcessRecord],
    what: str,
    deadline: float,
    interval: float = 0.25,
) -> None:
    """Poll ``check`` until true; fail with a log tail if a process dies or time runs out."""
    while True:
        for record in watched:
            if not process.is_running(record):
                raise SandboxError(
                    f"{record.name} exited while waiting for {what}; last lines of "
                    f"{record.log}:\n{process.log_tail(record.log)}"
                )
        if check():
            return
        if time.monotonic() > deadline:
            tails = "\n".join(
                f"--- {r.name} ({r.log}):\n{process.log_tail(r.log, 8)}" for r in watched
            )
            raise SandboxError(
                f"timed out waiting for {what} (KUBELLM_SANDBOX_START_TIMEOUT="
                f"{start_timeout():.0f}s):\n{tails}"
            )
        time.sleep(interval)
