"""The operator's one work queue (kubellm.shell.workqueue): dedup, level-triggered re-runs,
no two runs of one key at once, retries with capped exponential backoff, forget."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Iterator

import pytest

from kubellm.shell import workqueue
from kubellm.shell.workqueue import MAX_BACKOFF, WorkQueue, backoff


@pytest.fixture
def executor() -> Iterator[concurrent.futures.ThreadPoolExecutor]:
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=4)
    yield pool
    pool.shutdown(wait=True, cancel_futures=True)


async def settle(queue: WorkQueue[str], runs: Callable[[], int], expected: int,
                 timeout: float = 5.0) -> None:
    """Wait until ``runs()`` reaches ``expected`` and the queue is idle."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while runs() < expected or queue.waiting():
        if loop.time() > deadline:
            raise AssertionError(f"{runs()} runs, expected {expected}")
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.05)  # nothing more comes


def test_backoff_grows_and_is_capped() -> None:
    assert [backoff(30, n) for n in range(7)] == [30, 60, 120, 240, 480, 600, 600]
    assert backoff(0, 0) == 1.0 and backoff(5, 100) == MAX_BACKOFF


def test_a_key_added_many_times_while_waiting_runs_once(
        executor: concurrent.futures.Executor) -> None:
    seen: list[tuple[str, str]] = []

    async def main() -> None:
        queue: WorkQueue[str] = WorkQueue(lambda k, t: seen.append((k, t)), executor)
        for trigger in ("kopf", "child", "policy"):
            queue.add("a", trigger)
        queue.add("b", "child")
        queue.start(2)
        await settle(queue, lambda: len(seen), 2)
        await queue.stop()

    asyncio.run(main())
    assert sorted(seen) == [("a", "kopf"), ("b", "child")]  # the first trigger names the run


def test_added_while_running_runs_once_more_after_and_never_concurrently(
        executor: concurrent.futures.Executor) -> None:
    running = threading.Event()
    release = threading.Event()
    active = {"now": 0, "max": 0}
    lock = threading.Lock()
    runs: list[str] = []

    def process(key: str, trigger: str) -> None:
        with lock:
            active["now"] += 1
            active["max"] = max(active["max"], active["now"])
        runs.append(trigger)
        if len(runs) == 1:
            running.set()
            release.wait(5)
        with lock:
            active["now"] -= 1

    async def main() -> None:
        queue: WorkQueue[str] = WorkQueue(process, executor)
        queue.start(4)  # workers to spare: only the queue keeps the runs of "a" apart
        queue.add("a", "kopf")
        await asyncio.to_thread(running.wait, 5)
        for trigger in ("child", "child", "resync"):  # while the first run is in flight
            queue.add("a", trigger)
        await asyncio.sleep(0.05)
        assert runs == ["kopf"]  # not started beside the running one
        release.set()
        await settle(queue, lambda: len(runs), 2)
        await queue.stop()

    asyncio.run(main())
    assert runs == ["kopf", "child"]  # exactly one more run, after the first
    assert active["max"] == 1


def test_temporary_failures_back_off_exponentially_and_success_resets(
        executor: concurrent.futures.Executor, monkeypatch: pytest.MonkeyPatch) -> None:
    delays: list[float] = []
    results = [5.0, 5.0, 5.0, None, 5.0]  # hint, hint, hint, done, hint

    def process(key: str, trigger: str) -> float | None:
        return results.pop(0) if results else None

    async def main() -> None:
        loop = asyncio.get_running_loop()
        real_call_later = loop.call_later

        def fast(delay: float, callback: Callable[..., object], *args: object
                 ) -> asyncio.TimerHandle:  # fmt: skip
            if delay < 1.0:  # asyncio.sleep of the test itself
                return real_call_later(delay, callback, *args)
            delays.append(delay)
            return real_call_later(0.001, callback, *args)

        monkeypatch.setattr(loop, "call_later", fast)
        queue: WorkQueue[str] = WorkQueue(process, executor)
        queue.start(1)
        queue.add("a", "kopf")
        await settle(queue, lambda: queue.runs, 4)
        assert queue.failures("a") == 0  # the success reset the count
        queue.add("a", "child")
        await settle(queue, lambda: queue.runs, 6)
        await queue.stop()

    asyncio.run(main())
    assert delays == [5.0, 10.0, 20.0, 5.0]  # doubled per failure; from the hint again after


def test_a_crash_is_retried_and_forget_cancels_the_retry(
        executor: concurrent.futures.Executor, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(workqueue, "CRASH_DELAY", 0.05)
    runs: list[str] = []

    def process(key: str, trigger: str) -> None:
        runs.append(trigger)
        raise RuntimeError("a bug")

    async def main() -> None:
        queue: WorkQueue[str] = WorkQueue(process, executor)
        queue.start(1)
        queue.add("a", "kopf")
        await settle(queue, lambda: len(runs), 2)  # retried after CRASH_DELAY
        assert runs[:2] == ["kopf", "retry"] and queue.failures("a") >= 1
        queue.forget("a")  # the object is gone: no retry pending any more
        count = len(runs)
        await asyncio.sleep(0.5)
        assert len(runs) == count and queue.failures("a") == 0
        await queue.stop()

    asyncio.run(main())
