import asyncio

from paramedic.operator.runtime import SideEffects


def test_one_task_per_key_results_kept_for_owners_only():
    async def scenario():
        woken = []
        effects = SideEffects(done_callback=woken.append)
        calls = []

        async def act(n):
            calls.append(n)
            await asyncio.sleep(0.01)
            return n

        effects.spawn("a", ("ns", "inc"), act(1))
        effects.spawn("a", ("ns", "inc"), act(2))  # already running: not started again
        effects.spawn("fire", None, act(3))
        await asyncio.sleep(0.05)
        effects.spawn("a", ("ns", "inc"), act(4))  # result not taken yet: not started again
        return calls, effects.peek("a"), effects.has_result("fire"), woken

    calls, result, kept_fire, woken = asyncio.run(scenario())
    assert calls == [1, 3] and result == 1 and not kept_fire
    assert woken.count(("ns", "inc")) == 1
