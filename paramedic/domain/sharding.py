"""How operator replicas share the work: shards, who should hold each, and what Leases say.

The work is cut into a fixed number of shards. A MonitoredService and all its incidents
fall in one shard (a stable hash of namespace and service), so one replica probes, plans,
pages and remediates each service. Replicas coordinate through `coordination.k8s.io`
Leases in Paramedic's namespace and nothing else:

- each replica renews its *member* Lease (`paramedic-member-…`, holder = its identity);
  a member is live while its Lease keeps changing;
- each shard has a Lease (`paramedic-shard-<i>`) naming its holder; the holder keeps it
  while its own member Lease is live, and hands it over by clearing the holder;
- every replica computes the same balanced assignment of shards to live members
  (`assign`): it takes the free shards assigned to it and releases held shards assigned
  to another live member (`decide`).

Liveness is judged by when a Lease was *seen to change*, on the observer's monotonic
clock, as client-go's leader election does: clocks of replicas need not agree. A Lease
seen for the first time is backdated by its age by wall clock less `SKEW_ALLOWANCE`,
so that a replica killed long ago does not hold its shards for another lease duration
after a restart, while a few seconds of clock skew still cannot cut a live holder short.

Pure: no I/O, no clock reads (times are arguments).
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .resources import Incident, mapping, text
from .timeutil import parse_or_none

LABEL = "paramedic.dev/sharding"
"""Label of every Lease of the sharding; its value says which kind."""
SHARD, MEMBER = "shard", "member"
SHARD_PREFIX = "paramedic-shard-"
MEMBER_PREFIX = "paramedic-member-"
SKEW_ALLOWANCE = 5.0
"""Seconds of clock difference between replicas tolerated when backdating a first sight."""


def _hash(text_: str) -> int:
    return int.from_bytes(hashlib.sha256(text_.encode()).digest()[:8], "big")


@functools.lru_cache(maxsize=1 << 16)  # asked for every object at each look over the caches
def shard_of(namespace: str, name: str, shards: int) -> int:
    """The shard of a service (by name), or of an object belonging to no service (by its own name)."""
    return _hash(f"{namespace}/{name}") % shards


def incident_shard(body: Mapping[str, Any], shards: int) -> int:
    """An incident goes with its service; an incident of no service is spread by its own name."""
    inc = Incident(body)
    return shard_of(inc.namespace, inc.service or inc.name, shards)


def shard_lease(shard: int) -> str:
    return f"{SHARD_PREFIX}{shard}"


def member_lease(identity: str) -> str:
    """A DNS-1123 name for the member Lease of an identity (any text: a pod name, host:pid)."""
    slug = re.sub(r"[^a-z0-9-]+", "-", identity.lower()).strip("-")[:36].strip("-") or "replica"
    return f"{MEMBER_PREFIX}{slug}-{hashlib.sha256(identity.encode()).hexdigest()[:8]}"


def assign(shards: int, members: Iterable[str]) -> dict[int, str]:
    """Each shard's member: the same answer on every replica that sees the same members.

    Rendezvous hashing ranks the members for each shard; the first ranked member with room
    takes it, room being an equal share. Every member gets its fair share within one shard,
    and a member joining or leaving moves little besides its own share."""
    live = sorted(set(members))
    if not live:
        return {}
    share, extra = divmod(shards, len(live))
    # Exact quotas (the first `extra` members by name get one more), so the quotas sum to the shards.
    room = {m: share + (1 if i < extra else 0) for i, m in enumerate(live)}
    out: dict[int, str] = {}
    for s in range(shards):
        for member in sorted(live, key=lambda m: _hash(f"{s}|{m}"), reverse=True):
            if room[member] > 0:
                room[member] -= 1
                out[s] = member
                break
    return out


@dataclass(frozen=True)
class Lease:
    """What the sharding reads of a coordination.k8s.io/v1 Lease."""

    name: str
    kind: str  # SHARD or MEMBER
    holder: str
    duration: float
    renewed: datetime | None
    resource_version: str
    transitions: int = 0

    @classmethod
    def of(cls, body: Mapping[str, Any]) -> Lease:
        meta, spec = mapping(body.get("metadata")), mapping(body.get("spec"))
        duration = spec.get("leaseDurationSeconds")
        transitions = spec.get("leaseTransitions")
        return cls(
            name=text(meta.get("name")),
            kind=text(mapping(meta.get("labels")).get(LABEL)),
            holder=text(spec.get("holderIdentity")),
            duration=float(duration) if isinstance(duration, int) and not isinstance(duration, bool) else 0.0,
            renewed=parse_or_none(spec.get("renewTime")),
            resource_version=text(meta.get("resourceVersion")),
            transitions=transitions if isinstance(transitions, int) and not isinstance(transitions, bool) else 0,
        )

    @property
    def shard(self) -> int | None:
        if self.kind != SHARD or not self.name.startswith(SHARD_PREFIX):
            return None
        number = self.name[len(SHARD_PREFIX):]
        return int(number) if number.isdigit() else None


@dataclass
class Observations:
    """When each Lease was last seen to change (monotonic seconds of this observer)."""

    _seen: dict[str, tuple[str, float]] = field(default_factory=dict)

    def see(self, leases: Iterable[Lease], mono: float, wall: datetime) -> None:
        present = set()
        for lease in leases:
            present.add(lease.name)
            before = self._seen.get(lease.name)
            if before is not None and before[0] == lease.resource_version:
                continue
            at = mono
            if before is None and lease.renewed is not None:
                age = (wall - lease.renewed).total_seconds() - SKEW_ALLOWANCE
                at = mono - max(0.0, age)
            self._seen[lease.name] = (lease.resource_version, at)
        for gone in set(self._seen) - present:
            del self._seen[gone]

    def live(self, lease: Lease, mono: float) -> bool:
        """A Lease with a holder, seen to change within its duration."""
        seen = self._seen.get(lease.name)
        return bool(lease.holder) and lease.duration > 0 and seen is not None and mono - seen[1] < lease.duration


@dataclass(frozen=True)
class Decision:
    acquire: tuple[int, ...] = ()  # free shards assigned to this replica: take them
    release: tuple[int, ...] = ()  # held shards assigned to another live member: hand them over
    held: frozenset[int] = frozenset()  # shards whose Lease names this replica and stays so (before acquiring)
    members: tuple[str, ...] = ()  # live members, this replica included


def decide(me: str, shards: int, leases: Sequence[Lease], seen: Observations, mono: float,
           member_valid: bool, busy: frozenset[int] = frozenset()) -> Decision:
    """One round of the balancing, from the Leases listed and what this replica knows.

    `member_valid`: this replica's own member Lease was renewed recently enough to act on.
    `busy`: held shards with work under way (a remediation running, a result unrecorded);
    they are kept until it is done, so a handover never interrupts it."""
    members = {lease.holder for lease in leases if lease.kind == MEMBER and seen.live(lease, mono)}
    members.discard(me)
    if member_valid:
        members.add(me)
    wanted = assign(shards, members)
    by_shard = {lease.shard: lease for lease in leases if lease.shard is not None}
    acquire, release, held = [], [], set()
    for s in range(shards):
        lease = by_shard.get(s)
        holder = lease.holder if lease is not None else ""
        target = wanted.get(s)
        if holder == me:
            if member_valid and target is not None and target != me and s not in busy:
                release.append(s)
            else:
                held.add(s)  # still ours, though acted on only while the fence holds
        elif not holder or holder not in members:
            if member_valid and target == me:
                acquire.append(s)
    return Decision(tuple(acquire), tuple(release), frozenset(held), tuple(sorted(members)))


def stale_members(leases: Sequence[Lease], seen: Observations, mono: float, wall: datetime,
                  older_than: float) -> list[str]:
    """Member Leases of replicas gone for longer than `older_than` seconds: to delete."""
    return [lease.name for lease in leases
            if lease.kind == MEMBER and not seen.live(lease, mono) and lease.renewed is not None
            and (wall - lease.renewed).total_seconds() > older_than]
