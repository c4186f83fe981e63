import asyncio

from paramedic.operator.workqueue import WorkQueue


def test_keys_are_deduplicated_serialised_and_requeued():
    async def scenario():
        seen: list[str] = []
        active = set()
        overlap = []

        async def work(key):
            if key in active:
                overlap.append(key)
            active.add(key)
            seen.append(key)
            await asyncio.sleep(0.01)
            active.discard(key)
            return 0.05 if key == "again" and seen.count("again") < 3 else None

        q = WorkQueue("t", work, concurrency=4)
        q.start()
        for _ in range(5):
            q.add("a")
        q.add("again")
        await asyncio.sleep(0.005)
        q.add("a")  # while running: runs once more afterwards
        await asyncio.sleep(0.4)
        await q.stop()
        return seen, overlap

    seen, overlap = asyncio.run(scenario())
    assert seen.count("a") == 2
    assert seen.count("again") == 3
    assert overlap == []


def test_failures_are_retried_with_backoff():
    async def scenario():
        calls = []

        async def work(key):
            calls.append(key)
            if len(calls) < 3:
                raise RuntimeError("boom")
            return None

        q = WorkQueue("t", work, concurrency=1)
        q.start()
        q.add("k")
        await asyncio.sleep(2.0)
        await q.stop()
        return calls

    assert asyncio.run(scenario()) == ["k", "k", "k"]
