"""The operator's one work queue: per-key dedup, level-triggered re-runs, retries with backoff.

Every trigger (an LLMDeployment's watch event, child and policy events, the resync, GPUs freed)
calls ``add``; nothing else runs a reconcile, and nothing else retries one. The semantics are
client-go's ``workqueue`` (the rate-limited one), on an asyncio loop:

- **dedup**: a key waiting is not queued twice (the first trigger names the run);
- **level-triggered**: a key added while its reconcile is in flight is run once more after it
  finishes (however many adds came meanwhile), so a change seen mid-reconcile is never lost and
  two reconciles of one key never overlap;
- **retries**: ``process`` returns a retry delay hint (a ``TemporaryError``'s, or
  ``CRASH_DELAY`` for a bug) or None; the queue re-adds the key after
  ``backoff(hint, failures)`` — the hint, doubled per consecutive failure of that key, capped at
  ``MAX_BACKOFF`` — and a success resets the count and cancels a retry still waiting;
- ``forget``: the object is gone, drop its failure count and pending retry.

``process`` runs in the caller's executor (the kubernetes client is synchronous); the queue
itself is touched only on the loop (``add_threadsafe`` from other threads).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
from collections.abc import Callable, Hashable, Iterable
from typing import Generic, TypeVar

log = logging.getLogger("kubellm.workqueue")

K = TypeVar("K", bound=Hashable)
MAX_BACKOFF = 600.0  # seconds; a long Hub outage costs one retry per 10 minutes per object
CRASH_DELAY = 30.0  # seconds before the first retry of a reconcile that raised (a bug)


def backoff(delay: float, attempt: int) -> float:
    """Exponential backoff from the error's own delay hint: delay, 2x, 4x ... up to 10 min."""
    return float(min(max(delay, 1.0) * 2.0 ** min(max(attempt, 0), 10), MAX_BACKOFF))


class WorkQueue(Generic[K]):
    """Keys to reconcile; ``start(n)`` runs ``n`` workers calling ``process(key, trigger)``,
    which returns None (done) or a retry delay hint in seconds."""

    def __init__(self, process: Callable[[K, str], float | None],
                 executor: concurrent.futures.Executor) -> None:
        self._process = process
        self._executor = executor
        self._queue: asyncio.Queue[K] = asyncio.Queue()
        self._dirty: dict[K, str] = {}  # waiting to run, with the trigger of the first add
        self._processing: set[K] = set()
        self._failures: dict[K, int] = {}  # consecutive failed runs per key
        self._retries: dict[K, asyncio.TimerHandle] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self.runs = 0  # reconciles started (for tests and logs)

    # ---- adding ------------------------------------------------------------------------
    def add(self, key: K, trigger: str) -> None:
        """Run ``key`` soon: once, however often it is added before it starts; once more after
        the run in flight, if it is running now. Call on the loop."""
        if key in self._dirty:
            return
        self._dirty[key] = trigger
        if key not in self._processing:
            self._queue.put_nowait(key)

    def add_many(self, keys: Iterable[K], trigger: str) -> None:
        for key in sorted(keys):  # type: ignore[type-var]
            self.add(key, trigger)

    def add_after(self, key: K, trigger: str, delay: float) -> None:
        """``add`` after ``delay`` seconds (not a retry: a success does not cancel it)."""
        self._loop_now().call_later(delay, self.add, key, trigger)

    def add_threadsafe(self, key: K, trigger: str) -> None:
        """``add`` from another thread (a reconcile's worker thread)."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.add, key, trigger)

    def forget(self, key: K) -> None:
        """The object is gone: no retry is pending for it any more."""
        self._failures.pop(key, None)
        timer = self._retries.pop(key, None)
        if timer is not None:
            timer.cancel()

    def failures(self, key: K) -> int:
        return self._failures.get(key, 0)

    def waiting(self) -> int:
        return len(self._dirty)

    # ---- running -----------------------------------------------------------------------
    def start(self, workers: int) -> None:
        self._loop = asyncio.get_running_loop()
        self._tasks = [asyncio.create_task(self._worker()) for _ in range(workers)]

    async def stop(self) -> None:
        """Stop the workers; a run in flight finishes in the executor (its owner waits)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for timer in self._retries.values():
            timer.cancel()
        self._retries.clear()

    async def _worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            key = await self._queue.get()
            trigger = self._dirty.pop(key, "queued")
            self._processing.add(key)
            self.runs += 1
            try:
                try:
                    hint = await loop.run_in_executor(self._executor, self._process, key,
                                                      trigger)
                except Exception:
                    log.exception("%s [%s]: reconcile crashed", key, trigger)
                    hint = CRASH_DELAY
                self._done(key, hint)
            finally:
                self._processing.discard(key)
                if key in self._dirty:  # added while it ran: once more, now
                    self._queue.put_nowait(key)

    def _done(self, key: K, hint: float | None) -> None:
        if hint is None:
            self.forget(key)
            return
        attempt = self._failures.get(key, 0)
        self._failures[key] = attempt + 1
        delay = backoff(hint, attempt)
        old = self._retries.pop(key, None)
        if old is not None:
            old.cancel()
        self._retries[key] = self._loop_now().call_later(delay, self._retry, key)

    def _retry(self, key: K) -> None:
        self._retries.pop(key, None)
        self.add(key, "retry")

    def _loop_now(self) -> asyncio.AbstractEventLoop:
        return self._loop or asyncio.get_running_loop()
