"""A small thread-safe cache of values by key with their age (facts, snapshots, policies)."""

from __future__ import annotations

import threading
from typing import Any


class TtlCache:
    """Values with the time they were stored; ``get`` says whether one is younger than a TTL
    (and returns a stale one too: stale facts beat none while the Hub is down)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[Any, tuple[float, Any]] = {}

    def get(self, key: Any, ttl: float, now: float) -> tuple[bool, Any]:
        with self._lock:
            hit = self._data.get(key)
        if hit is None:
            return False, None
        return (now - hit[0] < ttl), hit[1]

    def put(self, key: Any, value: Any, now: float) -> None:
        with self._lock:
            self._data[key] = (now, value)
