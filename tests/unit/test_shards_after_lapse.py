"""The Lease loop after its fence lapsed (renewals failing longer than the Lease): another
replica may have taken its shards meanwhile, so they are acted on again only once this
replica has confirmed it still holds them, not on what it knew before the lapse."""

from __future__ import annotations

import asyncio

from paramedic.domain import sharding
from tests.unit.test_shards_loop import SETTINGS, Clock, LeaseStore, held, replica, rounds


def test_shards_taken_during_a_lapse_are_not_acted_on_when_the_renewals_resume():
    async def run() -> None:
        store, clock = LeaseStore(), Clock()
        a, b = replica(store, clock, "a"), replica(store, clock, "b")
        assert a.member is not None and b.member is not None
        await rounds(clock, [a, b], 4)
        mine = held(a)
        assert mine and not mine & held(b)
        # a is cut off: its renewals (and its rounds) fail; b's go on. a's fence ends first,
        # then b judges a gone and takes a's shards.
        for _ in range(int(SETTINGS.lease_seconds // SETTINGS.lease_renew_seconds) + 2):
            b.member.renew()
            await b.tick()
            clock.now += SETTINGS.lease_renew_seconds
        assert not held(a), "no acting past the last renewal's validity"
        assert mine <= held(b), "b took a's shards once a's Lease expired"
        # a's connection is back: its thread renews before its next round lists the Leases.
        assert a.member.renew()
        assert not held(a) & held(b), f"both act on shards {sorted(held(a) & held(b))}"
        await rounds(clock, [a, b], 6)
        assert not held(a) & held(b) and held(a) | held(b) == set(range(SETTINGS.shards))
        assert held(a) and held(b), "the two share the shards again"
        assert sum(store.holders().values()) == SETTINGS.shards
        assert {lease for lease in store.items if lease.startswith(sharding.SHARD_PREFIX)}
    asyncio.run(run())
