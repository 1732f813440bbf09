"""Loopback port picking for the sandbox components.

The kernel hands out a free ephemeral port (bind to port 0) unless the user asked for a specific
one; a requested port that is already taken is refused with a message naming it, never silently
replaced, so scripts that rely on it do not talk to the wrong server.
"""

from __future__ import annotations

import errno
import socket

from kubellm.errors import SpecError

HOST = "127.0.0.1"


def is_free(port: int, host: str = HOST) -> bool:
    """True when nothing listens on ``host:port`` and we may bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def pick(count: int, *, requested: dict[int, int] | None = None, host: str = HOST) -> list[int]:
    """``count`` distinct free ports; ``requested`` maps an index to a port the caller wants.

    Raises SpecError naming the port when a requested one is in use or out of range.
    """
    requested = requested or {}
    ports: list[int] = []
    held: list[socket.socket] = []
    try:
        for index in range(count):
            want = requested.get(index)
            if want is not None:
                if not 1 <= want <= 65535:
                    raise SpecError("port", f"{want} is not a TCP port (1-65535)")
                if want in ports or not is_free(want, host):
                    raise SpecError(
                        "port",
                        f"{host}:{want} is already in use",
                        "stop what listens there (ss -ltnp) or choose another port",
                    )
                ports.append(want)
                continue
            # Keep each socket open until all are picked so the kernel never repeats a port.
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            held.append(sock)
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
            while port in requested.values():  # pragma: no cover - astronomically rare
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                held.append(sock)
                sock.bind((host, 0))
                port = int(sock.getsockname()[1])
            ports.append(port)
    finally:
        for sock in held:
            sock.close()
    return ports
