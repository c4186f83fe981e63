import asyncio

from paramedic.operator.runtime import SideEffects


def test_one_task_per_key_results_kept_for_owners_only():
    async def scenario():
        woken = []
        both_done = asyncio.Event()

        def wake(owner):
            woken.append(owner)
            if len(woken) == 2:
                both_done.set()

        effects = SideEffects(done_callback=wake)
        calls = []
        release = asyncio.Event()

        async def act(n):
            calls.append(n)
            await release.wait()  # running until the test lets it finish
            return n

        effects.spawn("a", ("ns", "inc"), act(1))
        effects.spawn("a", ("ns", "inc"), act(2))  # already running: not started again
        effects.spawn("fire", None, act(3))
        assert effects.running("a") and effects.running("fire")
        release.set()
        await asyncio.wait_for(both_done.wait(), 5)
        assert not effects.running("a")
        effects.spawn("a", ("ns", "inc"), act(4))  # result not taken yet: not started again
        return calls, effects.peek("a"), effects.has_result("fire"), woken

    calls, result, kept_fire, woken = asyncio.run(scenario())
    assert calls == [1, 3] and result == 1 and not kept_fire
    assert woken.count(("ns", "inc")) == 1


def test_token_bucket_allows_bursts_then_the_rate():
    from paramedic.operator.runtime import TokenBucket

    now = [0.0]
    bucket = TokenBucket(rate=2, burst=5, clock=lambda: now[0])
    assert [bucket.take() for _ in range(6)] == [True] * 5 + [False]
    now[0] = 1.0  # two tokens back
    assert [bucket.take() for _ in range(3)] == [True, True, False]
    now[0] = 100.0  # never more than the burst saved up
    assert sum(bucket.take() for _ in range(10)) == 5


def test_cache_index_follows_puts_and_drops():
    from paramedic.operator.runtime import Cache, incident_service

    def inc(name, service, rv):
        return {"metadata": {"namespace": "ns", "name": name, "resourceVersion": str(rv)}, "spec": {"service": service}}

    cache = Cache(index=incident_service)
    cache.put(inc("a", "checkout", 1))
    cache.put(inc("b", "checkout", 2))
    cache.put(inc("c", "cart", 3))
    assert sorted(i["metadata"]["name"] for i in cache.indexed(("ns", "checkout"))) == ["a", "b"]
    cache.put(inc("b", "cart", 1))  # older than what is cached: ignored, index unchanged
    assert len(cache.indexed(("ns", "checkout"))) == 2
    cache.drop(inc("a", "checkout", 4))
    assert [i["metadata"]["name"] for i in cache.indexed(("ns", "checkout"))] == ["b"]
    assert cache.indexed(("other", "checkout")) == []
