"""Gatherings shared by the incidents of one target (`evidence_io.Gatherer`)."""

from __future__ import annotations

import asyncio

import pytest

from paramedic import evidence_io, kube


class FakeApi:
    """The reads of one gathering, counted; `gate` holds them until set."""

    def __init__(self) -> None:
        self.reads = 0
        self.gate = asyncio.Event()
        self.gate.set()
        self.fail = False

    async def get_or_none(self, res: kube.Resource, name: str, namespace: str | None = None) -> dict | None:
        self.reads += 1
        await self.gate.wait()
        if self.fail:
            raise kube.Unavailable("API down")
        return {"metadata": {"name": name, "uid": "u1"}, "spec": {"selector": {"matchLabels": {"app": name}}}}

    async def list(self, res: kube.Resource, namespace: str | None = None, **_: object) -> list[dict]:
        self.reads += 1
        return []


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def gatherer(api: FakeApi, clock: Clock, share: float = 15.0) -> evidence_io.Gatherer:
    return evidence_io.Gatherer(api, concurrency=2, share_seconds=share, clock=clock)  # type: ignore[arg-type]


TARGET = {"kind": "Deployment", "name": "checkout"}
ONE_GATHERING = 4  # the workload, its ReplicaSets, its pods, the Warning Events


def test_incidents_of_one_target_asking_at_once_share_one_gathering():
    async def main() -> None:
        api, clock = FakeApi(), Clock()
        g = gatherer(api, clock)
        api.gate.clear()
        waiting = [asyncio.ensure_future(g.gather("shop", TARGET)) for _ in range(50)]
        await asyncio.sleep(0)
        api.gate.set()
        found = await asyncio.gather(*waiting)
        assert api.reads == ONE_GATHERING
        assert all(f is found[0] for f in found) and found[0]["target"] == "Deployment/checkout"
    asyncio.run(main())


def test_a_recent_gathering_is_handed_out_again_then_gathered_afresh():
    async def main() -> None:
        api, clock = FakeApi(), Clock()
        g = gatherer(api, clock)
        first = await g.gather("shop", TARGET)
        clock.t += 14
        assert await g.gather("shop", TARGET) is first and api.reads == ONE_GATHERING
        clock.t += 2
        assert await g.gather("shop", TARGET) is not first and api.reads == 2 * ONE_GATHERING
    asyncio.run(main())


def test_other_targets_namespaces_and_log_settings_are_gathered_on_their_own():
    async def main() -> None:
        api, clock = FakeApi(), Clock()
        g = gatherer(api, clock)
        await g.gather("shop", TARGET)
        await g.gather("shop", {"kind": "Deployment", "name": "cart"})
        await g.gather("other", TARGET)
        assert api.reads == 3 * ONE_GATHERING
    asyncio.run(main())


def test_a_failure_reaches_every_waiter_and_is_not_handed_out_again():
    async def main() -> None:
        api, clock = FakeApi(), Clock()
        g = gatherer(api, clock)
        api.fail = True
        api.gate.clear()
        waiting = [asyncio.ensure_future(g.gather("shop", TARGET)) for _ in range(3)]
        await asyncio.sleep(0)
        api.gate.set()
        results = await asyncio.gather(*waiting, return_exceptions=True)
        assert all(isinstance(r, kube.Unavailable) for r in results) and api.reads == 1
        api.fail = False
        assert (await g.gather("shop", TARGET))["target"] == "Deployment/checkout"
    asyncio.run(main())


def test_a_cancelled_waiter_does_not_cancel_the_gathering_of_the_others():
    async def main() -> None:
        api, clock = FakeApi(), Clock()
        g = gatherer(api, clock)
        api.gate.clear()
        first = asyncio.ensure_future(g.gather("shop", TARGET))
        second = asyncio.ensure_future(g.gather("shop", TARGET))
        await asyncio.sleep(0)
        first.cancel()
        api.gate.set()
        assert (await second)["target"] == "Deployment/checkout"
        with pytest.raises(asyncio.CancelledError):
            await first
    asyncio.run(main())
