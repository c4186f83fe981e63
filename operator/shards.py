"""This replica's shards, held through Leases in Paramedic's namespace (`paramedic.domain.sharding`).

Every `lease_renew_seconds` the replica renews its member Lease (`MemberLease`, on a thread
of its own, so a busy event loop cannot delay it into looking dead), and lists the sharding's
Leases and follows `sharding.decide`: it takes the free shards assigned to it and hands
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
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

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


class LeaseApi(Protocol):
    """The synchronous calls the member Lease makes (`paramedic.kube.KubeClient` has them)."""

    def get_or_none(self, res: kube.Resource, name: str, namespace: str | None = None) -> dict | None: ...

    def create(self, res: kube.Resource, body: dict[str, Any], namespace: str | None = None) -> dict[str, Any]: ...

    def patch(self, res: kube.Resource, name: str, patch: Any, namespace: str | None = None) -> dict[str, Any]: ...

    def delete(self, res: kube.Resource, name: str, namespace: str | None = None) -> None: ...


def _micro_now() -> str:
    return utcnow().strftime("%Y-%m-%dT%H:%M:%S.%fZ")  # metav1.MicroTime


def _lease_duration(settings: Settings) -> int:
    return max(1, math.ceil(settings.lease_seconds))  # the Lease API takes whole seconds


class MemberLease:
    """This replica's member Lease: renewed every `lease_renew_seconds` by `run` on its own
    thread; `valid_until` (monotonic) ends the fence when renewals stop succeeding."""

    def __init__(self, settings: Settings, client: LeaseApi, identity: str,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.client = client
        self.identity = identity
        self.name = sharding.member_lease(identity)
        self.valid_until = 0.0
        self.tenure = 0
        """Counts unbroken runs of validity: a renewal after the fence lapsed (or the first) starts one."""
        self._clock = clock
        self._rv: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._duration = _lease_duration(settings)

    def renew(self) -> bool:
        now = _micro_now()
        spec = {"holderIdentity": self.identity, "leaseDurationSeconds": self._duration, "renewTime": now}
        ns = self.settings.namespace
        sent = self._clock()
        try:
            if self._rv is None:
                found = self.client.get_or_none(kube.LEASES, self.name, ns)
                if found is None:
                    written = self.client.create(kube.LEASES, {
                        "metadata": {"name": self.name, "labels": {sharding.LABEL: sharding.MEMBER}},
                        "spec": {**spec, "acquireTime": now}}, ns)
                    self._rv = str(written["metadata"]["resourceVersion"])
                    self._valid_from(sent)
                    return True
                self._rv = str(found["metadata"]["resourceVersion"])
            written = self.client.patch(kube.LEASES, self.name, {
                "metadata": {"resourceVersion": self._rv}, "spec": spec}, ns)
            self._rv = str(written["metadata"]["resourceVersion"])
        except (kube.ApiError, kube.Unavailable) as exc:
            # A Conflict means someone else wrote it: another process with this identity, whose
            # replica would also think the shards its own. Read it again next time.
            self._rv = None
            log.warning("could not renew member Lease %s (%s): shards stop being acted on %.0fs after the last renewal",
                        self.name, exc, self.settings.lease_seconds - self.settings.lease_renew_seconds)
            return False
        self._valid_from(sent)
        return True

    def _valid_from(self, sent: float) -> None:
        if sent >= self.valid_until:
            self.tenure += 1
        self.valid_until = sent + self.settings.lease_seconds - self.settings.lease_renew_seconds

    def start(self) -> None:
        self.renew()
        self._thread = threading.Thread(target=self._run, name="member-lease", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.settings.lease_renew_seconds):
            try:
                self.renew()
            except Exception:  # never let the renewals die quietly
                log.exception("renewing member Lease %s failed", self.name)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.settings.api_timeout_seconds + 1)
        self.valid_until = 0.0

    def leave(self) -> None:
        """Delete the Lease (a clean stop): the others need not wait for it to expire."""
        self.stop()
        self.client.delete(kube.LEASES, self.name, self.settings.namespace)


class Shards:
    def __init__(self, settings: Settings, client: kube.AsyncKubeClient, identity: str,
                 member: MemberLease | None = None, moved: Moved = _nothing,
                 busy: Callable[[], frozenset[int]] = _idle, clock: Callable[[], float] = time.monotonic) -> None:
        """`member` None: standalone, every shard held and no Lease written."""
        self.settings = settings
        self.client = client
        self.identity = identity
        self.member = member
        self.standalone = member is None
        self.count = settings.shards
        self._moved = moved
        self._busy = busy
        self._clock = clock
        self._seen = sharding.Observations()
        self._held: frozenset[int] = frozenset(range(self.count)) if self.standalone else frozenset()
        self._acting: frozenset[int] = self._held
        self._task: asyncio.Task[None] | None = None
        self._tenure = 0  # the member Lease's tenure in which `_held` was last confirmed
        self._duration = _lease_duration(settings)
        metrics.SHARDS_HELD.labels(identity).set(len(self._held))

    # --- the fence ----------------------------------------------------------------------
    def _valid(self) -> bool:
        # After a lapse, the shards are acted on again only once a round has confirmed them
        # (another replica may have taken them meanwhile).
        return self.member is None or (self._clock() < self.member.valid_until and self.member.tenure == self._tenure)

    def holds(self, shard: int) -> bool:
        """Whether this replica may act on `shard` now."""
        return shard in self._held and self._valid()

    # --- running ------------------------------------------------------------------------
    async def start(self) -> None:
        if self.member is not None:
            await asyncio.to_thread(self.member.start)
            self._task = asyncio.create_task(self._loop(), name="shards")

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # an API outage: the member Lease's fence covers it
                log.exception("shard round failed")
            await asyncio.sleep(self.settings.lease_renew_seconds)

    async def tick(self) -> None:
        """One round: list the Leases, hand over and take shards (all writes at once)."""
        ns = self.settings.namespace
        tenure = self.member.tenure if self.member is not None else 0
        items = await self.client.list(kube.LEASES, ns)
        leases = [lease for lease in map(Lease.of, items) if lease.kind in (sharding.SHARD, sharding.MEMBER)]
        mono = self._clock()
        self._seen.see(leases, mono, utcnow())
        valid = self.member is None or mono < self.member.valid_until
        decision = sharding.decide(self.identity, self.count, leases, self._seen, mono,
                                   member_valid=valid, busy=self._busy())
        # A new tenure (a start, or renewals resumed after a lapse): another replica may be
        # taking the shards this list still shows as ours, so they are taken again through
        # writes their Lease's resourceVersion guards (of two writers, one fails).
        # Meanwhile `holds` stays false for them (the tenure is not confirmed yet).
        retake = decision.held if valid and tenure != self._tenure else frozenset()
        # What is no longer ours stops first, then its Lease is handed over.
        self._held = decision.held
        self._report()
        by_name = {lease.name: lease for lease in leases}
        await asyncio.gather(*(self._write_shard(by_name[sharding.shard_lease(s)], holder="")
                               for s in decision.release))
        if decision.release:
            metrics.SHARD_MOVES.labels(self.identity, "released").inc(len(decision.release))
            log.info("handed over shards %s (members: %s)", sorted(decision.release), ", ".join(decision.members))
        wanted = (*decision.acquire, *sorted(retake))
        won = await asyncio.gather(*(self._write_shard(by_name.get(sharding.shard_lease(s)), holder=self.identity,
                                                       shard=s) for s in wanted))
        answers = dict(zip(wanted, won, strict=True))
        taken = {s for s in decision.acquire if answers[s] is True}
        # A re-take refused (another replica has it) or unanswered: not acted on; the tenure is
        # confirmed only once every re-take got a definite answer.
        self._held = self._held - {s for s in retake if answers[s] is not True}
        if valid and all(answers[s] is not None for s in retake):
            self._tenure = tenure
        if taken:
            self._held = self._held | taken
            metrics.SHARD_MOVES.labels(self.identity, "taken").inc(len(taken))
            log.info("took shards %s (members: %s)", sorted(taken), ", ".join(decision.members))
        self._report()
        for name in sharding.stale_members(leases, self._seen, self._clock(), utcnow(), STALE_MEMBER_SECONDS):
            await self.client.delete(kube.LEASES, name, ns)

    def _report(self) -> None:
        """Tell the operator which shards it gained and lost, once per change. A lapse of the
        fence alone is no change: the writes check the fence, and the shards stay this
        replica's until another takes them."""
        gained, lost = self._held - self._acting, self._acting - self._held
        self._acting = self._held
        metrics.SHARDS_HELD.labels(self.identity).set(len(self._held))
        if gained or lost:
            self._moved(gained, lost)

    async def _write_shard(self, lease: Lease | None, holder: str, shard: int | None = None) -> bool | None:
        """Take (holder = this replica) or hand over (holder empty) a shard's Lease, guarded by
        the resourceVersion read: of two replicas racing for it, one wins. True: written;
        False: another wrote it first (Conflict); None: no answer (an API error)."""
        now = _micro_now()
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
                    spec["leaseTransitions"] = lease.transitions + (holder != lease.holder)
                await self.client.patch(kube.LEASES, lease.name, {
                    "metadata": {"resourceVersion": lease.resource_version}, "spec": spec}, self.settings.namespace)
        except kube.Conflict:
            return False  # another replica moved it first; the next round sees who
        except (kube.ApiError, kube.Unavailable) as exc:
            log.warning("could not write shard Lease %s: %s", lease.name if lease else shard, exc)
            return None
        return True

    async def stop(self) -> None:
        """Hand every shard over and leave (a clean stop moves the work at once)."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self.member is None:
            return
        held, self._held = self._held, frozenset()
        await asyncio.to_thread(self.member.stop)  # nothing acts from here on
        ns = self.settings.namespace
        try:
            async with asyncio.timeout(5):
                await asyncio.gather(*(self.client.patch(kube.LEASES, sharding.shard_lease(s),
                                                         {"spec": {"holderIdentity": None}}, ns) for s in sorted(held)))
                await asyncio.to_thread(self.member.leave)
            log.info("handed over shards %s and left", sorted(held))
        except TimeoutError:
            log.warning("could not hand the shards over on the way out (timed out): they move when the Lease expires")
        except (kube.ApiError, kube.Unavailable) as exc:
            log.warning("could not hand the shards over on the way out (%s): they move when the Lease expires", exc)
