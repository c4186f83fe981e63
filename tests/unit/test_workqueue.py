import asyncio
import time

from paramedic.operator.workqueue import WorkQueue


async def until(cond, timeout: float = 5.0) -> None:
    """Wait (yielding to the loop) until `cond()` holds; fail after `timeout` seconds."""
    async def poll() -> None:
        while not cond():
            await asyncio.sleep(0.001)
    await asyncio.wait_for(poll(), timeout)


def idle(q: WorkQueue) -> bool:
    """Nothing queued, running or waiting on a delay: nothing more will run."""
    return q.pending() == 0 and not q._due


def test_keys_are_deduplicated_serialised_and_requeued():
    async def scenario():
        seen: list[str] = []
        active = set()
        overlap = []
        release_a = asyncio.Event()

        async def work(key):
            if key in active:
                overlap.append(key)
            active.add(key)
            seen.append(key)
            if key == "a":
                await release_a.wait()  # the first run of "a" holds until the test re-adds it
            await asyncio.sleep(0)
            active.discard(key)
            return 0.05 if key == "again" and seen.count("again") < 3 else None

        q: WorkQueue[str] = WorkQueue("t", concurrency=4)
        q.start(work)
        for _ in range(5):
            q.add("a")
        q.add("again")
        await until(lambda: "a" in active)
        q.add("a")  # while running: runs once more afterwards
        q.add("a")  # (once, however often it is added meanwhile)
        release_a.set()
        await until(lambda: seen.count("again") == 3 and idle(q))
        await q.stop()
        return seen, overlap

    seen, overlap = asyncio.run(scenario())
    assert seen.count("a") == 2
    assert seen.count("again") == 3
    assert overlap == []


def test_failures_are_retried_with_backoff():
    async def scenario():
        calls: list[float] = []

        async def work(key):
            calls.append(time.monotonic())
            if len(calls) < 3:
                raise RuntimeError("boom")
            return None

        q: WorkQueue[str] = WorkQueue("t", concurrency=1)
        q.start(work)
        q.add("k")
        await until(lambda: len(calls) == 3 and idle(q))
        await q.stop()
        return calls, q._failures

    calls, failures = asyncio.run(scenario())
    gaps = [b - a for a, b in zip(calls, calls[1:], strict=False)]
    # 0.5 s after the first failure, then twice that: exponential backoff, not an immediate retry.
    assert gaps[0] >= 0.45 and gaps[1] >= 0.95, gaps
    assert failures == {}, "a success forgets the failures"
