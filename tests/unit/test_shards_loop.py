"""The Lease loop (`operator/shards.py`) against an in-memory Lease store with the API
server's optimistic concurrency, on a fake clock: replicas split the shards, a dead one's
shards move after its Lease expires, the fence ends before anyone may take them, and a
clean stop hands everything over at once."""

from __future__ import annotations

import asyncio
import copy
import itertools
from collections import Counter
from typing import Any

from paramedic import kube
from paramedic.operator.shards import MemberLease, Shards
from paramedic.settings import Settings

SETTINGS = Settings(namespace="paramedic", shards=8, lease_seconds=10, lease_renew_seconds=2)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class LeaseStore:
    """Leases as the API server keeps them: a create of an existing name and a patch with a
    stale resourceVersion are Conflicts; `down` makes every call fail as an outage. The
    shards' loop calls it asynchronously, the member Lease's thread synchronously (`sync`)."""

    def __init__(self) -> None:
        self.items: dict[str, dict[str, Any]] = {}
        self._rv = itertools.count(1)
        self.down = False
        self.writes = 0
        self.sync = SyncCalls(self)

    def _check(self) -> None:
        if self.down:
            raise kube.Unavailable("the API server is down")

    def get_or_none(self, res: kube.Resource, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        self._check()
        return copy.deepcopy(self.items.get(name))

    def create_now(self, body: dict[str, Any]) -> dict[str, Any]:
        self._check()
        name = body["metadata"]["name"]
        if name in self.items:
            raise kube.Conflict(409, f"{name} exists")
        self.writes += 1
        obj = copy.deepcopy(body)
        obj["metadata"]["resourceVersion"] = str(next(self._rv))
        self.items[name] = obj
        return copy.deepcopy(obj)

    def patch_now(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        self._check()
        obj = self.items.get(name)
        if obj is None:
            raise kube.NotFound(404, name)
        rv = patch.get("metadata", {}).get("resourceVersion")
        if rv is not None and rv != obj["metadata"]["resourceVersion"]:
            raise kube.Conflict(409, f"{name} changed")
        self.writes += 1
        for k, v in patch.get("spec", {}).items():
            if v is None:
                obj["spec"].pop(k, None)
            else:
                obj["spec"][k] = v
        obj["metadata"]["resourceVersion"] = str(next(self._rv))
        return copy.deepcopy(obj)

    def delete_now(self, name: str) -> None:
        self._check()
        self.items.pop(name, None)

    async def list(self, res: kube.Resource, namespace: str | None = None, **_: Any) -> list[dict[str, Any]]:
        self._check()
        return [copy.deepcopy(v) for v in self.items.values()]

    async def create(self, res: kube.Resource, body: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        return self.create_now(body)

    async def patch(self, res: kube.Resource, name: str, patch: dict[str, Any], namespace: str | None = None,
                    **_: Any) -> dict[str, Any]:
        return self.patch_now(name, patch)

    async def delete(self, res: kube.Resource, name: str, namespace: str | None = None) -> None:
        self.delete_now(name)

    def holders(self) -> Counter:
        return Counter(v["spec"].get("holderIdentity", "") for k, v in self.items.items()
                       if k.startswith("paramedic-shard-"))


class SyncCalls:
    def __init__(self, store: LeaseStore) -> None:
        self.store = store

    def get_or_none(self, res: kube.Resource, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        return self.store.get_or_none(res, name, namespace)

    def create(self, res: kube.Resource, body: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        return self.store.create_now(body)

    def patch(self, res: kube.Resource, name: str, patch: Any, namespace: str | None = None) -> dict[str, Any]:
        return self.store.patch_now(name, patch)

    def delete(self, res: kube.Resource, name: str, namespace: str | None = None) -> None:
        self.store.delete_now(name)


def replica(store: LeaseStore, clock: Clock, name: str, busy: frozenset[int] = frozenset()) -> Shards:
    member = MemberLease(SETTINGS, store.sync, name, clock=clock)
    return Shards(SETTINGS, store, name, member=member, moved=lambda g, lost: None,  # type: ignore[arg-type]
                  busy=lambda: busy, clock=clock)


async def rounds(clock: Clock, replicas: list[Shards], n: int = 1, step: float = 2.0) -> None:
    """`n` rounds of each replica: its member Lease renewed (its thread's job), then its shards."""
    for _ in range(n):
        for r in replicas:
            assert r.member is not None
            r.member.renew()
            await r.tick()
        clock.now += step


def held(r: Shards) -> set[int]:
    return {s for s in range(SETTINGS.shards) if r.holds(s)}


def test_two_replicas_split_the_shards_and_never_both_hold_one():
    async def run() -> None:
        store, clock = LeaseStore(), Clock()
        a = replica(store, clock, "a")
        await rounds(clock, [a], 1)
        assert held(a) == set(range(8)), "alone, it takes every shard at once"
        b = replica(store, clock, "b")
        for _ in range(4):
            await rounds(clock, [a, b])
            assert not held(a) & held(b)
        assert len(held(a)) == len(held(b)) == 4
        assert store.holders() == Counter({"a": 4, "b": 4})
    asyncio.run(run())


def test_a_dead_replicas_shards_move_only_after_its_fence_has_ended():
    async def run() -> None:
        store, clock = LeaseStore(), Clock()
        a, b = replica(store, clock, "a"), replica(store, clock, "b")
        await rounds(clock, [a, b], 4)
        orphans = held(b)
        assert orphans
        # b stops renewing (killed or cut off); a keeps going.
        for _ in range(15):  # its Lease lasts 10 s from when a last saw it change
            await rounds(clock, [a], 1, step=1.0)
            if orphans & held(a):
                assert not held(b), "taken while the old holder could still act"
        assert held(a) == set(range(8))
        assert not held(b)
    asyncio.run(run())


def test_the_fence_ends_during_an_outage_and_holding_resumes_after_it():
    async def run() -> None:
        store, clock = LeaseStore(), Clock()
        a = replica(store, clock, "a")
        await rounds(clock, [a])
        store.down = True
        clock.now += SETTINGS.lease_seconds - SETTINGS.lease_renew_seconds - 2.5
        assert held(a) == set(range(8)), "a missed renewal or two changes nothing"
        clock.now += 1.0
        assert held(a) == set(), "no acting past the last renewal's validity"
        store.down = False
        await rounds(clock, [a])
        assert held(a) == set(range(8))
    asyncio.run(run())


def test_busy_shards_are_kept_until_their_work_is_done():
    async def run() -> None:
        store, clock = LeaseStore(), Clock()
        busy = frozenset(range(8))
        a = replica(store, clock, "a", busy=busy)
        await rounds(clock, [a])
        b = replica(store, clock, "b")
        await rounds(clock, [a, b], 3)
        assert held(a) == set(range(8)) and not held(b)
    asyncio.run(run())


def test_a_clean_stop_hands_over_at_once():
    async def run() -> None:
        store, clock = LeaseStore(), Clock()
        a = replica(store, clock, "a")
        await rounds(clock, [a])
        await a.stop()
        assert not held(a)
        assert store.holders() == Counter({"": 8}) and not [k for k in store.items if "member" in k]
        c = replica(store, clock, "c")
        await rounds(clock, [c])
        assert held(c) == set(range(8))
    asyncio.run(run())


def test_the_idle_cost_is_one_list_and_one_renewal_a_round():
    async def run() -> None:
        store, clock = LeaseStore(), Clock()
        a, b = replica(store, clock, "a"), replica(store, clock, "b")
        await rounds(clock, [a, b], 5)
        before = store.writes
        await rounds(clock, [a, b], 10)
        assert store.writes - before == 2 * 10, "only the member Leases are written when nothing moves"


def test_a_lapse_of_the_fence_alone_moves_nothing():
    async def run() -> None:
        store, clock = LeaseStore(), Clock()
        moves: list[tuple[frozenset[int], frozenset[int]]] = []
        member = MemberLease(SETTINGS, store.sync, "a", clock=clock)
        a = Shards(SETTINGS, store, "a", member=member, moved=lambda g, lost: moves.append((g, lost)),  # type: ignore[arg-type]
                   clock=clock)
        await rounds(clock, [a])
        assert moves == [(frozenset(range(8)), frozenset())]
        clock.now += 20  # the event loop stalled, no renewal: no acting, but no churn either
        assert not held(a)
        await a.tick()
        await rounds(clock, [a])
        assert held(a) == set(range(8)) and len(moves) == 1
    asyncio.run(run())
    asyncio.run(run())
