"""The sharding's pure rules: the shard of an object, the balanced assignment, Lease
liveness by observation, and one round's decision."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from paramedic.domain import sharding
from paramedic.domain.sharding import MEMBER, SHARD, Lease, Observations, assign, decide

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def member(holder: str, rv: str = "1", renewed: datetime = NOW, duration: float = 10) -> Lease:
    return Lease(sharding.member_lease(holder), MEMBER, holder, duration, renewed, rv)


def shard(s: int, holder: str, rv: str = "1") -> Lease:
    return Lease(sharding.shard_lease(s), SHARD, holder, 10, NOW, rv)


def seen_at(leases: list[Lease], mono: float = 100.0) -> Observations:
    obs = Observations()
    obs.see(leases, mono, NOW)
    return obs


# --- shards of objects -------------------------------------------------------------------
def test_a_service_and_its_incidents_share_a_shard():
    svc = sharding.shard_of("shop", "cart", 32)
    inc = {"metadata": {"namespace": "shop", "name": "cart-7"}, "spec": {"service": "cart"}}
    assert sharding.incident_shard(inc, 32) == svc
    # stable across processes: a hash of the text, never Python's salted hash()
    assert sharding.shard_of("shop", "cart", 32) == svc and 0 <= svc < 32


def test_an_incident_of_no_service_is_spread_by_its_own_name():
    bodies = [{"metadata": {"namespace": "ns", "name": f"alert-{i}"}, "spec": {}} for i in range(200)]
    shards = Counter(sharding.incident_shard(b, 8) for b in bodies)
    assert len(shards) == 8 and max(shards.values()) < 2 * 200 / 8


def test_member_lease_names_are_dns_labels_and_distinct():
    names = {sharding.member_lease(i) for i in ("host:123", "HOST:123", "paramedic-operator-7d9f-abc", "x" * 300, "")}
    assert len(names) == 5
    for name in names:
        assert len(name) <= 63 and name.startswith(sharding.MEMBER_PREFIX)
        assert all(c.isalnum() and c.islower() or c.isdigit() or c == "-" for c in name)


# --- assignment -----------------------------------------------------------------------------
@pytest.mark.parametrize("shards,members", [(32, 1), (32, 2), (32, 3), (32, 5), (7, 3), (3, 5), (1024, 7)])
def test_assignment_is_balanced_within_one_shard(shards, members):
    names = [f"op-{i}" for i in range(members)]
    got = assign(shards, names)
    assert sorted(got) == list(range(shards))
    counts = Counter(got.values())
    assert max(counts.values()) - min(counts.get(n, 0) for n in names) <= 1


def test_assignment_is_the_same_on_every_replica():
    assert assign(32, ["b", "a", "c"]) == assign(32, ["c", "b", "a", "a"])
    assert assign(32, []) == {}


def test_a_member_joining_moves_little_besides_its_own_share():
    before, after = assign(32, ["a", "b", "c"]), assign(32, ["a", "b", "c", "d"])
    moved = [s for s in range(32) if before[s] != after[s]]
    assert sum(1 for s in moved if after[s] == "d") == 8
    assert len(moved) <= 8 + 6  # the rounding of equal shares moves a few more at most


# --- liveness by observation ----------------------------------------------------------------
def test_a_lease_is_live_while_it_keeps_changing():
    obs = Observations()
    obs.see([member("a", "1")], 100.0, NOW)
    assert obs.live(member("a", "1"), 109.0)
    assert not obs.live(member("a", "1"), 110.5)  # unchanged for its whole duration
    obs.see([member("a", "2")], 110.5, NOW)
    assert obs.live(member("a", "2"), 115.0)


def test_liveness_needs_a_holder_and_a_duration():
    obs = seen_at([member("", "1"), member("a", "1", duration=0)])
    assert not obs.live(member("", "1"), 100.0) and not obs.live(member("a", "1", duration=0), 100.0)


def test_a_first_sight_is_backdated_by_its_age_less_the_skew_allowance():
    old = member("gone", renewed=NOW - timedelta(minutes=5))
    assert not seen_at([old]).live(old, 100.0), "a replica killed long ago holds nothing after a restart"
    fresh = member("alive", renewed=NOW - timedelta(seconds=3))
    obs = seen_at([fresh])
    assert obs.live(fresh, 100.0 + 9.9), "a few seconds old (or skewed) counts as just seen"
    skewed = member("ahead", renewed=NOW + timedelta(seconds=30))  # its clock runs ahead
    assert seen_at([skewed]).live(skewed, 109.0)


def test_observations_forget_deleted_leases():
    obs = seen_at([member("a")])
    obs.see([], 101.0, NOW)
    assert not obs.live(member("a"), 101.0)


# --- one round --------------------------------------------------------------------------
def test_alone_on_an_empty_cluster_it_takes_every_shard():
    me = member("me")
    d = decide("me", 4, [me], seen_at([me]), 100.0, member_valid=True)
    assert d.acquire == (0, 1, 2, 3) and d.held == frozenset() and d.members == ("me",)


def test_without_a_valid_member_lease_it_takes_and_hands_over_nothing_but_keeps_what_it_has():
    leases = [member("me"), member("other"), shard(0, "me"), shard(1, "me"), shard(2, "")]
    d = decide("me", 3, leases, seen_at(leases), 100.0, member_valid=False)
    # Its Leases still name it (acted on only while the fence holds): no churn for a lapse.
    assert d == sharding.Decision(held=frozenset({0, 1}), members=("other",))


def test_shards_assigned_to_a_live_newcomer_are_handed_over_unless_busy():
    leases = [member("a"), member("b")] + [shard(s, "a") for s in range(4)]
    obs = seen_at(leases)
    wanted = assign(4, ["a", "b"])
    to_b = tuple(s for s in range(4) if wanted[s] == "b")
    d = decide("a", 4, leases, obs, 100.0, member_valid=True)
    assert d.release == to_b and d.held == frozenset(range(4)) - set(to_b) and d.acquire == ()
    busy = decide("a", 4, leases, obs, 100.0, member_valid=True, busy=frozenset(to_b[:1]))
    assert busy.release == to_b[1:] and to_b[0] in busy.held
    # the newcomer waits while a live holder keeps them
    assert decide("b", 4, leases, obs, 100.0, member_valid=True).acquire == ()


def test_shards_of_a_dead_holder_are_taken_by_their_assignee():
    leases = [member("a"), member("b", "1")] + [shard(s, "b") for s in range(4)]
    obs = seen_at(leases, 100.0)
    later = [member("a", "2")] + leases[1:]  # a renews; b stops
    obs.see(later, 111.0, NOW)
    d = decide("a", 4, later, obs, 111.0, member_valid=True)
    assert d.acquire == (0, 1, 2, 3) and d.members == ("a",)


def test_a_released_shard_is_taken_by_its_assignee_only():
    leases = [member("a"), member("b"), shard(0, ""), shard(1, "")]
    obs = seen_at(leases)
    wanted = assign(2, ["a", "b"])
    for me in ("a", "b"):
        assert decide(me, 2, leases, obs, 100.0, member_valid=True).acquire == tuple(
            s for s in range(2) if wanted[s] == me)


def test_stale_member_leases_are_found_for_deletion():
    old = member("gone", renewed=NOW - timedelta(hours=1))
    live = member("a")
    obs = seen_at([old, live])
    assert sharding.stale_members([old, live], obs, 100.0, NOW, 600) == [old.name]


def test_lease_of_reads_a_lease_body_and_shrugs_at_junk():
    body = {"metadata": {"name": "paramedic-shard-7", "resourceVersion": "42", "labels": {sharding.LABEL: SHARD}},
            "spec": {"holderIdentity": "a", "leaseDurationSeconds": 10, "renewTime": "2026-12-07T12:00:00.123456Z",
                     "leaseTransitions": 3}}
    lease = Lease.of(body)
    assert (lease.shard, lease.holder, lease.duration, lease.transitions, lease.resource_version) == (7, "a", 10.0, 3, "42")
    junk = Lease.of({"metadata": {"name": "paramedic-shard-x", "labels": {sharding.LABEL: SHARD}},
                     "spec": {"leaseDurationSeconds": True, "renewTime": "soon", "leaseTransitions": "3"}})
    assert (junk.shard, junk.duration, junk.renewed, junk.transitions) == (None, 0.0, None, 0)
    assert Lease.of({"metadata": {"name": "paramedic-shard-1"}}).shard is None  # not labelled ours
