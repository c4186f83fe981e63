"""This replica's shards, held through Leases in Paramedic's namespace (`paramedic.domain.sharding`).

Every `lease_renew_seconds` the replica lists the sharding's Leases, renews its member
Lease, and follows `sharding.decide`: it takes the free shards assigned to it and hands
over the ones assigned to another live replica. `holds` is the fence every write that
acts checks: a shard counts as held only while the member Lease was renewed less than
`lease_seconds - lease_renew_seconds` ago, so a replica cut off from the API server stops
acting before any other replica may judge its Lease expired and take its shards.

Standalone (`paramedic-operator --standalone`) holds every shard and writes no Lease.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import time
from collections.abc import Callable

from paramedic import kube, metrics
from paramedic.domain import sharding
from paramedic.domain.sharding import Lease
from paramedic.domain.timeutil import utcnow
from paramedic.settings import Settings

log = logging.getLogger(__name__)

Moved = Callable[[frozenset[int], frozenset[int]], None]
"""Called with (shards gained, shards lost) whenever what this replica acts on changes."""

STALE_MEMBER_SECONDS = 600.0
"""Member Leases of replicas gone this long are deleted (by any live replica)."""


def default_identity(settings: Settings, env: dict[str, str] | None = None) -> str:
    """PARAMEDIC_IDENTITY, else the pod's name (the chart's downward API), else host:pid."""
    env = dict(os.environ) if env is None else env
    return settings.identity or env.get("POD_NAME", "") or f"{socket.gethostname()}:{os.getpid()}"


def _nothing(gained: frozenset[int], lost: frozenset[int]) -> None:
    return None


def _idle() -> frozenset[int]:
    return frozenset()


class Shards:
    def __init__(self, settings: Settings, client: kube.AsyncKubeClient, identity: str, standalone: bool = False,
                 moved: Moved = _nothing, busy: Callable[[], frozenset[int]] = _idle,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.client = client
        self.identity = identity
        self.standalone = standalone
        self.count = settings.shards
        self._moved = moved
        self._busy = busy
        self._clock = clock
        self._seen = sharding.Observations()
        self._held: frozenset[int] = frozenset(range(self.count)) if standalone else frozenset()
        self._acting: frozenset[int] = self._held
        self._valid_until = math.inf if standalone else 0.0
        self._task: asyncio.Task[None] | None = None
        self._member = sharding.member_lease(identity)
        self._duration = max(1, math.ceil(settings.lease_seconds))
        metrics.SHARDS_HELD.labels(identity).set(len(self._held))

    # --- the fence ----------------------------------------------------------------------
    def holds(self, shard: int) -> bool:
        """Whether this replica may act on `shard` now."""
        return shard in self._held and self._clock() < self._valid_until

    def acting(self) -> frozenset[int]:
        return self._held if self._clock() < self._valid_until else frozenset()

    # --- running ------------------------------------------------------------------------
    def start(self) -> None:
        if not self.standalone:
            self._task = asyncio.create_task(self._loop(), name="shards")

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # an API outage is a missed renewal: the fence covers it
                log.exception("shard round failed")
                self._report()
            await asyncio.sleep(self.settings.lease_renew_seconds)

    async def tick(self) -> None:
        """One round: list, renew the member Lease, hand over and take shards."""
        ns = self.settings.namespace
        items = await self.client.list(kube.LEASES, ns)
        leases = [lease for lease in map(Lease.of, items) if lease.kind in (sharding.SHARD, sharding.MEMBER)]
        self._seen.see(leases, self._clock(), utcnow())
        await self._renew(next((lease for lease in leases if lease.name == self._member), None))
        mono = self._clock()
        decision = sharding.decide(self.identity, self.count, leases, self._seen, mono,
                                   member_valid=mono < self._valid_until, busy=self._busy())
        # What is no longer ours stops first, then its Lease is handed over.
        self._held = decision.held
        self._report()
        by_name = {lease.name: lease for lease in leases}
        for s in decision.release:
            await self._write_shard(by_name[sharding.shard_lease(s)], holder="")
            metrics.SHARD_MOVES.labels(self.identity, "released").inc()
        taken = set()
        for s in decision.acquire:
            if await self._write_shard(by_name.get(sharding.shard_lease(s)), holder=self.identity, shard=s):
                taken.add(s)
                metrics.SHARD_MOVES.labels(self.identity, "taken").inc()
        if taken:
            self._held = self._held | taken
            log.info("took shards %s (members: %s)", sorted(taken), ", ".join(decision.members))
        if decision.release:
            log.info("handed over shards %s (members: %s)", sorted(decision.release), ", ".join(decision.members))
        self._report()
        for name in sharding.stale_members(leases, self._seen, self._clock(), utcnow(), STALE_MEMBER_SECONDS):
            await self.client.delete(kube.LEASES, name, ns)

    def _report(self) -> None:
        """Tell the operator what it now acts on (gained, lost), once per change."""
        acting = self.acting()
        gained, lost = acting - self._acting, self._acting - acting
        self._acting = acting
        metrics.SHARDS_HELD.labels(self.identity).set(len(acting))
        if gained or lost:
            self._moved(gained, lost)

    async def _renew(self, mine: Lease | None) -> None:
        now = utcnow().strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        spec = {"holderIdentity": self.identity, "leaseDurationSeconds": self._duration, "renewTime": now}
        sent = self._clock()
        try:
            if mine is None:
                await self.client.create(kube.LEASES, {
                    "metadata": {"name": self._member, "labels": {sharding.LABEL: sharding.MEMBER}},
                    "spec": {**spec, "acquireTime": now}}, self.settings.namespace)
            else:
                await self.client.patch(kube.LEASES, self._member, {
                    "metadata": {"resourceVersion": mine.resource_version}, "spec": spec}, self.settings.namespace)
        except (kube.ApiError, kube.Unavailable) as exc:
            # A Conflict here means another process renews this identity's Lease: two replicas
            # with one name would each think the shards theirs.
            log.warning("could not renew member Lease %s (%s): shards stop being acted on %.0fs after the last renewal",
                        self._member, exc, self.settings.lease_seconds - self.settings.lease_renew_seconds)
            return
        self._valid_until = sent + self.settings.lease_seconds - self.settings.lease_renew_seconds

    async def _write_shard(self, lease: Lease | None, holder: str, shard: int | None = None) -> bool:
        """Take (holder = this replica) or hand over (holder empty) a shard's Lease, guarded by
        the resourceVersion read: of two replicas racing for it, one wins."""
        now = utcnow().strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        spec: dict[str, object] = {"holderIdentity": holder or None, "leaseDurationSeconds": self._duration,
                                   "renewTime": now}
        if holder:
            spec["acquireTime"] = now
        try:
            if lease is None:
                await self.client.create(kube.LEASES, {
                    "metadata": {"name": sharding.shard_lease(shard or 0), "labels": {sharding.LABEL: sharding.SHARD}},
                    "spec": {**spec, "leaseTransitions": 0}}, self.settings.namespace)
            else:
                if holder:
                    spec["leaseTransitions"] = lease.transitions + 1
                await self.client.patch(kube.LEASES, lease.name, {
                    "metadata": {"resourceVersion": lease.resource_version}, "spec": spec}, self.settings.namespace)
        except kube.Conflict:
            return False  # another replica moved it first; the next round sees who
        except (kube.ApiError, kube.Unavailable) as exc:
            log.warning("could not write shard Lease %s: %s", lease.name if lease else shard, exc)
            return False
        return True

    async def stop(self) -> None:
        """Hand every shard over and leave (a clean stop moves the work at once)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.standalone:
            return
        held, self._held, self._valid_until = self._held, frozenset(), 0.0
        ns = self.settings.namespace
        try:
            async with asyncio.timeout(5):
                for s in sorted(held):
                    await self.client.patch(kube.LEASES, sharding.shard_lease(s),
                                            {"spec": {"holderIdentity": None}}, ns)
                await self.client.delete(kube.LEASES, self._member, ns)
            log.info("handed over shards %s and left", sorted(held))
        except (TimeoutError, kube.ApiError, kube.Unavailable) as exc:
            log.warning("could not hand the shards over on the way out (%s): they move when the Lease expires", exc)
